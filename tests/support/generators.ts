/**
 * Generated inputs (fast-check) for everything a stranger can feed the relay:
 * coordinator frames and streams of them, callback parameters, and HTTP
 * requests, with the checks that go with them. tests/fuzz_test.ts runs them
 * as properties; `deno task stress` (bench/stress.ts) runs the same
 * generators over a million frames.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_SETTINGS, type Settings } from "../../src/client/settings.ts";
import { createHandler, type HttpLimits } from "../../src/relay/http/handler.ts";
import { createLogger } from "../../src/relay/log.ts";
import {
  type ClientMessage,
  decodeClientMessage,
  encode,
  LineSplitter,
  MAX_LINE_BYTES,
  ProtocolError,
  type RegisterMessage,
} from "../../src/protocol/mod.ts";
import { MemoryRegistry } from "../../src/relay/registry/memory.ts";
import type { Waiter } from "../../src/relay/registry/registry.ts";

// Coordinator frames ----------------------------------------------------------

const utf8 = new TextEncoder();

/**
 * Any code point but a lone surrogate half, as text. (fast-check's `unit: "binary"` does the same but builds
 * a table of about 80 MiB on first use, which would blur the memory figures of the stress task.)
 */
export const codePointArb: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 0, max: 0x7f }),
  fc.integer({ min: 0x80, max: 0xd7ff }),
  fc.integer({ min: 0xe000, max: 0x10ffff }),
).map((point) => String.fromCodePoint(point));

/** Any UTF-16 code unit, lone surrogate halves included. */
const codeUnitArb = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));

/** A state a client may register: ASCII, any code point, or any UTF-16 unit (lone surrogates too). */
export const stateArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.string({ minLength: 1, maxLength: 20, unit: codePointArb }),
  fc.string({ minLength: 1, maxLength: 20, unit: codeUnitArb }),
);

/** A register message the decoder must accept and give back unchanged. */
export const validRegisterArb: fc.Arbitrary<RegisterMessage> = fc
  .record({
    state: fc.option(stateArb, { nil: null }),
    timeout: fc.double({ min: Number.MIN_VALUE, max: 2147483, noNaN: true }),
  }, { requiredKeys: [] })
  .map((fields) => ({ v: 2, type: "register", ...fields }));

/** Something JSON-ish to put where a field belongs. */
const junkArb = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1, 1.5, "", "register", [], {}),
  fc.double(),
  fc.string({ maxLength: 10 }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** An object shaped like a register message with some fields wrong, missing or extra. */
export const nearValidArb: fc.Arbitrary<Record<string, unknown>> = fc.record({
  v: fc.oneof(fc.constant(1), junkArb),
  type: fc.oneof(fc.constantFrom("register", "Register", "registered", "callback", "error", ""), junkArb),
  state: fc.oneof(stateArb, junkArb),
  timeout: fc.oneof(fc.double(), fc.constantFrom(0, -0, Infinity, -Infinity, NaN, 1e308), junkArb),
  extra: junkArb,
}, { requiredKeys: [] });

/** Mutates an encoded frame: flips, drops or inserts a byte (bad UTF-8, early newline, …), or cuts it short. */
const mutationArb = fc.tuple(
  fc.constantFrom("flip", "drop", "insert", "truncate"),
  fc.nat(),
  fc.constantFrom(0x00, 0x0a, 0x22, 0x7b, 0x7d, 0x5c, 0x80, 0xc0, 0xed, 0xf8, 0xff),
);

function mutate(bytes: Uint8Array, [kind, at, byte]: [string, number, number]): Uint8Array {
  if (bytes.length === 0) return Uint8Array.of(byte);
  const i = at % bytes.length;
  if (kind === "flip") return bytes.map((value, j) => (j === i ? value ^ (1 << (at % 8)) : value));
  if (kind === "drop") return Uint8Array.from([...bytes.subarray(0, i), ...bytes.subarray(i + 1)]);
  if (kind === "insert") return Uint8Array.from([...bytes.subarray(0, i), byte, ...bytes.subarray(i)]);
  return bytes.slice(0, i);
}

/** The bytes of one frame as a client might send them, newline excluded. */
export const frameArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  validRegisterArb.map((message) => encode(message).subarray(0, -1)),
  nearValidArb.map((message) => utf8.encode(JSON.stringify(message))),
  fc.json({ maxDepth: 3 }).map((text) => utf8.encode(text)),
  fc.uint8Array({ maxLength: 200 }),
  fc.string({ maxLength: 60, unit: codePointArb }).map((text) => utf8.encode(text)),
  fc.tuple(validRegisterArb, mutationArb).map(([message, how]) => mutate(encode(message).subarray(0, -1), how)),
);

