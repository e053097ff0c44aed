/**
 * {@linkcode waitForCode}: wait for the OAuth callback the relay receives.
 *
 * @module
 */

import { coordinatorAddress, DEFAULT_SETTINGS, formatAddress, loadSettings, type Settings } from "./config.ts";
import { ERROR_CODES, OAuthConnectionError, OAuthRelayError, OAuthTimeoutError } from "./errors.ts";
import {
  decodeRelayMessage,
  encode,
  LineSplitter,
  type OAuthCallbackResult,
  PROTOCOL_VERSION,
  ProtocolError,
  type RelayMessage,
} from "./protocol.ts";
import { type ClientConnection, connect, describeConnectError, platform, readableEnv } from "./transport.ts";

/** Options of {@linkcode waitForCode}. */
export interface WaitForCodeOptions {
  /** The `state` of the authorization request. Omit for single-slot mode (one waiter at a time). */
  state?: string;
  /** Seconds to wait. Default: `settings.defaultTimeout` (`OAUTH_DEFAULT_TIMEOUT`, 300). */
  timeout?: number;
  /** Cancels the wait; the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Overrides; the rest come from `OAUTH_*` variables when readable, else defaults. */
  settings?: Partial<Settings>;
  /** Called once the relay holds the registration: the moment to show the authorize link. */
  onRegistered?: () => void;
}

/**
 * The settings a client uses: defaults, then `OAUTH_*` variables when the
 * program may read them, then `overrides`.
 */
export function resolveSettings(overrides: Partial<Settings> = {}): Settings {
  const env = readableEnv();
  const base = env ? loadSettings(env, platform) : { ...DEFAULT_SETTINGS, useTcp: platform === "windows" };
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  return { ...base, ...defined };
}

/** Longest timeout, in seconds: timers take a signed 32-bit number of milliseconds (about 24 days). */
export const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

function validate(options: WaitForCodeOptions): void {
  if (typeof options !== "object" || options === null) throw new TypeError('"options" must be an object');
  const { state, timeout, signal } = options;
  if (state !== undefined && (typeof state !== "string" || state === "")) {
    throw new TypeError('"options.state" must be a non-empty string');
  }
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout > 0) || timeout > MAX_TIMEOUT_SECONDS)) {
    throw new RangeError(`"options.timeout" must be a positive number of seconds, at most ${MAX_TIMEOUT_SECONDS}`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError('"options.signal" must be an AbortSignal');
  }
}

function relayError(message: Extract<RelayMessage, { type: "error" }>, where: string): OAuthRelayError {
  const text = `${message.message} (relay at ${where})`;
  if (message.code === ERROR_CODES.TIMEOUT) return new OAuthTimeoutError(text);
  if (message.code === "shutdown") return new OAuthConnectionError(text);
  return new OAuthRelayError(message.code, text);
}

async function* readLines(readable: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const splitter = new LineSplitter();
  for await (const chunk of readable) yield* splitter.push(chunk);
}

/**
 * Waits for the OAuth callback that carries `options.state` (or, without a
 * state, the next stateless callback) and returns what the provider sent.
 *
 * Register first, then send the person to the authorize URL: a callback that
 * arrives before the registration finds no one waiting.
 *
 * @param options State, timeout, cancellation and settings.
 * @returns The callback: `success` and `code` when a code came, else `raw` holds e.g. `error`.
 * @throws {OAuthTimeoutError} When no callback arrives in time.
 * @throws {OAuthConnectionError} When the relay cannot be reached or goes away.
 * @throws {OAuthRelayError} When the relay refuses the registration (`code` says why) or it is superseded.
 * @throws {TypeError} When an option has the wrong type.
 * @throws {RangeError} When `options.timeout` is not a positive number.
 *
 * @example Waiting for a code, with a timeout
 * ```ts ignore
 * import { waitForCode } from "jsr:@org/oauth-relay";
 *
 * const state = crypto.randomUUID();
 * const result = await waitForCode({
 *   state,
 *   timeout: 600,
 *   onRegistered: () => console.log(`Open https://provider.example/authorize?state=${state}&…`),
 * });
 * if (result.success) console.log("code received");
 * else console.log("authorization failed:", result.raw.error);
 * ```
 */
export async function waitForCode(options: WaitForCodeOptions = {}): Promise<OAuthCallbackResult> {
  validate(options);
  const settings = resolveSettings(options.settings);
  const timeout = options.timeout ?? settings.defaultTimeout;
  const address = coordinatorAddress(settings);
  const where = formatAddress(address);
  const state = options.state ?? null;

  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new OAuthTimeoutError(
          `No callback${
            state === null ? "" : " for this state"
          } within ${timeout} seconds (relay at ${where}); start again or raise the timeout`,
        ),
      ),
    timeout * 1000,
  );
  const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
  let conn: ClientConnection | undefined;
  const onAbort = () => conn?.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    signal.throwIfAborted();
    try {
      conn = await connect(address);
    } catch (error) {
      throw new OAuthConnectionError(
        `Cannot connect to relay at ${where}: ${describeConnectError(error)}; is the relay running?`,
        { cause: error },
      );
    }
    if (signal.aborted) throw signal.reason;
    await conn.write(encode({ v: PROTOCOL_VERSION, type: "register", state, timeout }));
    for await (const line of readLines(conn.readable)) {
      const message = decodeRelayMessage(line);
      if (message.type === "registered") options.onRegistered?.();
      else if (message.type === "callback") return message.result;
      else throw relayError(message, where);
    }
    throw new OAuthConnectionError(
      `Relay at ${where} closed the connection before a callback arrived; restart the wait`,
    );
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof OAuthRelayError) throw error;
    if (error instanceof ProtocolError) {
      throw new OAuthRelayError(
        ERROR_CODES.PROTOCOL,
        `Relay at ${where} sent a message this client cannot read: ${error.message}`,
      );
    }
    throw new OAuthConnectionError(`Connection to relay at ${where} failed: ${describeConnectError(error)}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    conn?.close();
  }
}
