/**
 * Stress scenario 1: many concurrent waiters, their callbacks (and decoys for
 * states nobody waits for) sent in random order. Counts the waiters that got
 * nothing (lost) and those that got another state's code (misrouted).
 *
 * @module
 */

import { callback, codeOf, drained, judge, pool, random, registerAll, settle, shuffle, type Target } from "../load.ts";

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
