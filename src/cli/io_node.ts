/**
 * The CLI's Node adapter, which Bun (and Deno) run as well: the process as
 * `node:process` shows it (`argv`, `stdout`/`stderr`, `exitCode`, a TTY's
 * `columns` and `rows`). `io_deno.ts` has the same shape for Deno;
 * `bin.ts` (the npm package's `oauth-relay` command) uses this one.
 *
 * @module
 */

import process from "node:process";
import type { CliProcess, Terminal } from "./io.ts";

/** What a terminal that cannot say its size is taken to be. */
const FALLBACK_SIZE = { columns: 80, rows: 24 };

/** How usage lines name the program: the npm package's command. */
const PROGRAM = "oauth-relay";

/** Standard error as a terminal, when it is one. */
function terminal(): Terminal | undefined {
  const stderr = process.stderr;
  if (!stderr.isTTY) return undefined;
  return {
    write: (text) => void stderr.write(text),
    // A TTY stream keeps its size current (it listens for SIGWINCH).
    size: () => stderr.columns > 0 ? { columns: stderr.columns, rows: stderr.rows } : FALLBACK_SIZE,
  };
}

/**
 * This process as the CLI sees it, on Node, Bun or Deno's Node layer. Lines
 * keep their order on each stream; a write to a pipe may still be queued when
 * the command returns (Node writes pipes asynchronously on POSIX), so the exit
 * code goes to `process.exitCode`, never `process.exit()`: the process ends
 * once everything written is out.
 *
 * @returns The arguments, the streams and the exit code of this process.
 *
 * @example
 * ```ts
 * import { cliProcess } from "./io_node.ts";
 * import process from "node:process";
 * import assert from "node:assert/strict";
 *
 * const cli = cliProcess();
 * assert.deepEqual(cli.args, process.argv.slice(2));
 * assert.equal(cli.io.program, "oauth-relay");
 * ```
 */
export function cliProcess(): CliProcess {
  return {
    args: process.argv.slice(2),
    io: {
      stdout: (text) => void process.stdout.write(text + "\n"),
      stderr: (text) => void process.stderr.write(text + "\n"),
      terminal: terminal(),
      program: PROGRAM,
    },
    setExitCode: (code) => process.exitCode = code,
  };
}
