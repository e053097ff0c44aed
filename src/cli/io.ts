/**
 * What every command of the CLI shares: where it writes and what it reads
 * ({@linkcode CliIo}), what it returns ({@linkcode EXIT}), and its shape
 * ({@linkcode Command}).
 *
 * @module
 */

import type { EnvSource } from "../client/settings.ts";

export type { EnvSource };

/**
 * Exit codes of the CLI, one meaning each, shared by every command: 0 code
 * (or tokens) received, 1 callback without a code, 2 bad usage, 3 timeout,
 * 4 relay not reachable, 5 relay refused or ended the wait; and of `login`:
 * 6 authorization denied, 7 the provider refused the exchange, 8 the response
 * failed a check, 9 the provider cannot be used, 10 the tokens cannot be written.
 *
 * @example
 * ```ts
 * import { EXIT } from "./io.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(EXIT.USAGE, 2);
 * assert.deepEqual(Object.values(EXIT), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
 * ```
 */
export const EXIT = {
  CODE: 0,
  NO_CODE: 1,
  USAGE: 2,
  TIMEOUT: 3,
  UNREACHABLE: 4,
  REFUSED: 5,
  DENIED: 6,
  EXCHANGE_REFUSED: 7,
  CHECK_FAILED: 8,
  PROVIDER: 9,
  OUTPUT: 10,
} as const;

/** Standard error when it is a terminal: raw writes for a line that changes in place, and its size. */
export interface Terminal {
  /** Writes `text` as it is, without a newline (`\r` returns to the start of the line). */
  write(text: string): void;
  /** The terminal's size now, in character cells. */
  size(): { columns: number; rows: number };
}

/**
 * Where a command writes and what it reads. The real process writes to its
 * streams and reads its own environment; a test passes arrays and variables.
 *
 * @example
 * ```ts
 * import type { CliIo } from "./io.ts";
 * import { main } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * const stdout: string[] = [];
 * const stderr: string[] = [];
 * const io: CliIo = { stdout: (text) => stdout.push(text), stderr: (text) => stderr.push(text), env: {} };
 * assert.equal(await main(["--help"], io), 0);
 * assert.match(stdout.join("\n"), /Exit codes/);
 * assert.deepEqual(stderr, []);
 * ```
 */
export interface CliIo {
  /** Writes `text` and a newline to standard output: results only, what a script captures. */
  stdout(text: string): void;
  /** Writes `text` and a newline to standard error: one line per message for a person. */
  stderr(text: string): void;
  /**
   * The variables to read (`OAUTH_STATE` and the other `OAUTH_*` settings). Default: the
   * process environment when the program may read it, else none (defaults, never a prompt).
   */
  env?: EnvSource;
  /** Present when standard error is a terminal: a command may then draw (a QR code, a countdown). */
  terminal?: Terminal;
  /** How usage lines name the program, e.g. `oauth-relay`. Default: the `deno run … client.ts` command. */
  program?: string;
}

/**
 * The process the CLI runs as, seen through a runtime adapter
 * (`io_deno.ts`, `io_node.ts`, both exporting `cliProcess()`): its
 * arguments, its streams as a {@linkcode CliIo}, and its exit code.
 *
 * @example
 * ```ts
 * import type { CliProcess } from "./io.ts";
 * import { runCli } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * let exitCode: number | undefined;
 * const stderr: string[] = [];
 * const cli: CliProcess = {
 *   args: ["--bogus"],
 *   io: { stdout: () => {}, stderr: (text) => stderr.push(text), env: {} },
 *   setExitCode: (code) => exitCode = code,
 * };
 * await runCli(cli);
 * assert.equal(exitCode, 2);
 * assert.equal(stderr.length, 1);
 * ```
 */
export interface CliProcess {
  /** The command-line arguments after the program's name. */
  args: string[];
  /** The process's standard output and error, and whether standard error is a terminal. */
  io: CliIo;
  /**
   * Sets the code the process exits with once nothing is left to do. It does not end the process at
   * once: what was written to a pipe is still flushed.
   */
  setExitCode(code: number): void;
}

