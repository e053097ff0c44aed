/**
 * `deno task stress`: measures the reliability figures of docs/reliability.md
 * and exits non-zero when one is wrong.
 *
 *   deno task stress            the full run (10,000 waiters, 100 × 1,000, 10⁶ frames, 1,000 slow connections,
 *                               a flood of 4,500 connections under ulimit -n 256)
 *   deno task stress --quick    the same scenarios, smaller (about a tenth)
 *   deno task stress --tcp      the coordinator on loopback TCP instead of a Unix socket
 *   deno task stress --seed=N   repeat a run's random choices (orders, fuzz inputs)
 *   deno task stress --only=waiters,parallel,fuzz,slow,flood
 *
 * This file only parses the arguments and prints the figures. Each scenario is
 * a file in bench/stress/ that sizes its run and turns its measurement into
 * figures; the measurements themselves are in tests/support/scenarios/, which
 * tests/stress_test.ts runs, smaller, against an in-process relay. Here each
 * scenario but the in-process fuzzing gets a fresh relay in a child process
 * (tests/support/relay_child.ts), so a crash of the relay is seen as a figure
 * instead of killing the measurement, and the relay's and the load's file
 * descriptors do not share one limit. The load is real HTTP and real
 * coordinator connections over loopback, with a bounded number in flight.
 *
 * @module
 */

import { runDuplicates } from "./stress/duplicates.ts";
import { runFlood } from "./stress/flood.ts";
import { runFuzzInProcess } from "./stress/fuzz_in_process.ts";
import { runFuzzWire } from "./stress/fuzz_wire.ts";
import { print, type Scenario, secs, type StressRun } from "./stress/report.ts";
import { runSlow } from "./stress/slow.ts";
import { runWaiters } from "./stress/waiters.ts";

/** The scenarios by their `--only` name, in the order they run. */
const SCENARIOS: Record<string, Scenario[]> = {
  waiters: [runWaiters],
  parallel: [runDuplicates],
  fuzz: [runFuzzInProcess, runFuzzWire],
  slow: [runSlow],
  flood: [runFlood],
};

/** The command line of a run. */
interface Options extends StressRun {
  /** Names of {@linkcode SCENARIOS} to run, in their order. */
  only: string[];
}

/** Parses `args`; throws on anything it does not know. */
function parseArgs(args: readonly string[]): Options {
  const options: Options = {
    quick: false,
    useTcp: false,
    seed: Math.floor(Math.random() * 2 ** 31),
    only: Object.keys(SCENARIOS),
  };
  for (const arg of args) {
    const [name, value] = arg.split(/=(.*)/s, 2);
    if (arg === "--quick") options.quick = true;
    else if (arg === "--tcp") options.useTcp = true;
    else if (name === "--seed" && /^\d+$/.test(value ?? "")) options.seed = Number(value);
    else if (name === "--only" && value) {
      const wanted = value.split(",");
      const unknown = wanted.filter((scenario) => !(scenario in SCENARIOS));
      if (unknown.length) throw new Error(`Unknown scenario ${unknown.join(", ")}`);
      options.only = Object.keys(SCENARIOS).filter((scenario) => wanted.includes(scenario));
    } else throw new Error(`Unknown or malformed argument ${arg}`);
  }
  return options;
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseArgs(Deno.args);
  } catch (error) {
    console.error(
      `${(error as Error).message}. Usage: deno task stress [--quick] [--tcp] [--seed=N] ` +
        `[--only=${Object.keys(SCENARIOS).join(",")}]`,
    );
    Deno.exit(2);
  }
  const { quick, useTcp, seed, only } = options;
  console.log(`oauth-relay stress${quick ? " --quick" : ""}: seed ${seed}, coordinator ${useTcp ? "tcp" : "unix"}`);
  console.log(`deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${Deno.build.os}/${Deno.build.arch}`);
  const wall = performance.now();
  let failed = 0;
  for (const name of only) for (const scenario of SCENARIOS[name]) failed += print(await scenario(options));
  const verdict = failed === 0 ? "every figure is right" : `${failed} figure(s) wrong`;
  console.log(`\nTotal wall time ${secs(performance.now() - wall)}; ${verdict}`);
  const subset = only.length < Object.keys(SCENARIOS).length ? ` --only=${only.join(",")}` : "";
  console.log(`Reproduce: deno task stress${quick ? " --quick" : ""}${useTcp ? " --tcp" : ""}${subset} --seed=${seed}`);
  if (failed > 0) Deno.exit(1);
}

if (import.meta.main) await main();
