/**
 * Hands memory back once a flood is over.
 *
 * A flood leaves the relay's heap almost empty but its memory high: V8 grows
 * its young generation to about 48 MiB under the allocation rate of
 * thousands of connections a second, and keeps that, and the pages it
 * freed, for as long as the process lives (measured: RSS 70 → 150 MiB after
 * a flood, with 7 MiB of live heap). One memory-reducing full collection
 * gives it back (150 → 75 MiB). The relay runs it once, after a quiet
 * interval that follows lines a stranger can repeat (`Logger.limited`: shed
 * connections, time-outs, unmatched callbacks), which is when a flood ends.
 * It needs `--v8-flags=--expose-gc` (`deno task serve` grants it); without
 * it nothing happens. The rest is glibc's: see docs/deploy.md for
 * `MALLOC_MMAP_THRESHOLD_`.
 *
 * @module
 */

import type { Logger } from "./log.ts";

/** `globalThis.gc` with the options V8 takes when `--expose-gc` is on. */
type ExposedGc = (
  options?: { type?: "major" | "minor"; execution?: "sync" | "async"; flavor?: "regular" | "last-resort" },
) => void;

/** A logger that notices floods, and stops noticing on `stop()`. */
export interface FloodWatch {
  /** `logger`, whose `limited` lines also count as flood activity. */
  logger: Logger;
  /** Cancels a pending collection. */
  stop(): void;
}

/**
 * Wraps `logger` so that, once `quietMs` pass without a `limited` line after
 * some were logged, one memory-reducing collection runs and an INFO line says
 * what it gave back.
 */
export function reclaimAfterFloods(logger: Logger, quietMs: number): FloodWatch {
  const gc = (globalThis as { gc?: ExposedGc }).gc;
  if (typeof gc !== "function") return { logger, stop() {} };
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    const left = last + quietMs - performance.now();
    if (left > 0) {
      arm(left);
      return;
    }
    timer = undefined;
    const before = Deno.memoryUsage().rss;
    const started = performance.now();
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    const took = performance.now() - started;
    const after = Deno.memoryUsage().rss;
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    logger.info(
      `Quiet again after a flood: handed memory back, RSS ${mib(before)} → ${mib(after)} MiB (${Math.round(took)} ms)`,
    );
  };
  const arm = (ms: number) => {
    timer = setTimeout(check, ms);
    // A pending collection must not keep the process alive.
    Deno.unrefTimer(timer as unknown as number);
  };
  return {
    logger: {
      ...logger,
      limited(level, kind, message) {
        last = performance.now();
        if (timer === undefined) arm(quietMs);
        logger.limited(level, kind, message);
      },
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
