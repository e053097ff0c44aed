/**
 * What the benchmark's processes share: the clock, the states and codes they
 * agree on, and the JSON-lines channel a child process talks over (commands
 * on stdin, replies on stdout).
 *
 * @module
 */

import { textLines } from "../tests/support/lines.ts";
import { percentile } from "../tests/support/stats.ts";

// One line reader for the benchmark's children and the stress relay child.
export { textLines };

/**
 * Milliseconds on the wall clock with sub-millisecond precision. Every
 * process of the benchmark runs on this machine, so a time taken in the load
 * generator and one taken in a waiter process are on one clock.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The path of the relay's callback route in the benchmark. */
export const CALLBACK_PATH = "/oauth/callback";

/** The `i`-th state of a group: 32 URL-safe characters, like a random state. */
export function stateOf(prefix: string, i: number): string {
  return `${prefix}.${i}`.padEnd(32, "s");
}

/** The code the load generator sends for `state`: 64 characters, like a real authorization code. */
export function codeOf(state: string): string {
  return `code.${state}`.padEnd(64, "c");
}

/** The callback URL path that delivers {@linkcode codeOf}(`state`) to the waiter of `state`. */
export function callbackPath(state: string): string {
  return `${CALLBACK_PATH}?code=${codeOf(state)}&state=${state}`;
}

/** A command to a child process or a reply from it; `id` pairs them. */
export type Message = { id: number; [key: string]: unknown };

const encoder = new TextEncoder();

/** Writes one message to stdout (the parent reads it). */
export function reply(message: Message): void {
  const bytes = encoder.encode(JSON.stringify(message) + "\n");
  for (let offset = 0; offset < bytes.length;) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}

/** Reads commands from stdin, one JSON object a line, until the parent closes it. */
export async function* commands(): AsyncGenerator<Message> {
  for await (const line of textLines(Deno.stdin.readable)) if (line.trim()) yield JSON.parse(line);
}

/** Runs `handle` for every command; a failing command is reported, not fatal. */
export async function serveCommands(handle: (command: Message) => Promise<void> | void): Promise<void> {
  for await (const command of commands()) {
    if (command.op === "exit") break;
    Promise.resolve()
      .then(() => handle(command))
      .catch((error) => reply({ id: command.id, ev: "error", message: String(error?.stack ?? error) }));
  }
}

/** Summary of a list of latencies. */
export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  min: number;
  mean: number;
}

/** p50, p90, p99, min, max and mean of `values` ({@linkcode percentile}: nearest rank). */
export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1],
    min: sorted[0],
    mean: sorted.reduce((sum, value) => sum + value, 0) / sorted.length,
  };
}
