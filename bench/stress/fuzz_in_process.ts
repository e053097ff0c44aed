/**
 * Stress figure 3a: property/fuzz tests in process (fast-check). A million
 * generated frames (50,000 with `--quick`) through the line splitter and the
 * decoder, then 20,000 generated requests (2,000) straight into the HTTP
 * handler. No relay child: nothing here crosses a socket.
 *
 * @module
 */

import { fuzzFrames } from "../../tests/support/scenarios/fuzz_frames.ts";
import { fuzzHandlerDirect } from "../../tests/support/scenarios/fuzz_handler.ts";
import { MiB, mib, secs, type Section, type StressRun } from "./report.ts";

/** Runs {@linkcode fuzzFrames} and {@linkcode fuzzHandlerDirect} in this process. */
export async function runFuzzInProcess(run: StressRun): Promise<Section> {
  const size = run.quick
    ? { frames: 50_000, requests: 2_000, timeBudgetMs: 60_000 }
    : { frames: 1_000_000, requests: 20_000, timeBudgetMs: 300_000 };
  const frames = fuzzFrames({ frames: size.frames, seed: run.seed + 2, timeBudgetMs: size.timeBudgetMs });
  const handler = await fuzzHandlerDirect({ requests: size.requests, seed: run.seed + 3 });
  return {
    title: "3a. Property/fuzz tests in process (fast-check)",
    figures: [
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
    ],
  };
}
