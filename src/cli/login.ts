/**
 * The `login` command: one command from nothing to tokens. It shows the
 * authorize link (and a QR code of it on a terminal), waits at the relay,
 * checks the response, exchanges the code and prints the token response.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readableEnv } from "../client/env.ts";
import { ConfigError, reader, type Settings } from "../client/settings.ts";
import { type AuthorizeLink, login, type LoginOptions } from "../login/flow.ts";
import { LOGIN_ERROR_CODES, LoginError, type LoginErrorCode } from "../login/errors.ts";
import { isProviderName, PROVIDERS } from "../login/providers.ts";
import { renderQr, type TerminalQr } from "../login/qr.ts";
import { startCountdown } from "./countdown.ts";
import { type CliIo, type Command, EXIT, flagsError, terminalJson, usageError } from "./io.ts";
import { RELAY_FLAGS, RELAY_FLAGS_HELP, relaySettings } from "./relay_flags.ts";
import { checkSecretFile, SecretFileError, writeSecretFile } from "./secret_file.ts";

const HELP = `Signs in at an OAuth 2.0 / OpenID Connect provider through the relay and prints the
token response (JSON) on stdout. The authorize link goes to stderr on a line of its own, with
a QR code of it when stderr is a terminal: open it anywhere, a phone will do. Nothing is opened
or run for you.

Provider (one of):
  --issuer <url>                   Issuer: its metadata is discovered (OpenID Connect, else
                                   RFC 8414); https:// (http:// only on a loopback host)
  --authorization-endpoint <url>   With --token-endpoint: a provider without metadata
  --token-endpoint <url>           (GitHub); --issuer with them names the issuer to check
  --provider <name>                A preset: ${Object.keys(PROVIDERS).join(", ")}; other flags win

Client:
  --client-id <id>      The client's id at the provider (required); the secret of a
                        confidential client comes from OAUTH_CLIENT_SECRET only
  --scope <scopes>      Space-separated (default: the preset's, else "openid")
  --redirect-uri <url>  Registered at the provider (default OAUTH_PUBLIC_URL + OAUTH_CALLBACK_PATH)
  --param <name=value>  A further authorization parameter, e.g. prompt=consent (repeatable)

Output:
  --out <file>          Write the token response to this file (mode 0600), nothing on stdout
  --qr, --no-qr         Show the QR code, or not (default: when stderr is a terminal)

Relay:
${RELAY_FLAGS_HELP}
  --help                Show this help

Always: PKCE (S256), a 256-bit random state, a nonce for openid, a pushed authorization
request when the provider offers one (a short link), the state and the issuer (RFC 9207)
checked before the exchange, the ID token's claims and nonce after it.

Environment: OAUTH_CLIENT_SECRET, OAUTH_PUBLIC_URL, and the relay's variables as for wait.

Exit codes: 0 tokens received; 2 bad usage; 3 timeout; 4 relay not reachable; 5 relay
refused the wait; 6 authorization denied (the provider's error is shown); 7 the provider
refused the exchange; 8 the response failed a check (iss, state, nonce or ID token: named);
9 the provider cannot be used (unreachable, no metadata, PAR refused); 10 --out not written`;

/** The exit code of each way a login can fail. */
const EXIT_OF: Readonly<Record<LoginErrorCode, number>> = {
  [LOGIN_ERROR_CODES.DENIED]: EXIT.DENIED,
  [LOGIN_ERROR_CODES.TIMEOUT]: EXIT.TIMEOUT,
  [LOGIN_ERROR_CODES.RELAY_UNREACHABLE]: EXIT.UNREACHABLE,
  [LOGIN_ERROR_CODES.RELAY_REFUSED]: EXIT.REFUSED,
  [LOGIN_ERROR_CODES.PROVIDER]: EXIT.PROVIDER,
  [LOGIN_ERROR_CODES.EXCHANGE_REFUSED]: EXIT.EXCHANGE_REFUSED,
  [LOGIN_ERROR_CODES.CHECK_FAILED]: EXIT.CHECK_FAILED,
  [LOGIN_ERROR_CODES.USAGE]: EXIT.USAGE,
};

/** The link's QR code, or `undefined` when it holds more than a QR code can (2,953 bytes; a link without PAR may). */
function qrOf(url: string): TerminalQr | undefined {
  try {
    return renderQr(url);
  } catch (error) {
    if (error instanceof RangeError) return undefined;
    throw error;
  }
}

/** Shows the link: alone on its line, the QR code under it, and on a terminal a countdown. */
class LinkDisplay {
  #stop?: () => void;

  constructor(readonly io: CliIo, readonly qr: boolean) {}

  show(link: AuthorizeLink): void {
    const { io } = this;
    io.stderr("oauth-relay: open this link in a browser, on any device, to authorize:");
    io.stderr(link.url);
    let last = "";
    if (this.qr) {
      const code = qrOf(link.url);
      const columns = io.terminal?.size().columns;
      if (code === undefined) {
        io.stderr("oauth-relay: no QR code: the link is too long for one; open the link itself");
      } else if (columns !== undefined && code.columns > columns) {
        io.stderr(`oauth-relay: no QR code: it needs ${code.columns} columns, the terminal has ${columns}`);
      } else {
        // On a terminal the code's last line carries the countdown: a PAR link then fits 24 lines.
        const lines = io.terminal ? code.lines.slice(0, -1) : code.lines;
        for (const line of lines) io.stderr(line);
        if (io.terminal) last = code.lines.at(-1)!;
      }
    }
    if (link.expiresIn !== undefined && link.expiresIn < link.timeout) {
      io.stderr(`oauth-relay: open it within ${Math.floor(link.expiresIn)} seconds (the provider's limit)`);
    }
    if (io.terminal) this.#stop = startCountdown(io.terminal, Date.now() + link.timeout * 1000, last);
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }
}

