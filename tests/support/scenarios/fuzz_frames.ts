/**
 * Stress scenario 3a, first half: generated coordinator frames through the
 * line splitter and the decoder, in process, with the heap measured before
 * and after.
 *
 * @module
 */

import fc from "fast-check";
import { decodeStream, type DecodeTally, streamArb } from "../generators.ts";
import { gcExposed, heapUsed } from "../stats.ts";

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
    gcExposed: gcExposed(),
    ms,
  };
}
