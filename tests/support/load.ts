/**
 * The load the stress scenarios put on a relay: real callbacks over HTTP, real
 * `waitForCode` waiters, raw coordinator connections, and the bookkeeping of
 * what each waiter received.
 *
 * @module
 */

import { waitForCode } from "../../src/client/wait.ts";
import type { CoordinatorAddress, Settings } from "../../src/client/settings.ts";
import type { OAuthCallbackResult } from "../../src/protocol/mod.ts";

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

/** Shuffles `items` in place (Fisher–Yates) with the random numbers of `next`. */
export function shuffle<T>(items: T[], next: () => number): T[] {
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

/** Resolves after `ms` (at once when `ms` ≤ 0). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
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
export interface Waiting {
  state: string;
  registered: Promise<boolean>;
  outcome: Promise<OAuthCallbackResult | Error>;
}

/** Starts a `waitForCode` for `state` against `target`. */
export function startWaiter(target: Target, state: string, signal: AbortSignal, timeout: number): Waiting {
  const { promise: registered, resolve } = Promise.withResolvers<boolean>();
  const outcome = waitForCode({ state, timeout, signal, settings: target.client, onRegistered: () => resolve(true) })
    .catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  outcome.then(() => resolve(false));
  return { state, registered, outcome };
}

/** Registers a waiter for each state, at most `concurrency` registrations in flight. */
export async function registerAll(
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
export function judge(waits: Waiting[], outcomes: Array<OAuthCallbackResult | Error>) {
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
export async function settle(waits: Waiting[], controller: AbortController, deadlineMs: number) {
  const timer = setTimeout(() => controller.abort(new Error("Deadline of the scenario passed")), deadlineMs);
  try {
    return await Promise.all(waits.map((w) => w.outcome));
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `target.waiting()` until it is 0 (the relay notices closed sockets asynchronously); bounded. */
export async function drained(target: Target, ms = 3_000): Promise<number> {
  const until = Date.now() + ms;
  let waiting = await target.waiting();
  while (waiting > 0 && Date.now() < until) {
    await sleep(20);
    waiting = await target.waiting();
  }
  return waiting;
}

/** Connects to the coordinator at `address` (a socket: an HTTPS relay has no raw connection). */
export function connectTo(address: CoordinatorAddress): Promise<Deno.Conn> {
  if (address.transport === "unix") return Deno.connect({ transport: "unix", path: address.path });
  if (address.transport === "tcp") {
    return Deno.connect({ transport: "tcp", hostname: address.hostname, port: address.port });
  }
  return Promise.reject(new TypeError(`No raw connection to an ${address.transport} coordinator`));
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
