/**
 * What every stress scenario shares: the run's settings, the figures it
 * prints, and a fresh relay child per scenario with the figures about the
 * relay itself.
 *
 * @module
 */

import type { ChildStats } from "../../tests/support/relay_child.ts";
import { RelayProcess } from "../../tests/support/relay_process.ts";

/** The settings of one `deno task stress` run. */
export interface StressRun {
  /** About a tenth of the full sizes (`--quick`). */
  quick: boolean;
  /** The coordinator on loopback TCP instead of a Unix socket (`--tcp`). */
  useTcp: boolean;
  /** Seeds every random choice (orders, fuzz inputs) of the run (`--seed=N`). */
  seed: number;
}

/** One printed figure; `ok` false makes the run fail. */
export interface Figure {
  name: string;
  value: string | number;
  ok?: boolean;
}

/** The figures of one scenario under its title. */
export interface Section {
  title: string;
  figures: Figure[];
}

/** A scenario of the stress run: measures, and returns what to print. */
export type Scenario = (run: StressRun) => Promise<Section>;

export const MiB = 1024 * 1024;

/** `bytes` in MiB, one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** `ms` in seconds, one decimal. */
export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Prints `section`; returns how many of its figures are wrong. */
export function print({ title, figures }: Section): number {
  console.log(`\n${title}`);
  let failed = 0;
  for (const { name, value, ok } of figures) {
    const mark = ok === undefined ? " " : ok ? "✓" : "✗";
    if (ok === false) failed++;
    console.log(`  ${mark} ${name.padEnd(52, ".")} ${value}`);
  }
  return failed;
}

/** Figures about the relay child itself, common to every scenario. */
async function relayFigures(relay: RelayProcess, before: ChildStats | null): Promise<Figure[]> {
  if (relay.crashed) return [{ name: "relay crashes", value: `1 (${relay.crashed.slice(0, 300)})`, ok: false }];
  const after = await relay.stats();
  return [
    { name: "relay crashes", value: 0, ok: true },
    { name: "relay ERROR lines (handler threw / 5xx)", value: after.errorCount, ok: after.errorCount === 0 },
    ...(after.errors.length ? [{ name: "  first ERROR line", value: after.errors[0].slice(0, 120) }] : []),
    {
      name: "relay heap after GC, before → after",
      value: `${mib(before?.heapUsed ?? 0)} → ${mib(after.heapUsed)}`,
      ok: after.heapUsed - (before?.heapUsed ?? 0) < 64 * MiB,
    },
    { name: "relay RSS after", value: mib(after.rss) },
  ];
}

/**
 * Runs `measure` against a fresh relay child (`maxWaiters` 20,000) and adds
 * the relay's own figures and the wall time. A scenario that throws becomes
 * a wrong figure instead of ending the run.
 */
export async function withRelay(
  run: StressRun,
  title: string,
  registerTimeoutMs: number,
  measure: (relay: RelayProcess) => Promise<Figure[]>,
): Promise<Section> {
  await using relay = await RelayProcess.start({ useTcp: run.useTcp, maxWaiters: 20_000, registerTimeoutMs });
  const before = await relay.stats();
  const started = performance.now();
  let figures: Figure[];
  try {
    figures = await measure(relay);
  } catch (error) {
    figures = [{ name: "scenario failed", value: error instanceof Error ? error.message : String(error), ok: false }];
  }
  figures.push(...await relayFigures(relay, before), { name: "wall time", value: secs(performance.now() - started) });
  return { title, figures };
}
