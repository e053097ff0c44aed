/**
 * The `wait` command, the default one: wait for one callback and print it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { OAuthConnectionError, OAuthRelayError, OAuthTimeoutError } from "../client/errors.ts";
import { waitForCode } from "../client/wait.ts";
import { readableEnv } from "../client/env.ts";
import { ConfigError, reader, type Settings } from "../client/settings.ts";
import { type CliIo, type Command, EXIT, flagsError, terminalJson, usageError } from "./io.ts";
import { RELAY_FLAGS, RELAY_FLAGS_HELP, relaySettings } from "./relay_flags.ts";

const HELP = `Waits for one OAuth callback at the relay and prints the code on stdout.

Options:
  --state <state>     State of the authorization request; or set OAUTH_STATE, which other
                      users cannot read (command lines they can)
  --single-slot       Wait without a state (single-slot mode): any callback without a state
                      is taken, including one a web page makes the browser send; only for
                      providers that cannot return a state
${RELAY_FLAGS_HELP}
  --json              Print the whole result as JSON instead of the code
  --help              Show this help

Environment (flags win):
  OAUTH_STATE               the state, instead of --state
  OAUTH_SOCKET_PATH         coordinator Unix socket (default $XDG_RUNTIME_DIR/oauth-relay.sock,
                            or /tmp/poast-relay-oauth.sock without XDG_RUNTIME_DIR)
  OAUTH_RELAY_UID           a uid besides yours and root's that may own the socket
  OAUTH_USE_TCP, OAUTH_TCP_HOST, OAUTH_TCP_FALLBACK_PORT   the coordinator over TCP
  OAUTH_COORDINATOR_TOKEN   the coordinator token (proved, never sent)
  OAUTH_RELAY_URL, OAUTH_CLIENT_TOKEN   wait at a relay over HTTPS, with this bearer token
  OAUTH_DEFAULT_TIMEOUT     seconds to wait without --timeout (300)

Exit codes: 0 code received; 1 callback without a code (payload printed); 2 bad usage;
3 timeout; 4 relay not reachable or not trusted; 5 relay refused or ended the wait (e.g. state
taken, superseded)`;

async function run(args: string[], io: CliIo, usage: string): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        state: { type: "string" },
        ...RELAY_FLAGS,
        json: { type: "boolean" },
        "single-slot": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    return flagsError(io, error);
  }
  if (values.help) {
    io.stdout(usage);
    return EXIT.CODE;
  }

  // Arguments are visible to every local user (/proc/*/cmdline); another user's environment is not.
  const env = io.env ?? readableEnv();
  values.state ??= (env && reader(env)("OAUTH_STATE")) || undefined;
  if (values.state === "") return usageError(io, "--state must not be empty");

  // Flags are read by the same rules as the variables they stand in for.
  let timeout: number | undefined;
  let settings: Settings;
  try {
    ({ settings, timeout } = relaySettings(values, io.env));
  } catch (error) {
    if (error instanceof ConfigError) return usageError(io, error.message);
    throw error;
  }

  if (values.state !== undefined && values["single-slot"]) {
    return usageError(io, "--state and --single-slot exclude each other");
  }
  if (values.state === undefined && !values["single-slot"]) {
    // Without a state any callback is taken: a web page can make the browser send one (CSRF).
    return usageError(
      io,
      "no state: pass --state (or OAUTH_STATE) with the authorization's state, or --single-slot to accept any stateless callback",
    );
  }

  try {
    const result = await waitForCode({
      state: values.state,
      timeout,
      settings,
      onRegistered: ({ timeout: granted, capped }) => {
        io.stderr(
          `oauth-relay: waiting for the callback${values.state === undefined ? " (single-slot mode)" : ""}`,
        );
        if (capped) io.stderr(`oauth-relay: the relay holds a wait for at most ${granted} seconds`);
      },
    });
    // RFC 6749 Appendix A: a code is printable ASCII. Anything else is not written raw to a terminal.
    if (result.success && !values.json && !/^[\x20-\x7e]+$/.test(result.code!)) {
      io.stderr("oauth-relay: the code has characters outside printable ASCII (RFC 6749 VSCHAR); use --json");
      return EXIT.NO_CODE;
    }
    if (values.json) io.stdout(terminalJson(result));
    else if (result.success) io.stdout(result.code!);
    else io.stdout(terminalJson(result.raw));
    if (!result.success) {
      const error = typeof result.raw.error === "string" ? `: ${result.raw.error.slice(0, 100)}` : "";
      io.stderr(`oauth-relay: the callback carried no code${terminalJson(error).slice(1, -1)}`);
      return EXIT.NO_CODE;
    }
    return EXIT.CODE;
  } catch (error) {
    if (!(error instanceof OAuthRelayError)) throw error;
    io.stderr(`oauth-relay: ${error.message}`);
    if (error instanceof OAuthTimeoutError) return EXIT.TIMEOUT;
    if (error instanceof OAuthConnectionError) return EXIT.UNREACHABLE;
    return EXIT.REFUSED;
  }
}

/**
 * The `wait` command: waits for one OAuth callback and prints the code on
 * stdout (`--json`: the whole result). It is also what runs when no command
 * is named, so `client.ts --state S` and `client.ts wait --state S` are one.
 *
 * @example A bad option is one line on stderr and exit code 2, before anything is contacted
 * ```ts
 * import { waitCommand } from "./wait.ts";
 * import assert from "node:assert/strict";
 *
 * const stderr: string[] = [];
 * const io = { stdout: () => {}, stderr: (text: string) => stderr.push(text), env: {} };
 * assert.equal(await waitCommand.run(["--timeout", "soon"], io, waitCommand.help), 2);
 * assert.deepEqual(stderr, ['oauth-relay: --timeout must be a positive number of seconds, at most 2147483, got "soon"; see --help']);
 * ```
 */
export const waitCommand: Command = {
  summary: "Wait for one OAuth callback and print its code",
  help: HELP,
  run,
};
