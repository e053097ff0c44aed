/**
 * The CLI's Deno adapter: the process as `Deno` shows it (`Deno.args`, the
 * standard streams, `Deno.exitCode`, `Deno.consoleSize()`). `io_node.ts` has
 * the same shape for Node and Bun; `client.ts` picks one at run time.
 *
 * @module
 */

import type { CliProcess, Terminal } from "./io.ts";

/** What a terminal that cannot say its size is taken to be. */
const FALLBACK_SIZE = { columns: 80, rows: 24 };

const encoder = new TextEncoder();

/** Writes all of `text`: `writeSync` may write part of the bytes (a pipe that is nearly full). */
function write(stream: typeof Deno.stderr, text: string): void {
  const bytes = encoder.encode(text);
  for (let offset = 0; offset < bytes.length;) offset += stream.writeSync(bytes.subarray(offset));
}

/** Standard error as a terminal, when it is one. */
function terminal(): Terminal | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  return {
    write: (text) => write(Deno.stderr, text),
    size: () => {
      try {
        return Deno.consoleSize();
      } catch {
        return FALLBACK_SIZE;
      }
    },
  };
}

/**
 * This Deno process as the CLI sees it. Writes are synchronous, so a line is
 * out before the next step starts (the link before the wait), and the exit
 * code is `Deno.exitCode`, so the process ends when its work is done.
 *
 * @returns The arguments, the streams and the exit code of this process.
 *
 * @example
 * ```ts
 * import { cliProcess } from "./io_deno.ts";
 * import assert from "node:assert/strict";
 *
 * const cli = cliProcess();
 * assert.deepEqual(cli.args, Deno.args);
 * assert.equal(cli.io.env, undefined, "the process's own environment, read when permitted");
 * ```
 */
export function cliProcess(): CliProcess {
  return {
    args: Deno.args,
    io: {
      stdout: (text) => write(Deno.stdout, text + "\n"),
      stderr: (text) => write(Deno.stderr, text + "\n"),
      terminal: terminal(),
    },
    setExitCode: (code) => Deno.exitCode = code,
  };
}
