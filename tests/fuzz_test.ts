/**
 * Property tests (fast-check) of everything a stranger can feed the relay:
 * the coordinator's line splitter and decoder, callback extraction, and the
 * HTTP handler. The generators live in tests/support/generators.ts;
 * `deno task stress` runs the same checks over a million frames.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  assertWellFormed,
  checkHandlerAnswer,
  concat,
  decodeStream,
  frameArb,
  fuzzHandler,
  nearValidArb,
  paramKeyArb,
  paramValueArb,
  REGISTERED_STATES,
  requestArb,
  streamArb,
  TIGHT_LIMITS,
  toRequest,
  validRegisterArb,
} from "./support/generators.ts";
import { DEFAULT_SETTINGS, type Settings } from "../src/client/settings.ts";
import { addParam, AmbiguousCallbackError, type CallbackParams, extractCallback } from "../src/relay/http/extract.ts";
import { createHandler } from "../src/relay/http/handler.ts";
import { createLogger } from "../src/relay/log.ts";
import {
  decodeClientMessage,
  encode,
  LineSplitter,
  type OAuthCallbackResult,
  ProtocolError,
} from "../src/protocol/mod.ts";
import { MemoryRegistry } from "../src/relay/registry/memory.ts";

const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------
// Coordinator frames
// ---------------------------------------------------------------------------

Deno.test("decodeClientMessage() throws only ProtocolError on arbitrary bytes, and accepts only well-formed messages", () => {
  fc.assert(
    fc.property(frameArb, (line) => {
      try {
        assertWellFormed(decodeClientMessage(line));
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("decodeClientMessage() refuses arbitrary JSON that is not a register message with ProtocolError", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const line = utf8.encode(JSON.stringify(value));
      const isRegister = typeof value === "object" && value !== null && !Array.isArray(value) &&
        value.v === 2 && (value.type === "register" || value.type === "hello");
      try {
        assertWellFormed(decodeClientMessage(line));
        assert.ok(isRegister, "only a v2 register or hello object may be accepted");
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("a valid register message round-trips through encode() and decodeClientMessage()", () => {
  fc.assert(
    fc.property(validRegisterArb, (message) => {
      const bytes = encode(message);
      assert.equal(bytes.at(-1), 10);
      assert.equal(bytes.indexOf(10), bytes.length - 1, "an encoded message is exactly one line");
      const decoded = decodeClientMessage(bytes.subarray(0, -1));
      assert.equal(decoded.type, "register");
      if (decoded.type !== "register") return;
      assert.equal(decoded.state, message.state ?? null);
      assert.equal(decoded.timeout, message.timeout);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("near-valid messages are accepted exactly when every field is right", () => {
  fc.assert(
    fc.property(nearValidArb, (message) => {
      // JSON turns NaN, ±Infinity into null and drops undefined: judge what is actually sent.
      const sent = JSON.parse(JSON.stringify(message));
      const { state, timeout } = sent;
      // `null` means absent for every optional field.
      const valid = sent.v === 2 && sent.type === "register" &&
        (state === undefined || state === null || (typeof state === "string" && state !== "")) &&
        (timeout === undefined || timeout === null || (typeof timeout === "number" && timeout > 0));
      let accepted = false;
      try {
        assertWellFormed(decodeClientMessage(utf8.encode(JSON.stringify(message))));
        accepted = true;
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
      assert.equal(accepted, valid);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("LineSplitter gives the same lines whatever the chunk boundaries, and decoding them throws only ProtocolError", () => {
  fc.assert(
    fc.property(streamArb, ({ frames, chunks }) => {
      const tally = { lines: 0, accepted: 0, refused: 0 };
      const lines = decodeStream(chunks, tally);
      // Frames may hold newlines of their own (raw bytes): compare with a plain split of the whole stream.
      const expected = splitLines(concat(frames.flatMap((frame) => [frame, Uint8Array.of(10)])));
      assert.deepEqual(lines, expected);
      assert.equal(tally.accepted + tally.refused, lines.length);
    }),
    { numRuns: 500 },
  );
});

function splitLines(stream: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let end = stream.indexOf(10); end !== -1; end = stream.indexOf(10, start)) {
    lines.push(stream.slice(start, end));
    start = end + 1;
  }
  return lines;
}

Deno.test("LineSplitter refuses a line past its limit with ProtocolError, never holding more than the limit", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 64 }),
      fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 20 }),
      (max, chunks) => {
        const splitter = new LineSplitter(max);
        const stream = concat(chunks);
        const pieces = splitLines(concat([stream, Uint8Array.of(10)])); // complete lines plus the unfinished rest
        const tooLong = pieces.some((piece) => piece.length > max);
        const lines: Uint8Array[] = [];
        try {
          for (const chunk of chunks) lines.push(...splitter.push(chunk).map((line) => line.slice()));
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          assert.ok(tooLong, "refused although every line fits");
          return;
        }
        assert.ok(!tooLong, "accepted a line longer than the limit");
        assert.deepEqual(lines, pieces.slice(0, -1));
      },
    ),
    { numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------

const CODE_KEYS = ["code", "authorization_code", "auth_code"];

function firstString(value: unknown): string | null {
  if (typeof value === "string") return value || null;
  if (Array.isArray(value)) return value.find((item) => typeof item === "string" && item !== "") ?? null;
  return null;
}

Deno.test("extractCallback() throws only AmbiguousCallbackError and finds the code iff a configured key holds one", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(paramKeyArb, paramValueArb), { maxLength: 12 }),
      fc.subarray(CODE_KEYS, { minLength: 1 }),
      (pairs, codeKeys) => {
        const params: CallbackParams = {};
        for (const [key, value] of pairs) addParam(params, key, value);
        const entries = Object.entries(params);

        // Documented rule: keys match in any case, codeKeys in order, a list yields its first non-empty string,
        // and an empty string is no code.
        const candidates = codeKeys.flatMap((codeKey) =>
          entries.filter(([key]) => key.toLowerCase() === codeKey).map(([, value]) => firstString(value))
        ).filter((code): code is string => !!code);
        const stateValues = entries.filter(([key]) => key.toLowerCase() === "state")
          .flatMap(([, value]) => (Array.isArray(value) && value.length > 0 ? value : [value]));
        const states = new Set(stateValues);
        // A state that is there but empty or not a string is refused, never treated as "no state".
        const unusable = stateValues.some((item) => typeof item !== "string" || item === "");

        let result: OAuthCallbackResult;
        try {
          result = extractCallback(params, codeKeys);
        } catch (error) {
          if (!(error instanceof AmbiguousCallbackError)) throw error;
          assert.ok(states.size > 1 || unusable, "refused although one usable state was sent");
          return;
        }
        assert.ok(states.size <= 1 && !unusable, "two different or unusable states must be refused (RFC 6749 §3.1)");
        assert.equal(result.code, candidates[0] ?? null);
        assert.equal(result.success, candidates.length > 0);
        assert.equal(result.state, [...states][0] ?? null);
        assert.equal(result.raw, params, "raw is the whole payload");
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("extractCallback() survives arbitrary objects as parameters", () => {
  fc.assert(
    fc.property(fc.dictionary(paramKeyArb, fc.anything({ maxDepth: 2 })), (params) => {
      try {
        const result = extractCallback(params, ["code"]);
        assert.equal(result.success, typeof result.code === "string" && result.code !== "");
      } catch (error) {
        if (!(error instanceof AmbiguousCallbackError)) throw error;
      }
    }),
    { numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------
// HTTP handler
// ---------------------------------------------------------------------------

Deno.test("the HTTP handler answers any request with an allowed status and the security headers, and never throws", async () => {
  const seen = new Set<number>();
  await fc.assert(
    fc.asyncProperty(requestArb, fc.boolean(), async (spec, tight) => {
      const request = toRequest("http://127.0.0.1:8000", spec);
      fc.pre(request !== null);
      seen.add(await checkHandlerAnswer(fuzzHandler(tight ? TIGHT_LIMITS : undefined), request!));
    }),
    { numRuns: 1500 },
  );
  // The generator must reach every answer, or the property proves little.
  for (const status of [200, 400, 404, 405, 413, 414, 415]) assert.ok(seen.has(status), `no request got ${status}`);
});

Deno.test("the HTTP handler delivers a callback to the waiter of its state and to no one else", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...REGISTERED_STATES, "unknown", null),
      fc.string({ minLength: 1, maxLength: 20 }),
      async (state, code) => {
        const delivered: Array<[string | null, OAuthCallbackResult]> = [];
        const registry = new MemoryRegistry();
        for (const waiting of [...REGISTERED_STATES, null]) {
          await registry.register({
            state: waiting,
            deliver: (result) => (delivered.push([waiting, result]), Promise.resolve(true)),
            end: () => Promise.resolve(),
          });
        }
        const settings: Settings = { ...DEFAULT_SETTINGS };
        const handler = createHandler({
          settings,
          registry,
          logger: createLogger("silent"),
          coordinator: () => null,
        });
        const query = new URLSearchParams(state === null ? { code } : { code, state });
        const response = await handler(new Request(`http://127.0.0.1${settings.callbackPath}?${query}`));
        await response.arrayBuffer();
        if (state === "unknown") {
          assert.equal(response.status, 404);
          assert.deepEqual(delivered, []);
        } else {
          assert.equal(response.status, 200);
          assert.equal(delivered.length, 1);
          assert.equal(delivered[0][0], state);
          assert.equal(delivered[0][1].code, code);
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("the HTTP handler forwards every query parameter in raw, prototype names included (docs/security.md rule 7)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(paramKeyArb, fc.string({ maxLength: 6 })), { maxLength: 8 }), async (pairs) => {
      const delivered: OAuthCallbackResult[] = [];
      const registry = new MemoryRegistry();
      await registry.register({
        state: "s1",
        deliver: (result) => (delivered.push(result), Promise.resolve(true)),
        end: () => Promise.resolve(),
      });
      const settings: Settings = { ...DEFAULT_SETTINGS };
      const handler = createHandler({
        settings,
        registry,
        logger: createLogger("silent"),
        coordinator: () => null,
      });
      const sent = pairs.filter(([key]) => key.toLowerCase() !== "state").concat([["state", "s1"]]);
      const response = await handler(
        new Request(`http://127.0.0.1${settings.callbackPath}?${new URLSearchParams(sent)}`),
      );
      await response.arrayBuffer();
      assert.equal(response.status, 200);
      const keys = new Set(sent.map(([key]) => key));
      assert.deepEqual(new Set(Object.keys(delivered[0].raw)), keys);
    }),
    { numRuns: 300 },
  );
});

Deno.test("the HTTP handler answers 400, not a 500, when the request body fails mid-read (the sender went away)", async () => {
  const handler = fuzzHandler();
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(utf8.encode("code=X&"));
      controller.error(new TypeError("connection reset"));
    },
  });
  const request = new Request(`http://127.0.0.1${DEFAULT_SETTINGS.callbackPath}?state=s1`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  const status = await checkHandlerAnswer(handler, request);
  assert.equal(status, 400);
});
