/**
 * {@linkcode waitForCode}: wait for the OAuth callback the relay receives.
 *
 * @module
 */

import { ERROR_CODES, MAX_TIMEOUT_SECONDS, type OAuthCallbackResult, ProtocolError } from "../protocol/mod.ts";
import { platform, readableEnv } from "./env.ts";
import { OAuthConnectionError, OAuthRelayError, OAuthTimeoutError } from "./errors.ts";
import {
  coordinatorAddress,
  DEFAULT_SETTINGS,
  formatAddress,
  loadSettings,
  parseRelayUrl,
  type Settings,
} from "./settings.ts";
import { defaultTransport } from "./transport/default.ts";
import { ConnectError, type RelayChannel, type Transport } from "./transport/transport.ts";

export { MAX_TIMEOUT_SECONDS };

/** What {@linkcode WaitForCodeOptions.onRegistered} learns about the registration. */
export interface RegisteredInfo {
  /** Seconds the relay holds the registration, when it says. */
  timeout?: number;
  /** `true` when the relay holds it for less time than this client asked (`OAUTH_MAX_TIMEOUT`). */
  capped: boolean;
}

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
  /**
   * Called once the relay holds the registration: the moment to show the
   * authorize link. `info.timeout` is how long the relay holds it, in seconds
   * (less than asked when the relay caps registrations).
   */
  onRegistered?: (info: RegisteredInfo) => void;
  /** How to reach the relay. Default: the socket transport of this runtime. */
  transport?: Transport;
}

/**
 * The settings a client uses: defaults, then `OAUTH_*` variables when the
 * program may read them, then `overrides`.
 *
 * @param overrides Settings that win over the environment; `undefined` fields are ignored.
 * @returns Complete settings.
 * @throws {ConfigError} When a readable `OAUTH_*` variable holds a value that cannot be used.
 *
 * @example
 * ```ts
 * import { resolveSettings } from "./wait.ts";
 * import assert from "node:assert/strict";
 *
 * const settings = resolveSettings({ socketPath: "/run/oauth-relay/relay.sock" });
 * assert.equal(settings.socketPath, "/run/oauth-relay/relay.sock");
 * ```
 */
export function resolveSettings(overrides: Partial<Settings> = {}): Settings {
  const env = readableEnv();
  const base = env ? loadSettings(env, platform) : { ...DEFAULT_SETTINGS, useTcp: platform === "windows" };
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  return { ...base, ...defined };
}

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

function relayError(code: string, message: string, where: string): OAuthRelayError {
  const text = `${message} (relay at ${where})`;
  if (code === ERROR_CODES.TIMEOUT) return new OAuthTimeoutError(text);
  return new OAuthRelayError(code, text);
}

/** Closes without a word before registering that a client retries (with backoff, about 5 s in all). */
const MAX_SILENT_CLOSES = 7;

/** The one-line error for a relay that cannot be reached, saying what to check. */
function cannotConnect(where: string, error: unknown): OAuthConnectionError {
  const why = error instanceof Error ? error.message : String(error);
  const absent = error instanceof ConnectError && error.absent;
  // Without --allow-env, OAUTH_SOCKET_PATH and friends were never read: say so, it is the likely cause.
  const envHint = readableEnv() ? "" : " (OAUTH_* variables were not read: run with --allow-env to use them)";
  return new OAuthConnectionError(
    `Cannot connect to relay at ${where}: ${why}${absent ? "; is the relay running?" : ""}${envHint}`,
    { cause: error },
  );
}

/** Resolves after `ms`, or rejects with `signal.reason` as soon as it aborts. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Backoff before reconnect attempt `n` (0-based): 50 ms doubling to 2 s, with jitter. */
function backoff(n: number): number {
  return Math.min(2000, 50 * 2 ** n) * (0.5 + Math.random() / 2);
}

/** What one connection to the relay ended with. */
type Session =
  | { kind: "result"; result: OAuthCallbackResult }
  | { kind: "lost"; registered: boolean; cause?: unknown; retry?: boolean };

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
 *
 * @example Telling "relay not running" apart from other failures
 * ```ts
 * import { waitForCode } from "./wait.ts";
 * import { OAuthConnectionError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   waitForCode({ state: "s", settings: { socketPath: "/nonexistent/relay.sock", useTcp: false } }),
 *   OAuthConnectionError,
 * );
 * ```
 */
