/**
 * Stress scenario 2: parallel identical callbacks. For each state, many copies
 * of its callback are sent at once; exactly one may deliver.
 *
 * @module
 */

import { callback, codeOf, drained, judge, random, registerAll, settle, shuffle, type Target } from "../load.ts";

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
