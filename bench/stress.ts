/**
 * `deno task stress`: measures the reliability figures of docs/reliability.md
 * and exits non-zero when one is wrong.
 *
 *   deno task stress            the full run (10,000 waiters, 100 × 1,000, 10⁶ frames, 1,000 slow connections)
 *   deno task stress --quick    the same scenarios, smaller (about a tenth)
 *   deno task stress --tcp      the coordinator on loopback TCP instead of a Unix socket
 *   deno task stress --seed=N   repeat a run's random choices (orders, fuzz inputs)
 *   deno task stress --only=waiters,parallel,fuzz,slow
 *
 * Each scenario gets a fresh relay in a child process (this file with
 * `--relay`), so a crash of the relay is seen as a figure instead of killing
 * the measurement, and the relay's and the load's file descriptors do not
 * share one limit. The load is real HTTP and real coordinator connections
 * over loopback, with a bounded number in flight. The scenarios are exported:
 * tests/stress_test.ts runs them, smaller, against an in-process relay.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { waitForCode } from "../src/client/wait.ts";
import { type CoordinatorAddress, DEFAULT_SETTINGS, type Settings } from "../src/client/settings.ts";
import { createHandler, type HttpLimits } from "../src/relay/http/handler.ts";
import { createLogger, type Logger } from "../src/relay/log.ts";
import {
  decodeClientMessage,
  encode,
  LineSplitter,
  MAX_LINE_BYTES,
  type OAuthCallbackResult,
  ProtocolError,
  type RegisterMessage,
} from "../src/protocol/mod.ts";
import { type Waiter, WaiterRegistry } from "../src/relay/registry/memory.ts";
import { startRelay } from "../src/relay/relay.ts";

// ---------------------------------------------------------------------------
// Generated inputs (fast-check), shared with tests/fuzz_test.ts
// ---------------------------------------------------------------------------

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
  .map((fields) => ({ v: 1, type: "register", ...fields }));

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
export function assertWellFormed(message: RegisterMessage): void {
  assert.equal(message.v, 1);
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

/** A handler with waiters for `s1`, `s2` and the single slot, so some callbacks are delivered. */
export function fuzzHandler(limits?: Partial<HttpLimits>): (request: Request) => Promise<Response> {
  const registry = new WaiterRegistry();
  for (const state of [...REGISTERED_STATES, null]) registry.add(new AcceptingWaiter(state));
  const settings: Settings = { ...DEFAULT_SETTINGS, codeKeys: ["code", "authorization_code"] };
  return createHandler({ settings, router: registry, logger: createLogger("silent"), coordinator: () => null, limits });
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

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/** A relay under test, wherever it runs. */
export interface Target {
  /** Base URL of the HTTP side. */
  url: string;
  callbackPath: string;
  /** Settings `waitForCode` needs to reach the coordinator. */
  client: Partial<Settings>;
  coordinator: CoordinatorAddress;
  /** How many waiters the relay holds now. */
  waiting(): Promise<number>;
  /** ERROR lines the relay logged so far: a handler that threw (a 500), a failed accept, … */
  errors(): Promise<string[]>;
}

/** A small seeded PRNG (mulberry32), so a run's orders can be repeated with `--seed`. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(items: T[], next: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** Runs `task` over `items` with at most `limit` in flight. */
export async function pool<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The code the load sends for `state`, so a misrouted delivery is visible. */
export function codeOf(state: string): string {
  return `code.${state}`;
}

/** Which page a callback answer is. */
export type PageKind = "complete" | "already" | "no_client" | "bad_request" | "other";

function pageKind(html: string): PageKind {
  if (html.includes("Authorization Complete")) return "complete";
  if (html.includes("Authorization Already Completed")) return "already";
  if (html.includes("No client waiting")) return "no_client";
  if (html.includes("Bad Request")) return "bad_request";
  return "other";
}

/** A GET callback over real HTTP; `status` 0 when the request itself failed. */
export async function callback(
  target: Target,
  params: Record<string, string>,
): Promise<{ status: number; page: PageKind }> {
  try {
    const response = await fetch(`${target.url}${target.callbackPath}?${new URLSearchParams(params)}`, {
      signal: AbortSignal.timeout(30_000),
    });
    return { status: response.status, page: pageKind(await response.text()) };
  } catch {
    return { status: 0, page: "other" };
  }
}

/** A `waitForCode` whose registration can be awaited; the outcome is kept, never thrown. */
interface Waiting {
  state: string;
  registered: Promise<boolean>;
  outcome: Promise<OAuthCallbackResult | Error>;
}

function startWaiter(target: Target, state: string, signal: AbortSignal, timeout: number): Waiting {
  const { promise: registered, resolve } = Promise.withResolvers<boolean>();
  const outcome = waitForCode({ state, timeout, signal, settings: target.client, onRegistered: () => resolve(true) })
    .catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  outcome.then(() => resolve(false));
  return { state, registered, outcome };
}

/** Registers a waiter for each state, at most `concurrency` registrations in flight. */
async function registerAll(
  target: Target,
  states: string[],
  concurrency: number,
  signal: AbortSignal,
  timeout: number,
): Promise<{ waits: Waiting[]; refused: number }> {
  const waits: Waiting[] = new Array(states.length);
  let refused = 0;
  await pool(states, concurrency, async (state, i) => {
    waits[i] = startWaiter(target, state, signal, timeout);
    if (!await waits[i].registered) refused++;
  });
  return { waits, refused };
}

/** Counts what the waiters received: `lost` got nothing, `misrouted` got another state's callback. */
function judge(waits: Waiting[], outcomes: Array<OAuthCallbackResult | Error>) {
  let delivered = 0, lost = 0, misrouted = 0;
  const errors = new Map<string, number>();
  outcomes.forEach((outcome, i) => {
    if (outcome instanceof Error) {
      lost++;
      const key = `${outcome.name}: ${outcome.message.slice(0, 60)}`;
      errors.set(key, (errors.get(key) ?? 0) + 1);
      return;
    }
    const { state } = waits[i];
    if (outcome.state !== state || outcome.code !== codeOf(state)) misrouted++;
    else delivered++;
  });
  return { delivered, lost, misrouted, errors: Object.fromEntries(errors) };
}

/** Settles every waiter or, at the deadline, aborts the rest (they count as lost). */
async function settle(waits: Waiting[], controller: AbortController, deadlineMs: number) {
  const timer = setTimeout(() => controller.abort(new Error("Deadline of the scenario passed")), deadlineMs);
  try {
    return await Promise.all(waits.map((w) => w.outcome));
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `target.waiting()` until it is 0 (the relay notices closed sockets asynchronously); bounded. */
async function drained(target: Target, ms = 3_000): Promise<number> {
  const until = Date.now() + ms;
  let waiting = await target.waiting();
  while (waiting > 0 && Date.now() < until) {
    await sleep(20);
    waiting = await target.waiting();
  }
  return waiting;
}

// ---------------------------------------------------------------------------
// Figure 1: many concurrent waiters, callbacks in random order
// ---------------------------------------------------------------------------

/** Options of {@linkcode manyWaiters}. */
export interface WaitersOptions {
  waiters: number;
  /** Callbacks for states nobody waits for, mixed in: each must get 404 and disturb no one (docs/security.md rule 6). */
  decoys: number;
  /** HTTP requests in flight. */
  concurrency: number;
  /** Registrations in flight. */
  registerConcurrency: number;
  seed: number;
  deadlineMs: number;
}

/** Figures of {@linkcode manyWaiters}. */
export interface WaitersFigures {
  waiters: number;
  registered: number;
  refused: number;
  waitingAtPeak: number;
  delivered: number;
  lost: number;
  misrouted: number;
  /** Real callbacks that did not get 200 "Authorization Complete". */
  callbacksNot200: number;
  decoys: number;
  decoys404: number;
  httpErrors: number;
  waitingAfter: number;
  relayErrors: number;
  lostReasons: Record<string, number>;
  registerMs: number;
  callbacksMs: number;
}

/** Registers `waiters` clients at once, then sends their callbacks (and decoys) in random order. */
export async function manyWaiters(target: Target, options: WaitersOptions): Promise<WaitersFigures> {
  const next = random(options.seed);
  const controller = new AbortController();
  const states = Array.from(
    { length: options.waiters },
    (_, i) => `w${i}.${Math.floor(next() * 2 ** 52).toString(36)}`,
  );
  const errorsBefore = (await target.errors()).length;

  let started = performance.now();
  const { waits, refused } = await registerAll(
    target,
    states,
    options.registerConcurrency,
    controller.signal,
    options.deadlineMs / 1000 + 60,
  );
  const registerMs = performance.now() - started;
  const waitingAtPeak = await target.waiting();

  type Job = { state: string; decoy: boolean };
  const jobs: Job[] = shuffle([
    ...states.map((state) => ({ state, decoy: false })),
    ...Array.from({ length: options.decoys }, (_, i) => ({ state: `decoy.${i}`, decoy: true })),
  ], next);
  let callbacksNot200 = 0, decoys404 = 0, httpErrors = 0;
  started = performance.now();
  await pool(jobs, options.concurrency, async ({ state, decoy }) => {
    const { status, page } = await callback(target, { code: codeOf(state), state });
    if (status === 0) httpErrors++;
    if (decoy) {
      if (status === 404 && page === "no_client") decoys404++;
    } else if (status !== 200 || page !== "complete") callbacksNot200++;
  });
  const outcomes = await settle(waits, controller, options.deadlineMs);
  const callbacksMs = performance.now() - started;
  const { delivered, lost, misrouted, errors } = judge(waits, outcomes);

  return {
    waiters: options.waiters,
    registered: options.waiters - refused,
    refused,
    waitingAtPeak,
    delivered,
    lost,
    misrouted,
    callbacksNot200,
    decoys: options.decoys,
    decoys404,
    httpErrors,
    waitingAfter: await drained(target),
    relayErrors: (await target.errors()).length - errorsBefore,
    lostReasons: errors,
    registerMs,
    callbacksMs,
  };
}

// ---------------------------------------------------------------------------
// Figure 2: parallel identical callbacks
// ---------------------------------------------------------------------------

/** Options of {@linkcode parallelIdentical}. */
export interface ParallelOptions {
  states: number;
  /** Identical callbacks sent at once for each state. */
  parallel: number;
  registerConcurrency: number;
  seed: number;
  deadlineMs: number;
}

/** Figures of {@linkcode parallelIdentical}. */
export interface ParallelFigures {
  states: number;
  parallel: number;
  requests: number;
  /** 200 "Authorization Complete" answers; must equal `states`. */
  ok200: number;
  /** 404 "Already Completed" answers (the replay arrived after the delivery finished). */
  already404: number;
  /** 404 "No client waiting" answers (the replay arrived while the delivery was under way). */
  noClient404: number;
  otherAnswers: number;
  httpErrors: number;
  /** States that did not get exactly one 200. */
  statesNotExactlyOnce: number;
  duplicateDeliveries: number;
  delivered: number;
  lost: number;
  misrouted: number;
  waitingAfter: number;
  relayErrors: number;
  callbacksMs: number;
}

/** For each state, sends `parallel` identical callbacks at once: exactly one may deliver (docs/security.md rule 5). */
export async function parallelIdentical(target: Target, options: ParallelOptions): Promise<ParallelFigures> {
  const next = random(options.seed);
  const controller = new AbortController();
  const states = Array.from({ length: options.states }, (_, i) => `p${i}.${Math.floor(next() * 2 ** 52).toString(36)}`);
  const errorsBefore = (await target.errors()).length;
  const { waits } = await registerAll(
    target,
    states,
    options.registerConcurrency,
    controller.signal,
    options.deadlineMs / 1000 + 60,
  );

  let ok200 = 0, already404 = 0, noClient404 = 0, otherAnswers = 0, httpErrors = 0;
  let statesNotExactlyOnce = 0, duplicateDeliveries = 0;
  const started = performance.now();
  for (const state of shuffle([...states], next)) {
    const answers = await Promise.all(
      Array.from({ length: options.parallel }, () => callback(target, { code: codeOf(state), state })),
    );
    let delivered = 0;
    for (const { status, page } of answers) {
      if (status === 200 && page === "complete") delivered++;
      else if (status === 404 && page === "already") already404++;
      else if (status === 404 && page === "no_client") noClient404++;
      else if (status === 0) httpErrors++;
      else otherAnswers++;
    }
    ok200 += delivered;
    if (delivered !== 1) statesNotExactlyOnce++;
    duplicateDeliveries += Math.max(0, delivered - 1);
  }
  const outcomes = await settle(waits, controller, options.deadlineMs);
  const callbacksMs = performance.now() - started;
  const { delivered, lost, misrouted } = judge(waits, outcomes);
  return {
    states: options.states,
    parallel: options.parallel,
    requests: options.states * options.parallel,
    ok200,
    already404,
    noClient404,
    otherAnswers,
    httpErrors,
    statesNotExactlyOnce,
    duplicateDeliveries,
    delivered,
    lost,
    misrouted,
    waitingAfter: await drained(target),
    relayErrors: (await target.errors()).length - errorsBefore,
    callbacksMs,
  };
}

// ---------------------------------------------------------------------------
// Figure 3: fuzzing the decoder, the coordinator and the HTTP side
// ---------------------------------------------------------------------------

function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed;
}

/** Figures of {@linkcode fuzzFrames}. */
export interface FrameFigures {
  frames: number;
  lines: number;
  accepted: number;
  refused: number;
  /** Exceptions other than ProtocolError, or accepted messages the protocol forbids. */
  crashes: number;
  crash: string | null;
  heapBefore: number;
  heapPeak: number;
  heapAfter: number;
  /** Whether the heap was measured after a full GC (`--v8-flags=--expose-gc`). */
  gcExposed: boolean;
  ms: number;
}

/**
 * Runs generated frame streams (valid, near-valid, mutated, arbitrary JSON and
 * bytes, cut at arbitrary chunk boundaries) through LineSplitter and
 * decodeClientMessage until `frames` frames were decoded. One run in ten uses
 * a 64-byte line limit so the overflow path is exercised too.
 */
export function fuzzFrames(options: { frames: number; seed: number; timeBudgetMs: number }): FrameFigures {
  const tally: DecodeTally = { lines: 0, accepted: 0, refused: 0 };
  let frames = 0, runs = 0, crash: string | null = null;
  const heapBefore = heapUsed();
  let heapPeak = heapBefore;
  const started = performance.now();
  const property = fc.property(streamArb, ({ frames: generated, chunks }) => {
    frames += generated.length;
    decodeStream(chunks, tally, ++runs % 10 === 0 ? 64 : undefined);
  });
  for (let batch = 0; frames < options.frames && performance.now() - started < options.timeBudgetMs; batch++) {
    try {
      fc.assert(property, { numRuns: 500, seed: options.seed + batch, endOnFailure: true });
    } catch (error) {
      crash = error instanceof Error ? error.message.split("\n").slice(0, 6).join(" | ") : String(error);
      break;
    }
    if (batch % 20 === 0) heapPeak = Math.max(heapPeak, Deno.memoryUsage().heapUsed);
  }
  const ms = performance.now() - started;
  return {
    frames,
    ...tally,
    crashes: crash ? 1 : 0,
    crash,
    heapBefore,
    heapPeak,
    heapAfter: heapUsed(),
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === "function",
    ms,
  };
}

/** Figures of {@linkcode fuzzHandler}. */
export interface HandlerFigures {
  requests: number;
  statuses: Record<string, number>;
  /** Throws, disallowed statuses or missing security headers. */
  failures: number;
  failure: string | null;
  ms: number;
}

/** Calls the HTTP handler directly (no socket) with generated requests. */
export async function fuzzHandlerDirect(options: { requests: number; seed: number }): Promise<HandlerFigures> {
  const statuses: Record<string, number> = {};
  let requests = 0, failure: string | null = null;
  const started = performance.now();
  try {
    await fc.assert(
      fc.asyncProperty(requestArb, fc.boolean(), async (spec, tight) => {
        const request = toRequest("http://127.0.0.1:8000", spec);
        if (!request) return;
        requests++;
        const status = await checkHandlerAnswer(fuzzHandler(tight ? TIGHT_LIMITS : undefined), request);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }),
      { numRuns: options.requests, seed: options.seed, endOnFailure: true },
    );
  } catch (error) {
    failure = error instanceof Error ? error.message.split("\n").slice(0, 6).join(" | ") : String(error);
  }
  return { requests, statuses, failures: failure ? 1 : 0, failure, ms: performance.now() - started };
}

/** Figures of {@linkcode fuzzWire}. */
export interface WireFigures {
  /** Coordinator connections that each sent one generated frame. */
  frames: number;
  /** Answers by kind: `registered`, or the error code the relay sent. */
  answers: Record<string, number>;
  /** Connections the relay never answered within 5 s. */
  unanswered: number;
  coordinatorConnectErrors: number;
  /** Generated HTTP requests sent over the network. */
  requests: number;
  statuses: Record<string, number>;
  /** 5xx, disallowed statuses, missing security headers. */
  badAnswers: number;
  badAnswer: string | null;
  httpErrors: number;
  waitingAfter: number;
  relayErrors: number;
  ms: number;
}

/** Connects to the coordinator at `address`. */
export function connectTo(address: CoordinatorAddress): Promise<Deno.Conn> {
  return address.transport === "unix"
    ? Deno.connect({ transport: "unix", path: address.path })
    : Deno.connect({ transport: "tcp", hostname: address.hostname, port: address.port });
}

/**
 * Reads what the peer sends until it closes (or, with `firstLine`, until a
 * whole line arrived), at most 4 KiB, for at most `ms`. `closed` says the
 * peer ended the connection.
 */
export async function readAll(
  conn: Deno.Conn,
  ms: number,
  firstLine = false,
): Promise<{ text: string; closed: boolean }> {
  const buffer = new Uint8Array(1024);
  let text = "";
  const decoder = new TextDecoder();
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, ms);
  let closed = false;
  try {
    while (text.length < 4096 && !(firstLine && text.includes("\n"))) {
      const n = await conn.read(buffer);
      if (n === null) {
        closed = true;
        break;
      }
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } catch (error) {
    // A reset by the peer counts as closed by it; our own close (the timer, the end of a dribble) does not.
    closed = !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted);
  } finally {
    clearTimeout(timer);
  }
  return { text, closed };
}

/**
 * Sends generated frames to the live coordinator, one connection each (a bad
 * frame ends its connection), and generated requests to the live HTTP side.
 * Every frame must be answered; every request must get an allowed status with
 * the security headers, never a 5xx.
 */
export async function fuzzWire(
  target: Target,
  options: { frames: number; requests: number; concurrency: number; seed: number },
): Promise<WireFigures> {
  const errorsBefore = (await target.errors()).length;
  const started = performance.now();
  const answers: Record<string, number> = {};
  let unanswered = 0, coordinatorConnectErrors = 0;
  const frames = fc.sample(frameArb, { numRuns: options.frames, seed: options.seed });
  await pool(frames, options.concurrency, async (frame) => {
    let conn: Deno.Conn;
    try {
      conn = await connectTo(target.coordinator);
    } catch {
      coordinatorConnectErrors++;
      return;
    }
    const reading = readAll(conn, 5_000, true);
    try {
      const bytes = new Uint8Array(frame.length + 1);
      bytes.set(frame);
      bytes[frame.length] = 10;
      for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
    } catch { /* the relay may close before the whole frame is written */ }
    // A registered client would wait; this one has seen enough once the first answer arrives.
    const { text } = await reading;
    const first = text.split("\n")[0];
    if (!first) unanswered++;
    else {
      let kind = "unreadable";
      try {
        const message = JSON.parse(first);
        kind = message.type === "error" ? `error:${message.code}` : String(message.type);
      } catch { /* counted as unreadable */ }
      answers[kind] = (answers[kind] ?? 0) + 1;
    }
    try {
      conn.close();
    } catch { /* closed by readAll or the relay */ }
  });

  const statuses: Record<string, number> = {};
  let badAnswers = 0, badAnswer: string | null = null, httpErrors = 0;
  const specs = fc.sample(requestArb, { numRuns: options.requests, seed: options.seed + 1 });
  await pool(specs, options.concurrency, async (spec) => {
    // fetch() sets Content-Length itself; a forged one is the direct handler test's job.
    const request = toRequest(target.url, { ...spec, contentLength: null });
    if (!request) return;
    let response: Response;
    try {
      response = await fetch(request, { signal: AbortSignal.timeout(30_000) });
      await response.arrayBuffer();
    } catch {
      httpErrors++;
      return;
    }
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    const path = new URL(request.url).pathname;
    const missing = path === "/health" ? [] : missingSecurityHeaders(response.headers);
    if ((path !== "/health" && !ALLOWED_STATUSES.has(response.status)) || response.status >= 500 || missing.length) {
      badAnswers++;
      badAnswer ??= `${request.method} ${request.url} -> ${response.status} ${missing.join(",")}`;
    }
  });
  return {
    frames: frames.length,
    answers,
    unanswered,
    coordinatorConnectErrors,
    requests: specs.length,
    statuses,
    badAnswers,
    badAnswer,
    httpErrors,
    waitingAfter: await drained(target),
    relayErrors: (await target.errors()).length - errorsBefore,
    ms: performance.now() - started,
  };
}

// ---------------------------------------------------------------------------
// Figure 4: slow connections while real callbacks arrive
// ---------------------------------------------------------------------------

/** Options of {@linkcode slowConnections}. */
export interface SlowOptions {
  /** Raw HTTP connections: half dribble a request's headers, half a POST body. */
  http: number;
  /** Raw coordinator connections: half dribble a register message, half bytes that never end a line. */
  coordinator: number;
  /** How long each slow connection dribbles before it gives up and closes. */
  dribbleMs: number;
  /** Pause between two bytes, drawn from this range. */
  byteEveryMs: [min: number, max: number];
  /** Real waiter + callback pairs run while the slow connections dribble. */
  flows: number;
  flowConcurrency: number;
  seed: number;
}

/** Figures of {@linkcode slowConnections}. */
export interface SlowFigures {
  slowHttp: number;
  slowCoordinator: number;
  connectErrors: number;
  bytesDribbled: number;
  /** Slow connections the relay closed before they gave up, by kind. */
  closedByRelay: { httpHeaders: number; httpBody: number; coordinator: number };
  /** Coordinator dribblers told `idle` (silent past registerTimeoutMs). */
  coordinatorIdle: number;
  flows: number;
  flowsOk: number;
  flowsFailed: number;
  flowFailure: string | null;
  flowLatencyMs: { p50: number; p99: number; max: number };
  waitingAfter: number;
  relayErrors: number;
  relayErrorSample: string | null;
  ms: number;
}

interface Dribbler {
  kind: "httpHeaders" | "httpBody" | "coordinator";
  conn: Deno.Conn;
  bytes: Uint8Array;
  /** Sent after `bytes` runs out, forever. */
  filler: number;
}

/**
 * Opens slow connections that send one byte every few hundred milliseconds,
 * then runs real flows (register, callback, receive) while they dribble. The
 * flows synchronise on events (the registration, the response); only the
 * dribbling and the flows' start times are paced by timers.
 */
export async function slowConnections(target: Target, options: SlowOptions): Promise<SlowFigures> {
  const next = random(options.seed);
  const errorsBefore = (await target.errors()).length;
  const encoder = new TextEncoder();
  const started = performance.now();
  const httpPort = Number(new URL(target.url).port);
  const httpHost = new URL(target.url).hostname;

  type Plan = Omit<Dribbler, "conn"> & { connect: () => Promise<Deno.Conn> };
  const plans: Plan[] = [];
  for (let i = 0; i < options.http; i++) {
    const connect = () => Deno.connect({ hostname: httpHost, port: httpPort });
    if (i % 2 === 0) {
      plans.push({
        kind: "httpHeaders",
        connect,
        bytes: encoder.encode(
          `GET ${target.callbackPath}?code=slow&state=slow-h${i} HTTP/1.1\r\nHost: ${httpHost}\r\nX-Slow: `,
        ),
        filler: 0x61,
      });
    } else {
      plans.push({
        kind: "httpBody",
        connect,
        bytes: encoder.encode(
          `POST ${target.callbackPath} HTTP/1.1\r\nHost: ${httpHost}\r\n` +
            `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n` +
            `state=slow-b${i}&code=slow&pad=`,
        ),
        filler: 0x61,
      });
    }
  }
  for (let i = 0; i < options.coordinator; i++) {
    plans.push({
      kind: "coordinator",
      connect: () => connectTo(target.coordinator),
      bytes: encoder.encode(
        i % 2 === 0 ? `{"v":1,"type":"register","state":"slow-c${i}"}\n` : `{"v":1,"type":"register","state":"`,
      ),
      filler: 0x78,
    });
  }

  // Open every slow connection first; the POST bodies' headers go at once, everything else byte by byte.
  const dribblers: Dribbler[] = [];
  let connectErrors = 0;
  await pool(plans, 100, async (plan) => {
    try {
      dribblers.push({ ...plan, conn: await plan.connect() });
    } catch {
      connectErrors++;
    }
  });

  let bytesDribbled = 0;
  const closedByRelay = { httpHeaders: 0, httpBody: 0, coordinator: 0 };
  let coordinatorIdle = 0;
  const until = Date.now() + options.dribbleMs;
  const [minDelay, maxDelay] = options.byteEveryMs;
  const dribbling = dribblers.map(async (d) => {
    let peerClosed = false;
    const reading = readAll(d.conn, options.dribbleMs + 5_000).then(({ text, closed }) => {
      peerClosed = closed;
      if (d.kind === "coordinator" && text.includes('"code":"idle"')) coordinatorIdle++;
    });
    let offset = 0;
    // A slow POST sends its headers at once and dribbles the body.
    if (d.kind === "httpBody") offset = new TextDecoder().decode(d.bytes).indexOf("\r\n\r\n") + 4;
    try {
      if (offset > 0) await d.conn.write(d.bytes.subarray(0, offset));
      while (Date.now() < until && !peerClosed) {
        const byte = offset < d.bytes.length ? d.bytes[offset++] : d.filler;
        await d.conn.write(Uint8Array.of(byte));
        bytesDribbled++;
        await sleep(Math.min(until - Date.now(), minDelay + next() * (maxDelay - minDelay)));
      }
    } catch {
      peerClosed = true; // the relay closed (or reset) the connection while we wrote
    }
    if (peerClosed) closedByRelay[d.kind]++;
    try {
      d.conn.close();
    } catch { /* closed by readAll's timer or by the relay */ }
    await reading;
  });

  // Real flows, their starts spread over the first 80 % of the dribbling.
  const latencies: number[] = [];
  let flowsOk = 0, flowFailure: string | null = null;
  const spacing = (options.dribbleMs * 0.8) / Math.max(1, options.flows);
  const flowStart = performance.now();
  await pool(Array.from({ length: options.flows }, (_, i) => i), options.flowConcurrency, async (i) => {
    await sleep(flowStart + i * spacing - performance.now());
    const state = `flow${i}.${Math.floor(next() * 2 ** 52).toString(36)}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("Flow took longer than 30 s")), 30_000);
    try {
      const begun = performance.now();
      const waiter = startWaiter(target, state, controller.signal, 60);
      if (!await waiter.registered) throw await waiter.outcome;
      const { status, page } = await callback(target, { code: codeOf(state), state });
      const outcome = await waiter.outcome;
      if (outcome instanceof Error) throw outcome;
      if (status !== 200 || page !== "complete") throw new Error(`Callback answered ${status} ${page}`);
      if (outcome.code !== codeOf(state) || outcome.state !== state) throw new Error("Misrouted callback");
      latencies.push(performance.now() - begun);
      flowsOk++;
    } catch (error) {
      flowFailure ??= error instanceof Error ? error.message : String(error);
    } finally {
      clearTimeout(timer);
    }
  });
  await Promise.all(dribbling);

  latencies.sort((a, b) => a - b);
  const relayErrors = (await target.errors()).slice(errorsBefore);
  return {
    slowHttp: plans.filter((plan) => plan.kind !== "coordinator").length,
    slowCoordinator: options.coordinator,
    connectErrors,
    bytesDribbled,
    closedByRelay,
    coordinatorIdle,
    flows: options.flows,
    flowsOk,
    flowsFailed: options.flows - flowsOk,
    flowFailure,
    flowLatencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? 0 },
    waitingAfter: await drained(target),
    relayErrors: relayErrors.length,
    relayErrorSample: relayErrors[0] ?? null,
    ms: performance.now() - started,
  };
}

// ---------------------------------------------------------------------------
// The relay as a child process
// ---------------------------------------------------------------------------

/** Options of a relay child. */
export interface ChildOptions {
  useTcp: boolean;
  maxWaiters: number;
  registerTimeoutMs: number;
  /** Start the child under `ulimit -n` of this many file descriptors (Linux/macOS, via bash). */
  fileLimit?: number;
}

const SELF = new URL(import.meta.url).pathname;

/** Runs in the child: a relay that answers `stats` and `stop` on stdin with JSON lines on stdout. */
async function relayChild(options: ChildOptions): Promise<void> {
  const errors: string[] = [];
  let errorCount = 0;
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error(message) {
      errorCount++;
      if (errors.length < 5) errors.push(message);
      if (errorCount <= 5) console.error(`relay ERROR - ${message}`);
    },
    debugEnabled: false,
  };
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "oauth-relay-stress-" });
  const settings: Settings = {
    ...DEFAULT_SETTINGS,
    socketPath: `${dir}/relay.sock`,
    tcpFallbackPort: 0,
    useTcp: options.useTcp,
    defaultTimeout: 300,
    logUnmatched: false,
  };
  const relay = await startRelay({
    settings,
    port: 0,
    logger,
    maxWaiters: options.maxWaiters,
    registerTimeoutMs: options.registerTimeoutMs,
  });
  const say = (message: unknown) => console.log(JSON.stringify(message));
  say({ url: relay.url, coordinator: relay.coordinator, callbackPath: settings.callbackPath, dir });
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let end = pending.indexOf("\n"); end !== -1; end = pending.indexOf("\n")) {
      const command = pending.slice(0, end);
      pending = pending.slice(end + 1);
      if (command === "stats") {
        say({
          waiting: relay.registry.waiting,
          heapUsed: heapUsed(),
          rss: Deno.memoryUsage().rss,
          errors,
          errorCount,
        });
      } else if (command === "stop") {
        await relay.shutdown();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        say({ stopped: true });
        return;
      }
    }
  }
  await relay.shutdown();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** What a relay child reports about itself. */
export interface ChildStats {
  waiting: number;
  heapUsed: number;
  rss: number;
  errors: string[];
  errorCount: number;
}

/** A relay child as the parent sees it: a {@linkcode Target} plus stats and stop. */
export class RelayProcess implements Target, AsyncDisposable {
  url = "";
  callbackPath = "";
  client: Partial<Settings> = {};
  coordinator!: CoordinatorAddress;
  /** Set when the child ended before `stop()`: the relay crashed. */
  crashed: string | null = null;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: Promise<string>;
  readonly #exit: Promise<Deno.CommandStatus>;
  #stopping = false;
  #dir = "";
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#lines = lines(child.stdout);
    this.#stderr = (async () => {
      let text = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text = (text + chunk).slice(-4000);
      return text;
    })();
    this.#exit = child.status.then(async (status) => {
      if (!this.#stopping) this.crashed = `exit code ${status.code}: ${(await this.#stderr).trim().slice(-1500)}`;
      return status;
    });
  }

  /** Starts a relay child and waits until it listens. */
  static async start(options: ChildOptions): Promise<RelayProcess> {
    const args = [
      "run",
      "--allow-env",
      "--allow-net",
      "--allow-read",
      "--allow-write=/tmp",
      "--v8-flags=--expose-gc",
      SELF,
      "--relay",
      JSON.stringify(options),
    ];
    // bash's exec keeps the pid, so killing the child kills the relay.
    const [program, argv] = options.fileLimit === undefined
      ? [Deno.execPath(), args]
      : ["bash", ["-c", `ulimit -n ${options.fileLimit} && exec "$0" "$@"`, Deno.execPath(), ...args]];
    const child = new Deno.Command(program, {
      args: argv,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const relay = new RelayProcess(child);
    const ready = await relay.#read();
    relay.url = ready.url;
    relay.callbackPath = ready.callbackPath;
    relay.#dir = ready.dir;
    relay.coordinator = ready.coordinator;
    relay.client = ready.coordinator.transport === "tcp"
      ? { useTcp: true, tcpFallbackPort: ready.coordinator.port, tcpHost: ready.coordinator.hostname }
      : { useTcp: false, socketPath: ready.coordinator.path };
    return relay;
  }

  async #read() {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error(`Relay child ended: ${this.crashed ?? (await this.#stderr)}`);
    return JSON.parse(value);
  }

  /** Sends `command` and reads its one-line answer; commands are serialised. */
  #ask(command: string): Promise<Record<string, unknown>> {
    const answer = this.#queue.then(async () => {
      await this.#stdin.write(new TextEncoder().encode(command + "\n"));
      return await this.#read();
    });
    this.#queue = answer.catch(() => {});
    return answer;
  }

  /** Resolves when the child has ended, for whatever reason. */
  get exited(): Promise<Deno.CommandStatus> {
    return this.#exit;
  }

  /** The relay's waiters, heap and ERROR lines; rejects when the child is gone. */
  async stats(): Promise<ChildStats> {
    return await this.#ask("stats") as unknown as ChildStats;
  }

  async waiting(): Promise<number> {
    return (await this.stats()).waiting;
  }

  async errors(): Promise<string[]> {
    const { errors, errorCount } = await this.stats();
    // Keep the count exact even though the child sends only the first few lines.
    return Array.from({ length: errorCount }, (_, i) => errors[i] ?? errors.at(-1) ?? "");
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (!this.crashed) await this.#ask("stop").catch(() => {});
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill();
      } catch { /* ended */ }
    }, 10_000);
    await this.#exit;
    clearTimeout(timer);
    // A relay that crashed left its temp directory behind.
    if (this.#dir) await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let end = pending.indexOf("\n"); end !== -1; end = pending.indexOf("\n")) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 1);
    }
  }
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

