/**
 * Stress figure 2: 100 parallel identical callbacks for each of 1,000 states
 * (20 × 100 with `--quick`). Exactly one per state may deliver; every other
 * one gets 404.
 *
 * @module
 */

import { parallelIdentical } from "../../tests/support/scenarios/duplicates.ts";
import { secs, type Section, type StressRun, withRelay } from "./report.ts";

/** Runs {@linkcode parallelIdentical} against a fresh relay child. */
export function runDuplicates(run: StressRun): Promise<Section> {
  const size = run.quick ? { states: 100, parallel: 20 } : { states: 1_000, parallel: 100 };
  const title = `2. ${size.parallel} parallel identical callbacks × ${size.states.toLocaleString("en")} states`;
  return withRelay(run, title, 10_000, async (relay) => {
    const f = await parallelIdentical(relay, {
      ...size,
      registerConcurrency: 200,
      seed: run.seed + 1,
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
  });
}