/** Frames joined by newlines and cut into chunks at arbitrary places, as the socket may deliver them. */
export const streamArb: fc.Arbitrary<{ frames: Uint8Array[]; chunks: Uint8Array[] }> = fc
  .tuple(
    fc.array(frameArb, { minLength: 1, maxLength: 40 }),
    fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1 }),
  )
  .map(([frames, sizes]) => {
    const stream = concat(frames.flatMap((frame) => [frame, Uint8Array.of(10)]));
    const chunks: Uint8Array[] = [];
    for (let offset = 0, i = 0; offset < stream.length; i++) {
      const size = sizes[i % sizes.length];
      chunks.push(stream.slice(offset, offset + size));
      offset += size;
    }
    return { frames, chunks };
  });

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** What the relay may accept: exactly the fields the protocol allows, each of the right kind. */
export function assertWellFormed(message: ClientMessage): void {
  assert.equal(message.v, 2);
  if (message.type === "hello") {
    assert.match(message.nonce, /^[A-Za-z0-9_-]{43}$/);
    return;
  }
  assert.equal(message.type, "register");
  assert.ok(message.state === null || (typeof message.state === "string" && message.state !== ""));
  const { timeout } = message;
  assert.ok(timeout === undefined || (typeof timeout === "number" && timeout > 0 && Number.isFinite(timeout)));
}

/** Tally of {@linkcode decodeStream}. */
export interface DecodeTally {
  lines: number;
  accepted: number;
  refused: number;
}

/**
 * Feeds `chunks` through a {@linkcode LineSplitter} and decodes every line,
 * as the coordinator does. Throws (an AssertionError or the stray exception)
 * when anything but a {@linkcode ProtocolError} escapes or a message is
 * accepted that the protocol does not allow.
 */
export function decodeStream(chunks: Uint8Array[], tally: DecodeTally, maxLineBytes = MAX_LINE_BYTES): Uint8Array[] {
  const splitter = new LineSplitter(maxLineBytes);
  const lines: Uint8Array[] = [];
  for (const chunk of chunks) {
    let complete: Uint8Array[];
    try {
      complete = splitter.push(chunk);
    } catch (error) {
      if (error instanceof ProtocolError) return lines; // the coordinator drops the connection here
      throw error;
    }
    for (const line of complete) {
      lines.push(line.slice());
      tally.lines++;
      try {
        assertWellFormed(decodeClientMessage(line));
        tally.accepted++;
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        tally.refused++;
      }
    }
  }
  return lines;
}

// Generated callback parameters ----------------------------------------------

/** Parameter names: the interesting ones in any case, prototype names, and anything else. */
export const paramKeyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.mixedCase(fc.constantFrom("code", "state", "authorization_code", "auth_code", "error")) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "", "iss"),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
);

/** Parameter values as a query, a form or a JSON body may carry them. */
export const paramValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(fc.constantFrom("", "s1", "s2", "X"), fc.string({ maxLength: 8 })) },
  {
    weight: 2,
    arbitrary: fc.array(
      fc.oneof(fc.constantFrom("", "s1", "s2"), fc.string({ maxLength: 6 }), fc.integer(), fc.constant(null)),
      {
        maxLength: 4,
      },
    ),
  },
  { weight: 1, arbitrary: junkArb },
);

// Generated HTTP requests --------------------------------------------------

/** Statuses the callback route may answer with; anything else (5xx above all) is a bug. */
export const ALLOWED_STATUSES: ReadonlySet<number> = new Set([200, 400, 404, 405, 413, 414, 415]);

/** Security headers every callback response carries (docs/security.md rules 1–3). */
export function missingSecurityHeaders(headers: Headers): string[] {
  const missing: string[] = [];
  if (!/default-src 'none'/.test(headers.get("content-security-policy") ?? "")) missing.push("content-security-policy");
  if (!/no-store/.test(headers.get("cache-control") ?? "")) missing.push("cache-control");
  if (headers.get("referrer-policy") !== "no-referrer") missing.push("referrer-policy");
  if (headers.get("x-content-type-options") !== "nosniff") missing.push("x-content-type-options");
  return missing;
}

/** One request a stranger (or a provider) might send, as plain data. */
export interface RequestSpec {
  method: string;
  path: string;
  query: string;
  contentType: string | null;
  contentLength: string | null;
  body: Uint8Array | null;
  /** Send the body as a stream of this many chunks (no declared length). */
  streamed: number;
}

export const REGISTERED_STATES = ["s1", "s2"];

const queryArb = fc.oneof(
  fc.array(fc.tuple(paramKeyArb, fc.oneof(fc.constantFrom("", "s1", "s2", "X"), fc.string({ maxLength: 10 }))), {
    maxLength: 8,
  })
    .map((pairs) => new URLSearchParams(pairs).toString()),
  fc.string({ maxLength: 80, unit: codePointArb }),
  fc.string({ maxLength: 80, unit: "binary-ascii" }),
  fc.constantFrom("", "code=X&state=s1", "code=X&state=s1&state=s2", "code=%FF%FE&state=s2", "%", "&&==&", "state=s1"),
);

