/**
 * The command line of `client.ts`, callable in-process: `main(args, io)`
 * picks the command named by the first argument (`wait` when it is an option
 * or absent) and returns the exit code.
 *
 * @module
 */

import { shown } from "../client/settings.ts";
import { type CliIo, type CliProcess, type Command, usageError } from "./io.ts";
import { loginCommand } from "./login.ts";
import { waitCommand } from "./wait.ts";

/** How the usage line names the program when `io.program` does not (Deno, `client.ts`). */
const PROGRAM = "deno run --allow-net --allow-read --allow-write --allow-env --allow-sys=uid client.ts";

/** The commands, by the name given as the first argument. Adding a command is one entry here. */
const COMMANDS: Readonly<Record<string, Command>> = {
  wait: waitCommand,
  login: loginCommand,
};

/** The command that runs when the first argument is an option, or there are none. */
const DEFAULT_COMMAND = "wait";

/** The top-level help: the default command's, then the list of commands. */
function topUsage(program: string): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length)) + 4;
  const list = Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(width)}${command.summary}`);
  return [
    `Usage: ${program} [command] [options]`,
    "",
    COMMANDS[DEFAULT_COMMAND].help,
    "",
    `Commands (the first argument; without one, ${DEFAULT_COMMAND}):`,
    ...list,
  ].join("\n");
}

/**
 * Runs the CLI with `args` and returns its exit code. The first argument
 * names the command (`wait`); when it is an option, or there are no
 * arguments, the default command `wait` gets them all, so `--state S` alone
 * waits as before. `--help` there shows the default command's usage and the
 * list of commands.
 *
 * @param args Command-line arguments, without the program name.
 * @param io Where to write, and optionally the environment to read instead of the process's.
 * @returns The exit code, one of `EXIT` in `io.ts`: 0 code (or tokens), 1 no code, 2 usage, 3 timeout, 4 unreachable,
 *   5 refused, and for `login` 6 denied, 7 exchange refused, 8 check failed, 9 provider unusable, 10 not written.
 *
 * @example `--help` prints the usage on stdout and exits 0
 * ```ts
 * import { main } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * const stdout: string[] = [];
 * const code = await main(["--help"], { stdout: (text) => stdout.push(text), stderr: () => {} });
 * assert.equal(code, 0);
 * assert.match(stdout.join("\n"), /--state <state>/);
 * assert.match(stdout.join("\n"), /Commands/);
 * ```
 *
 * @example An unknown command is one line on stderr and exit code 2
 * ```ts
 * import { main } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * const stderr: string[] = [];
 * const code = await main(["frobnicate"], { stdout: () => {}, stderr: (text) => stderr.push(text) });
 * assert.equal(code, 2);
 * assert.deepEqual(stderr, ['oauth-relay: unknown command "frobnicate" (commands: wait, login); see --help']);
 * ```
 */
export async function main(args: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = args;
  const program = io.program ?? PROGRAM;
  if (first === undefined || first.startsWith("-")) {
    return await COMMANDS[DEFAULT_COMMAND].run(args, io, topUsage(program));
  }
  if (!Object.hasOwn(COMMANDS, first)) {
    return usageError(io, `unknown command ${shown(first)} (commands: ${Object.keys(COMMANDS).join(", ")})`);
  }
  const command = COMMANDS[first];
  return await command.run(rest, io, `Usage: ${program} ${first} [options]\n\n${command.help}`);
}

/**
 * Runs the CLI as the process `cli` describes: its arguments and streams in,
 * the exit code set when {@linkcode main} returns. The entry files
 * (`client.ts` on Deno, `bin.ts` of the npm package) call it with their
 * runtime's adapter.
 *
 * @param cli The process, from `cliProcess()` of `io_deno.ts` or `io_node.ts`.
 * @returns Once the command is done and the exit code is set.
 *
 * @example
 * ```ts
 * import { runCli } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * const stdout: string[] = [];
 * let exitCode: number | undefined;
 * await runCli({
 *   args: ["--help"],
 *   io: { stdout: (text) => stdout.push(text), stderr: () => {}, program: "oauth-relay" },
 *   setExitCode: (code) => exitCode = code,
 * });
 * assert.equal(exitCode, 0);
 * assert.match(stdout[0], /^Usage: oauth-relay \[command\] \[options\]\n/);
 * ```
 */
export async function runCli(cli: CliProcess): Promise<void> {
  cli.setExitCode(await main(cli.args, cli.io));
}