/** One printed figure; `ok` false makes the run fail. */
interface Figure {
  name: string;
  value: string | number;
  ok?: boolean;
}

const MiB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function print(title: string, figures: Figure[]): number {
  console.log(`\n${title}`);
  let failed = 0;
  for (const { name, value, ok } of figures) {
    const mark = ok === undefined ? " " : ok ? "✓" : "✗";
    if (ok === false) failed++;
    console.log(`  ${mark} ${name.padEnd(52, ".")} ${value}`);
  }
  return failed;
}

/** Figures about the relay child itself, common to every scenario. */
async function relayFigures(relay: RelayProcess, before: ChildStats | null): Promise<Figure[]> {
  if (relay.crashed) return [{ name: "relay crashes", value: `1 (${relay.crashed.slice(0, 300)})`, ok: false }];
  const after = await relay.stats();
  return [
    { name: "relay crashes", value: 0, ok: true },
    { name: "relay ERROR lines (handler threw / 5xx)", value: after.errorCount, ok: after.errorCount === 0 },
    ...(after.errors.length ? [{ name: "  first ERROR line", value: after.errors[0].slice(0, 120) }] : []),
    {
      name: "relay heap after GC, before → after",
      value: `${mib(before?.heapUsed ?? 0)} → ${mib(after.heapUsed)}`,
      ok: after.heapUsed - (before?.heapUsed ?? 0) < 64 * MiB,
    },
    { name: "relay RSS after", value: mib(after.rss) },
  ];
}

