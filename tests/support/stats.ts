/**
 * The one percentile rule of the tests and the benchmarks, and the heap
 * figure they report.
 *
 * @module
 */

/**
 * The nearest-rank percentile of `sorted` (ascending): the smallest value
 * with at least `p` (0–1) of the values at or below it. 0 for an empty list.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** Whether a full GC can be forced (`--v8-flags=--expose-gc`). */
export function gcExposed(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === "function";
}

/** The V8 heap in use, after a full GC when {@linkcode gcExposed}. */
export function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed;
}