export async function waitForCode(options: WaitForCodeOptions = {}): Promise<OAuthCallbackResult> {
  validate(options);
  const settings = resolveSettings(options.settings);
  // Settings given in code skip the environment's parsing: hold a relay URL to the same rule.
  if (settings.relayUrl !== undefined) settings.relayUrl = parseRelayUrl("settings.relayUrl", settings.relayUrl);
  const timeout = options.timeout ?? settings.defaultTimeout;
  const address = coordinatorAddress(settings);
  const where = formatAddress(address);
  const state = options.state ?? null;
  const deadlineAt = Date.now() + timeout * 1000;

  /** Registered once, and the relay has not taken the registration back since: it went away. */
  let lost = false;
  const seconds = `${timeout} second${timeout === 1 ? "" : "s"}`;
  const deadline = new AbortController();
  const timer = setTimeout(() => {
    // A relay that went away and did not come back is a connection problem, not a slow person.
    deadline.abort(
      lost
        ? new OAuthConnectionError(
          `Relay at ${where} went away and did not come back within ${seconds}; check that it is running`,
        )
        : new OAuthTimeoutError(
          `No callback${
            state === null ? "" : " for this state"
          } within ${seconds} (relay at ${where}); start again or raise the timeout`,
        ),
    );
  }, timeout * 1000);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;

  const transport = options.transport ?? defaultTransport;
  let channel: RelayChannel | undefined;
  /** The registration's secret over HTTPS, to take it back after a drop without announcing it again. */
  let resume: string | undefined;
  const onAbort = () => {
    channel?.cancel?.();
    channel?.close();
  };
  signal.addEventListener("abort", onAbort, { once: true });

  /** One registration: read until the callback, an error, or the channel ends. */
  const session = async (open: RelayChannel, asked: number, announce: boolean): Promise<Session> => {
    let registered = false;
    try {
      for (let message; (message = await open.read()) !== null;) {
        if (message.type === "registered") {
          registered = true;
          lost = false;
          resume = message.resume ?? resume;
          const granted = message.timeout;
          if (announce) options.onRegistered?.({ timeout: granted, capped: granted !== undefined && granted < asked });
        } else if (message.type === "challenge") {
          throw new ProtocolError("Unexpected challenge after the handshake");
        } else if (message.type === "callback") {
          // Never hand over a code meant for another flow, whatever answered on the socket.
          if (message.result.state !== state) throw new ProtocolError("Callback for another state");
          return { kind: "result", result: message.result };
        } else if (message.code === ERROR_CODES.SHUTDOWN) {
          // The relay is restarting (deploy): wait for the next one.
          return { kind: "lost", registered };
        } else if (message.code === ERROR_CODES.BUSY) {
          // Dropped to make room during a flood of silent connections: try again.
          return { kind: "lost", registered, retry: true };
        } else if (message.code === ERROR_CODES.UNAVAILABLE && !announce) {
          // Registered before, and the relay's shared registry is away for now (Redis restarting):
          // the registration is still ours, so keep trying until the deadline. A first registration
          // refused this way is reported at once, below: the person has not been shown a link yet.
          return { kind: "lost", registered, retry: true };
        } else {
          throw relayError(message.code, message.message, where);
        }
      }
      return { kind: "lost", registered };
    } catch (error) {
      if (error instanceof OAuthRelayError || signal.aborted) throw error;
      if (error instanceof ProtocolError) {
        throw new OAuthRelayError(
          ERROR_CODES.PROTOCOL,
          `Relay at ${where} sent a message this client cannot read: ${error.message}`,
        );
      }
      return { kind: "lost", registered, cause: error };
    }
  };

  try {
    signal.throwIfAborted();
    let everRegistered = false;
    let silentCloses = 0;
    for (let attempt = 0;; attempt++) {
      const remaining = Math.max(0.001, (deadlineAt - Date.now()) / 1000);
      try {
        const token = address.transport === "https" ? settings.clientToken : settings.token;
        channel = await transport.open(address, { state, timeout: remaining, token, resume });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        // Unreachable at the start is a setup problem: say so now rather than after the timeout.
        // Something untrusted at the relay's address is refused at once, whenever it appears.
        if (!everRegistered || (error instanceof ConnectError && error.untrusted)) throw cannotConnect(where, error);
        await delay(backoff(attempt), signal);
        continue;
      }
      if (signal.aborted) throw signal.reason;
      const outcome = await session(channel, remaining, !everRegistered);
      if (outcome.kind === "result") {
        // Closed just after the caller has the code rather than before: the relay ends the stream anyway.
        const done = channel;
        channel = undefined;
        setTimeout(() => done.close(), 0);
        return outcome.result;
      }
      channel.close();
      if (signal.aborted) throw signal.reason;
      // Dropped before registering (the relay makes room during a flood of silent connections): try again,
      // a few times when it closed without a word, until the deadline when it said "busy".
      if (!outcome.registered && (outcome.retry || (!everRegistered && silentCloses++ < MAX_SILENT_CLOSES))) {
        await delay(backoff(attempt), signal);
        continue;
      }
      if (!everRegistered && !outcome.registered) {
        throw new OAuthConnectionError(
          `Relay at ${where} closed the connection before registering this client; check the relay's log`,
          { cause: outcome.cause },
        );
      }
      everRegistered = true;
      lost = true;
      if (outcome.registered) attempt = -1; // A fresh drop starts the backoff again.
      await delay(backoff(Math.max(0, attempt)), signal);
    }
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    channel?.close();
  }
}
