/**
 * Stress figure 1: 10,000 concurrent waiters (1,000 with `--quick`), their
 * callbacks and 1,000 decoys sent in random order. Every waiter must get its
 * own code: none lost, none misrouted.
 *
 * @module
 */

import { manyWaiters } from "../../tests/support/scenarios/waiters.ts";
import { secs, type Section, type StressRun, withRelay } from "./report.ts";

/** Runs {@linkcode manyWaiters} against a fresh relay child. */
export function runWaiters(run: StressRun): Promise<Section> {
  const size = run.quick ? { waiters: 1_000, decoys: 100 } : { waiters: 10_000, decoys: 1_000 };
  const title = `1. ${size.waiters.toLocaleString("en")} concurrent waiters, callbacks in random order`;
  return withRelay(run, title, 10_000, async (relay) => {
    const f = await manyWaiters(relay, {
      ...size,
      concurrency: 100,
      registerConcurrency: 200,
      seed: run.seed,
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
  });
}
