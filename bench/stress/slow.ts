/**
 * Stress figure 4: 1,000 slow connections (100 with `--quick`), half HTTP and
 * half coordinator, each sending one byte every 100–500 ms, while 300 real
 * flows (50) register, get their callback and receive their code. The relay's
 * `registerTimeoutMs` is a third of the dribbling time, so every coordinator
 * dribbler must be cut as idle.
 *
 * @module
 */

import { slowConnections } from "../../tests/support/scenarios/slow.ts";
import { secs, type Section, type StressRun, withRelay } from "./report.ts";

/** Runs {@linkcode slowConnections} against a fresh relay child. */
export function runSlow(run: StressRun): Promise<Section> {
  const slow = run.quick
    ? { http: 50, coordinator: 50, dribbleMs: 3_000, flows: 50 }
    : { http: 500, coordinator: 500, dribbleMs: 6_000, flows: 300 };
  const registerTimeoutMs = Math.round(slow.dribbleMs / 3);
  const title = `4. ${slow.http + slow.coordinator} slow connections (${slow.http} HTTP, ` +
    `${slow.coordinator} coordinator) while ${slow.flows} real callbacks arrive`;
  return withRelay(run, title, registerTimeoutMs, async (relay) => {
    const f = await slowConnections(relay, {
      ...slow,
      byteEveryMs: [100, 500],
      flowConcurrency: 20,
      seed: run.seed + 5,
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
        name: `coordinator dribblers cut (idle after ${registerTimeoutMs} ms, or busy to make room)`,
        value: `${f.coordinatorCut} / ${f.slowCoordinator}`,
        ok: f.coordinatorCut === f.slowCoordinator,
      },
      {
        name: "HTTP dribblers closed by the relay (headers / body)",
        value: `${f.closedByRelay.httpHeaders} / ${f.closedByRelay.httpBody}`,
      },
      { name: "waiters left in the relay", value: f.waitingAfter, ok: f.waitingAfter === 0 },
    ];
  });
}
