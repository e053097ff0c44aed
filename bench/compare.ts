/**
 * Compares runs of `deno task bench`: the relay's figures side by side, as a
 * Markdown table, for before/after notes. With several files per side
 * (`before1.json,before2.json`), each figure is their median, which tames a
 * noisy machine.
 *
 * Usage: `deno run --allow-read bench/compare.ts BEFORE.json[,…] AFTER.json[,…]`
 *
 * @module
 */

import type { Summary } from "./common.ts";

interface Run {
  floor: { throughput: { perSecond: number }; roundTripUs: Summary };
  modes: Record<string, Record<"bare" | "relay", RelayRun>>;
}

interface RelayRun {
  throughput: { perSecond: number; cpuUs: Record<string, { user: number; system: number }> };
  latency: Array<{ otherWaiting: number; latencyUs: Summary }>;
  memory: Array<{ waiting: number; bytesPerWaiter: number }>;
}

const [beforeArg, afterArg] = Deno.args;
if (!beforeArg || !afterArg) {
  console.error("Usage: deno run --allow-read bench/compare.ts BEFORE.json[,…] AFTER.json[,…]");
  Deno.exit(2);
}
const load = (arg: string): Run[] => arg.split(",").map((file) => JSON.parse(Deno.readTextFileSync(file)));
const before = load(beforeArg);
const after = load(afterArg);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const rows: Array<[string, string, string]> = [];
const add = (label: string, pick: (run: Run) => number, format: (value: number) => string) => {
  rows.push([label, format(median(before.map(pick))), format(median(after.map(pick)))]);
};
const int = (value: number) => Math.round(value).toLocaleString("en-US");
const us = (value: number) => `${int(value)} µs`;
const ratio = (value: number) => value.toFixed(2);
const kib = (value: number) => `${(value / 1024).toFixed(2)} KiB`;
const cpu = (time: { user: number; system: number }) => time.user + time.system;

add("HTTP floor requests/s", (run) => run.floor.throughput.perSecond, int);
add("HTTP floor round trip p50", (run) => run.floor.roundTripUs.p50, us);
for (const mode of Object.keys(after[0].modes)) {
  const relay = (run: Run) => run.modes[mode].relay;
  add(`${mode}: deliveries/s`, (run) => relay(run).throughput.perSecond, int);
  add(
    `${mode}: deliveries/s ÷ HTTP floor requests/s`,
    (run) => relay(run).throughput.perSecond / run.floor.throughput.perSecond,
    ratio,
  );
  add(`${mode}: relay CPU per delivery`, (run) => cpu(relay(run).throughput.cpuUs.relay), us);
  add(`${mode}: waiter CPU per delivery`, (run) => cpu(relay(run).throughput.cpuUs.waiters), us);
  after[0].modes[mode].relay.latency.forEach(({ otherWaiting }, i) => {
    add(`${mode}: latency p50, ${int(otherWaiting)} other waiting`, (run) => relay(run).latency[i].latencyUs.p50, us);
    add(`${mode}: latency p99, ${int(otherWaiting)} other waiting`, (run) => relay(run).latency[i].latencyUs.p99, us);
  });
  add(
    `${mode}: latency p50 ÷ HTTP floor round trip p50, 1 other waiting`,
    (run) => relay(run).latency[0].latencyUs.p50 / run.floor.roundTripUs.p50,
    ratio,
  );
  after[0].modes[mode].relay.memory.forEach(({ waiting }, i) => {
    add(
      `${mode}: relay RSS per waiting client, ${int(waiting)} waiting`,
      (run) => relay(run).memory[i].bytesPerWaiter,
      kib,
    );
  });
}

const header: [string, string, string] = [
  "Figure",
  `Before (${before.length === 1 ? "1 run" : `median of ${before.length}`})`,
  `After (${after.length === 1 ? "1 run" : `median of ${after.length}`})`,
];
const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => [...row[i]].length)));
const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(" | ")} |`;
console.log(line(header));
console.log(`|${widths.map((width, i) => "-".repeat(width + 1) + (i === 0 ? "-" : ":")).join("|")}|`);
for (const row of rows) console.log(line(row));