/**
 * One subcommand of the CLI: an entry of the table in `main.ts`.
 *
 * @example
 * ```ts
 * import { type Command, EXIT } from "./io.ts";
 * import assert from "node:assert/strict";
 *
 * const hello: Command = {
 *   summary: "Say hello",
 *   help: "Says hello on stdout.",
 *   run(args, io, usage) {
 *     if (args.includes("--help")) io.stdout(usage);
 *     else io.stdout("hello");
 *     return Promise.resolve(EXIT.CODE);
 *   },
 * };
 * const lines: string[] = [];
 * assert.equal(await hello.run([], { stdout: (text) => lines.push(text), stderr: () => {} }, hello.help), 0);
 * assert.deepEqual(lines, ["hello"]);
 * ```
 */
export interface Command {
  /** One line for the list of commands in the top-level `--help`. */
  summary: string;
  /** What `--help` shows below the usage line: what the command does, its options, its exit codes. */
  help: string;
  /**
   * Runs the command.
   *
   * @param args The arguments after the command's name (all of them for the default command).
   * @param io Where to write, and the environment.
   * @param usage The whole text `--help` prints, usage line included.
   * @returns One of the {@linkcode EXIT} codes.
   */
  run(args: string[], io: CliIo, usage: string): Promise<number>;
}

/**
 * Reports bad usage in one line on stderr and returns {@linkcode EXIT.USAGE}.
 *
 * @param io Where to write.
 * @param message What is wrong, without a final period.
 * @returns {@linkcode EXIT.USAGE} (2).
 *
 * @example
 * ```ts
 * import { usageError } from "./io.ts";
 * import assert from "node:assert/strict";
 *
 * const stderr: string[] = [];
 * assert.equal(usageError({ stdout: () => {}, stderr: (text) => stderr.push(text) }, "--port must be a number"), 2);
 * assert.deepEqual(stderr, ["oauth-relay: --port must be a number; see --help"]);
 * ```
 */
export function usageError(io: CliIo, message: string): number {
  io.stderr(`oauth-relay: ${message}; see --help`);
  return EXIT.USAGE;
}

/**
 * Reports what `node:util`'s `parseArgs` threw as bad usage, in one line
 * (it spreads some messages over lines), and returns {@linkcode EXIT.USAGE}.
 *
 * @param io Where to write.
 * @param error What `parseArgs` threw.
 * @returns {@linkcode EXIT.USAGE} (2).
 *
 * @example
 * ```ts
 * import { flagsError } from "./io.ts";
 * import assert from "node:assert/strict";
 *
 * const stderr: string[] = [];
 * const io = { stdout: () => {}, stderr: (text: string) => stderr.push(text) };
 * assert.equal(flagsError(io, new TypeError("Unknown option '--x'.\nTo specify a positional argument, use '--'.")), 2);
 * assert.deepEqual(stderr, ["oauth-relay: Unknown option '--x'. To specify a positional argument, use '--'; see --help"]);
 * ```
 */
export function flagsError(io: CliIo, error: unknown): number {
  const message = error instanceof Error ? error.message.split("\n").join(" ") : String(error);
  return usageError(io, message.replace(/\.$/, ""));
}

/**
 * Characters JSON leaves raw that a terminal acts on or that change how text
 * reads: DEL and C1 controls (U+009B starts a terminal command), bidi
 * overrides and isolates, zero-width marks, line and paragraph separators.
 */
const UNSAFE_FOR_TERMINAL = /[\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * `JSON.stringify(value)` with every character a terminal would act on
 * escaped as `\uXXXX`, so the output is still valid JSON and still the same value.
 *
 * @param value What to print.
 * @returns One line of JSON that is safe to write to a terminal.
 *
 * @example
 * ```ts
 * import { terminalJson } from "./io.ts";
 * import assert from "node:assert/strict";
 *
 * const line = terminalJson({ error: "evil\u009b31m\u202etxt" });
 * assert.equal(line, '{"error":"evil\\u009b31m\\u202etxt"}');
 * assert.deepEqual(JSON.parse(line), { error: "evil\u009b31m\u202etxt" });
 * ```
 */
export function terminalJson(value: unknown): string {
  return JSON.stringify(value).replace(
    UNSAFE_FOR_TERMINAL,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