async function run(args: string[], io: CliIo, usage: string): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
      options: {
        issuer: { type: "string" },
        "authorization-endpoint": { type: "string" },
        "token-endpoint": { type: "string" },
        provider: { type: "string" },
        "client-id": { type: "string" },
        scope: { type: "string" },
        "redirect-uri": { type: "string" },
        param: { type: "string", multiple: true },
        out: { type: "string" },
        qr: { type: "boolean" },
        ...RELAY_FLAGS,
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

  const clientId = values["client-id"];
  if (clientId === undefined || clientId === "") return usageError(io, "--client-id is required");
  const provider = values.provider;
  if (provider !== undefined && !isProviderName(provider)) {
    return usageError(
      io,
      `--provider must be one of ${Object.keys(PROVIDERS).join(", ")}, got ${JSON.stringify(provider)}`,
    );
  }
  const authorizationEndpoint = values["authorization-endpoint"];
  const tokenEndpoint = values["token-endpoint"];
  if ((authorizationEndpoint === undefined) !== (tokenEndpoint === undefined)) {
    return usageError(io, "--authorization-endpoint and --token-endpoint go together");
  }
  if (provider === undefined && values.issuer === undefined && authorizationEndpoint === undefined) {
    return usageError(
      io,
      "no provider: give --issuer URL, --provider NAME, or --authorization-endpoint and --token-endpoint",
    );
  }
  if (values.scope !== undefined && values.scope.trim() === "") return usageError(io, "--scope must not be empty");
  const authorizationParams: Record<string, string> = {};
  for (const param of values.param ?? []) {
    const equals = param.indexOf("=");
    if (equals < 1) return usageError(io, `--param must be name=value, got ${JSON.stringify(param)}`);
    authorizationParams[param.slice(0, equals)] = param.slice(equals + 1);
  }

  // A secret on the command line is readable by every local user (/proc/*/cmdline): the environment only.
  const env = io.env ?? readableEnv();
  const clientSecret = (env && reader(env)("OAUTH_CLIENT_SECRET")) || undefined;
  let settings: Settings;
  let timeout: number | undefined;
  try {
    ({ settings, timeout } = relaySettings(values, io.env));
  } catch (error) {
    if (error instanceof ConfigError) return usageError(io, error.message);
    throw error;
  }

  if (values.out !== undefined) {
    try {
      // Before the person is asked anything: tokens that cannot be kept would be lost.
      await checkSecretFile(values.out);
    } catch (error) {
      if (error instanceof SecretFileError) return usageError(io, `--out: ${error.message}`);
      throw error;
    }
  }

  const display = new LinkDisplay(io, values.qr ?? io.terminal !== undefined);
  const options: LoginOptions = {
    clientId,
    clientSecret,
    provider,
    issuer: values.issuer,
    authorizationEndpoint,
    tokenEndpoint,
    scope: values.scope,
    redirectUri: values["redirect-uri"],
    authorizationParams,
    timeout,
    settings,
    onLink: (link) => display.show(link),
  };
  let tokens;
  try {
    ({ tokens } = await login(options));
  } catch (error) {
    display.stop();
    if (!(error instanceof LoginError)) throw error;
    if (error.code === LOGIN_ERROR_CODES.USAGE) return usageError(io, error.message);
    io.stderr(`oauth-relay: ${error.message}`);
    return EXIT_OF[error.code];
  }
  display.stop();

  const json = terminalJson(tokens);
  if (values.out === undefined) {
    io.stdout(json);
    return EXIT.CODE;
  }
  try {
    await writeSecretFile(values.out, json + "\n");
  } catch (error) {
    if (!(error instanceof SecretFileError)) throw error;
    io.stderr(`oauth-relay: ${error.message}; the tokens were not kept, sign in again`);
    return EXIT.OUTPUT;
  }
  io.stderr(`oauth-relay: tokens written to ${values.out} (mode 0600)`);
  return EXIT.CODE;
}

/**
 * The `login` command: signs in through the relay and prints the token
 * response on stdout, or writes it to `--out FILE` with mode 0600.
 *
 * @example Without a client id it is bad usage, before anything is contacted
 * ```ts
 * import { loginCommand } from "./login.ts";
 * import assert from "node:assert/strict";
 *
 * const stderr: string[] = [];
 * const io = { stdout: () => {}, stderr: (text: string) => stderr.push(text), env: {} };
 * assert.equal(await loginCommand.run(["--provider", "google"], io, loginCommand.help), 2);
 * assert.deepEqual(stderr, ["oauth-relay: --client-id is required; see --help"]);
 * ```
 */
export const loginCommand: Command = {
  summary: "Sign in at a provider through the relay and print the tokens",
  help: HELP,
  run,
};