async function main(): Promise<void> {
  const flag = (name: string) => Deno.args.find((arg) => arg.startsWith(`--${name}=`))?.split("=")[1];
  const quick = Deno.args.includes("--quick");
  const useTcp = Deno.args.includes("--tcp");
  const seed = Number(flag("seed") ?? Math.floor(Math.random() * 2 ** 31));
  const only = new Set((flag("only") ?? "waiters,parallel,fuzz,slow").split(","));
  const size = quick
    ? { waiters: 1_000, decoys: 100, states: 100, parallel: 20, frames: 50_000, wireFrames: 300, handler: 2_000 }
    : {
      waiters: 10_000,
      decoys: 1_000,
      states: 1_000,
      parallel: 100,
      frames: 1_000_000,
      wireFrames: 3_000,
      handler: 20_000,
    };
  const slow = quick
    ? { http: 50, coordinator: 50, dribbleMs: 3_000, flows: 50 }
    : { http: 500, coordinator: 500, dribbleMs: 6_000, flows: 300 };

  console.log(`oauth-relay stress${quick ? " --quick" : ""}: seed ${seed}, coordinator ${useTcp ? "tcp" : "unix"}`);
  console.log(`deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${Deno.build.os}/${Deno.build.arch}`);
  const wall = performance.now();
  let failed = 0;

  const withRelay = async (
    title: string,
    registerTimeoutMs: number,
    run: (relay: RelayProcess) => Promise<Figure[]>,
  ) => {
    await using relay = await RelayProcess.start({ useTcp, maxWaiters: 20_000, registerTimeoutMs });
    const before = await relay.stats();
    const started = performance.now();
    let figures: Figure[];
    try {
      figures = await run(relay);
    } catch (error) {
      figures = [{ name: "scenario failed", value: error instanceof Error ? error.message : String(error), ok: false }];
    }
    figures.push(...await relayFigures(relay, before), { name: "wall time", value: secs(performance.now() - started) });
    failed += print(title, figures);
  };

  if (only.has("waiters")) {
    await withRelay(
      `1. ${size.waiters.toLocaleString("en")} concurrent waiters, callbacks in random order`,
      10_000,
      async (relay) => {
        const f = await manyWaiters(relay, {
          waiters: size.waiters,
          decoys: size.decoys,
          concurrency: 100,
          registerConcurrency: 200,
          seed,
          deadlineMs: 180_000,
        });
        return [
          {
            name: "waiters registered at once",
            value: `${f.waitingAtPeak} / ${f.waiters}`,
            ok: f.waitingAtPeak === f.waiters,
          },
          { name: "delivered to the right waiter", value: f.delivered, ok: f.delivered === f.waiters },
          { name: "lost", value: f.lost, ok: f.lost === 0 },
          ...Object.entries(f.lostReasons).map(([reason, n]) => ({ name: `  lost: ${reason}`, value: n })),
          { name: "misrouted", value: f.misrouted, ok: f.misrouted === 0 },
          { name: "real callbacks not answered 200", value: f.callbacksNot200, ok: f.callbacksNot200 === 0 },
          {
            name: "decoy callbacks (unknown state) answered 404",
            value: `${f.decoys404} / ${f.decoys}`,
            ok: f.decoys404 === f.decoys,
          },
          { name: "HTTP request failures", value: f.httpErrors, ok: f.httpErrors === 0 },
          { name: "waiters left in the relay", value: f.waitingAfter, ok: f.waitingAfter === 0 },
          { name: "registration time", value: secs(f.registerMs) },
          {
            name: "callback time (100 in flight)",
            value: `${secs(f.callbacksMs)} (${Math.round((f.waiters + f.decoys) / (f.callbacksMs / 1000))} req/s)`,
          },
        ];
      },
    );
  }

  if (only.has("parallel")) {
    await withRelay(
      `2. ${size.parallel} parallel identical callbacks × ${size.states.toLocaleString("en")} states`,
      10_000,
      async (relay) => {
        const f = await parallelIdentical(relay, {
          states: size.states,
          parallel: size.parallel,
          registerConcurrency: 200,
          seed: seed + 1,
          deadlineMs: 600_000,
        });
        return [
          { name: "requests", value: f.requests },
          { name: "200 Authorization Complete", value: f.ok200, ok: f.ok200 === f.states },
          {
            name: "states not delivered exactly once",
            value: f.statesNotExactlyOnce,
            ok: f.statesNotExactlyOnce === 0,
          },
          { name: "duplicate deliveries", value: f.duplicateDeliveries, ok: f.duplicateDeliveries === 0 },
          {
            name: "404 (Already Completed + No client waiting)",
            value: `${f.already404 + f.noClient404} (${f.already404} + ${f.noClient404})`,
            ok: f.already404 + f.noClient404 === f.requests - f.states,
          },
          { name: "other answers", value: f.otherAnswers, ok: f.otherAnswers === 0 },
          { name: "HTTP request failures", value: f.httpErrors, ok: f.httpErrors === 0 },
          { name: "waiters with their own code", value: `${f.delivered} / ${f.states}`, ok: f.delivered === f.states },
          { name: "lost / misrouted", value: `${f.lost} / ${f.misrouted}`, ok: f.lost === 0 && f.misrouted === 0 },
          { name: "waiters left in the relay", value: f.waitingAfter, ok: f.waitingAfter === 0 },
          {
            name: "callback time",
            value: `${secs(f.callbacksMs)} (${Math.round(f.requests / (f.callbacksMs / 1000))} req/s)`,
          },
        ];
      },
    );
  }

  if (only.has("fuzz")) {
    const frames = fuzzFrames({ frames: size.frames, seed: seed + 2, timeBudgetMs: quick ? 60_000 : 300_000 });
    const handler = await fuzzHandlerDirect({ requests: size.handler, seed: seed + 3 });
    failed += print("3a. Property/fuzz tests in process (fast-check)", [
      {
        name: "frames decoded (LineSplitter + decodeClientMessage)",
        value: frames.frames,
        ok: frames.frames >= size.frames,
      },
      { name: "  lines accepted / refused with ProtocolError", value: `${frames.accepted} / ${frames.refused}` },
      { name: "decoder crashes (any other exception)", value: frames.crashes, ok: frames.crashes === 0 },
      ...(frames.crash ? [{ name: "  counterexample", value: frames.crash }] : []),
      {
        name: `heap${frames.gcExposed ? " after GC" : " (no --expose-gc)"}: before → peak → after`,
        value: `${mib(frames.heapBefore)} → ${mib(frames.heapPeak)} → ${mib(frames.heapAfter)}`,
        ok: frames.heapAfter - frames.heapBefore < 16 * MiB && frames.heapPeak < 512 * MiB,
      },
      {
        name: "frame fuzz time",
        value: `${secs(frames.ms)} (${Math.round(frames.frames / (frames.ms / 1000))} frames/s)`,
      },
      { name: "HTTP handler requests (no socket)", value: handler.requests },
      { name: "  statuses", value: JSON.stringify(handler.statuses) },
      { name: "handler throws / bad status / missing headers", value: handler.failures, ok: handler.failures === 0 },
      ...(handler.failure ? [{ name: "  counterexample", value: handler.failure }] : []),
      { name: "handler fuzz time", value: secs(handler.ms) },
    ]);
    await withRelay("3b. Fuzzed frames and requests over the network", 10_000, async (relay) => {
      const f = await fuzzWire(relay, {
        frames: size.wireFrames,
        requests: size.wireFrames,
        concurrency: 50,
        seed: seed + 4,
      });
      return [
        { name: "coordinator connections, one generated frame each", value: f.frames },
        { name: "  answers", value: JSON.stringify(f.answers) },
        { name: "frames the relay never answered", value: f.unanswered, ok: f.unanswered === 0 },
        {
          name: "coordinator connect failures",
          value: f.coordinatorConnectErrors,
          ok: f.coordinatorConnectErrors === 0,
        },
        { name: "generated HTTP requests", value: f.requests },
        { name: "  statuses", value: JSON.stringify(f.statuses) },
        { name: "5xx / bad status / missing security headers", value: f.badAnswers, ok: f.badAnswers === 0 },
        ...(f.badAnswer ? [{ name: "  first", value: f.badAnswer }] : []),
        { name: "HTTP request failures", value: f.httpErrors, ok: f.httpErrors === 0 },
        { name: "waiters left in the relay", value: f.waitingAfter, ok: f.waitingAfter === 0 },
      ];
    });
  }

  if (only.has("slow")) {
    const registerTimeoutMs = Math.round(slow.dribbleMs / 3);
    await withRelay(
      `4. ${slow.http + slow.coordinator} slow connections (${slow.http} HTTP, ${slow.coordinator} coordinator) ` +
        `while ${slow.flows} real callbacks arrive`,
      registerTimeoutMs,
      async (relay) => {
        const f = await slowConnections(relay, {
          ...slow,
          byteEveryMs: [100, 500],
          flowConcurrency: 20,
          seed: seed + 5,
        });
        return [
          {
            name: "slow connections opened",
            value: `${f.slowHttp + f.slowCoordinator - f.connectErrors}`,
            ok: f.connectErrors === 0,
          },
          { name: "bytes dribbled (one every 100–500 ms)", value: f.bytesDribbled },
          { name: "dribbling time per connection", value: secs(slow.dribbleMs) },
          { name: "real flows succeeded", value: `${f.flowsOk} / ${f.flows}`, ok: f.flowsOk === f.flows },
          ...(f.flowFailure ? [{ name: "  first failure", value: f.flowFailure }] : []),
          {
            name: "real flow latency p50 / p99 / max",
            value: `${f.flowLatencyMs.p50.toFixed(0)} / ${f.flowLatencyMs.p99.toFixed(0)} / ${
              f.flowLatencyMs.max.toFixed(0)
            } ms`,
          },
          {
            name: `coordinator dribblers cut as idle (after ${registerTimeoutMs} ms)`,
            value: `${f.coordinatorIdle} / ${f.slowCoordinator}`,
            ok: f.coordinatorIdle === f.slowCoordinator,
          },
          {
            name: "HTTP dribblers closed by the relay (headers / body)",
            value: `${f.closedByRelay.httpHeaders} / ${f.closedByRelay.httpBody}`,
          },
          { name: "waiters left in the relay", value: f.waitingAfter, ok: f.waitingAfter === 0 },
        ];
      },
    );
  }

  console.log(
    `\nTotal wall time ${secs(performance.now() - wall)}; ${
      failed === 0 ? "every figure is right" : `${failed} figure(s) wrong`
    }`,
  );
  console.log(`Reproduce: deno task stress${quick ? " --quick" : ""}${useTcp ? " --tcp" : ""} --seed=${seed}`);
  if (failed > 0) Deno.exit(1);
}

if (import.meta.main) {
  if (Deno.args[0] === "--relay") await relayChild(JSON.parse(Deno.args[1]));
  else await main();
}