const bodyArb = fc.oneof(
  fc.array(fc.tuple(paramKeyArb, fc.string({ maxLength: 10 })), { maxLength: 8 })
    .map((pairs) => utf8.encode(new URLSearchParams(pairs).toString())),
  fc.dictionary(paramKeyArb, paramValueArb, { maxKeys: 8 }).map((object) => utf8.encode(JSON.stringify(object))),
  fc.json({ maxDepth: 3 }).map((text) => utf8.encode(text)),
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom(utf8.encode('{"code":"X","state":"s1"}'), utf8.encode('{"__proto__":{"state":"s2"},"state":"s1"}')),
);

/** Arbitrary requests to the relay: mostly to the callback route, with every method, type and body. */
export const requestArb: fc.Arbitrary<RequestSpec> = fc.record({
  method: fc.constantFrom("GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"),
  path: fc.oneof(
    { weight: 8, arbitrary: fc.constant(DEFAULT_SETTINGS.callbackPath) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("/", "/oauth/callback/", "/OAUTH/CALLBACK", "/oauth//callback", "/%2e%2e/x"),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map((path) => `/${encodeURI(path)}`) },
  ),
  query: queryArb,
  contentType: fc.option(
    fc.oneof(
      fc.constantFrom(
        "application/x-www-form-urlencoded",
        "application/json",
        "application/JSON; charset=utf-8",
        "application/jwt+json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
        ";",
      ),
      fc.string({ maxLength: 30, unit: "grapheme-ascii" }),
    ),
  ),
  contentLength: fc.option(
    fc.oneof(fc.constantFrom("0", "-1", "abc", "1e9", "99999999999999999999"), fc.nat().map(String)),
  ),
  body: fc.option(bodyArb),
  streamed: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 4 }),
  }),
});

/** Builds the request of `spec` against `base`, or `null` when the Fetch API itself refuses it. */
export function toRequest(base: string, spec: RequestSpec): Request | null {
  const headers = new Headers();
  try {
    if (spec.contentType !== null) headers.set("content-type", spec.contentType);
    if (spec.contentLength !== null) headers.set("content-length", spec.contentLength);
  } catch {
    return null; // not a valid header value
  }
  const hasBody = spec.body !== null && spec.method !== "GET" && spec.method !== "HEAD";
  let body: BodyInit | null = null;
  if (hasBody && spec.streamed > 0) {
    const bytes = spec.body!;
    const size = Math.ceil(bytes.length / spec.streamed) || 1;
    let offset = 0;
    body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(offset, offset + size));
        offset += size;
      },
    });
  } else if (hasBody) {
    body = spec.body!.slice();
  }
  try {
    return new Request(`${base}${spec.path}${spec.query ? `?${spec.query}` : ""}`, {
      method: spec.method,
      headers,
      body,
    });
  } catch {
    return null;
  }
}

/** A waiter that accepts every callback, as a connected client does. */
class AcceptingWaiter implements Waiter {
  constructor(readonly state: string | null) {}
  deliver(): Promise<boolean> {
    return Promise.resolve(true);
  }
  end(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A handler with waiters for `s1`, `s2` and the single slot, so some callbacks
 * are delivered. Requests wait until the waiters are registered.
 */
export function fuzzHandler(limits?: Partial<HttpLimits>): (request: Request) => Promise<Response> {
  const registry = new MemoryRegistry();
  const registered = Promise.all(
    [...REGISTERED_STATES, null].map((state) => registry.register(new AcceptingWaiter(state))),
  );
  const settings: Settings = { ...DEFAULT_SETTINGS, codeKeys: ["code", "authorization_code"] };
  const handler = createHandler({
    settings,
    registry,
    logger: createLogger("silent"),
    coordinator: () => null,
    limits,
  });
  return async (request) => {
    await registered;
    return await handler(request);
  };
}

/** Tight limits, so the 413, 414 and 400 paths are reached often. */
export const TIGHT_LIMITS: Partial<HttpLimits> = {
  maxBodyBytes: 64,
  maxParams: 4,
  maxKeyLength: 6,
  maxValueLength: 8,
  maxUrlLength: 120,
};

/** Sends `request` to `handler` and checks the answer; returns the status. */
export async function checkHandlerAnswer(
  handler: (request: Request) => Promise<Response>,
  request: Request,
): Promise<number> {
  const response = await handler(request);
  const path = new URL(request.url).pathname;
  await response.arrayBuffer();
  if (path === "/health") return response.status;
  assert.ok(ALLOWED_STATUSES.has(response.status), `status ${response.status} for ${request.method} ${request.url}`);
  assert.deepEqual(
    missingSecurityHeaders(response.headers),
    [],
    `security headers of ${request.method} ${request.url}`,
  );
  return response.status;
}
