/**
 * Stress figure 3b: 3,000 generated frames (300 with `--quick`) to the live
 * coordinator, one connection each, and as many generated requests to the live
 * HTTP side. Every frame must be answered; no request may get a 5xx or lack
 * the security headers.
 *
 * @module
 */

import { fuzzWire } from "../../tests/support/scenarios/fuzz_wire.ts";
import { type Section, type StressRun, withRelay } from "./report.ts";

/** Runs {@linkcode fuzzWire} against a fresh relay child. */
export function runFuzzWire(run: StressRun): Promise<Section> {
  const count = run.quick ? 300 : 3_000;
  return withRelay(run, "3b. Fuzzed frames and requests over the network", 10_000, async (relay) => {
    const f = await fuzzWire(relay, { frames: count, requests: count, concurrency: 50, seed: run.seed + 4 });
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
