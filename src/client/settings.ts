// This module is browser compatible.

/**
 * Settings: the `OAUTH_*` environment variables both the client and the relay
 * read, their defaults, and the one parser of each kind of value. The relay's
 * own variables are in `src/relay/config.ts`, parsed with the same rules.
 *
 * @module
 */

import { type CoordinatorAddress, formatAddress, isLoopback } from "../protocol/address.ts";
import { MAX_PORT, MAX_TIMEOUT_SECONDS } from "../protocol/limits.ts";

export { type CoordinatorAddress, formatAddress, isLoopback };

/** Settings of the relay and of its clients. Each field is an `OAUTH_*` variable in camelCase. */
export interface Settings {
  /** `OAUTH_ENABLED`: serve the callback route and the coordinator. Default `true`. */
  enabled: boolean;
  /** `OAUTH_CALLBACK_PATH`: HTTP path of the callback. Default `/oauth/callback`. */
  callbackPath: string;
  /** `OAUTH_CODE_KEYS`: parameter names that hold the code, matched case-insensitively. */
  codeKeys: string[];
  /**
   * `OAUTH_SOCKET_PATH`: absolute path of the coordinator's Unix socket. Default
   * `$XDG_RUNTIME_DIR/oauth-relay.sock` when `XDG_RUNTIME_DIR` is set, else `/tmp/poast-relay-oauth.sock`.
   */
  socketPath: string;
  /** `OAUTH_TCP_FALLBACK_PORT`: loopback TCP port of the coordinator in TCP mode. Default `9999`. */
  tcpFallbackPort: number;
  /** `OAUTH_DEFAULT_TIMEOUT`: seconds a client waits when it names no timeout. Default `300`. */
  defaultTimeout: number;
  /** `OAUTH_LOG_UNMATCHED`: log callbacks that no client waits for. Default `true`. */
  logUnmatched: boolean;
  /** `OAUTH_USE_TCP`: use loopback TCP instead of a Unix socket. Default `false`, `true` on Windows. */
  useTcp: boolean;
  /**
   * `OAUTH_TCP_HOST`: in TCP mode, the address the relay binds and clients connect to.
   * Default `127.0.0.1`. Anything but loopback requires {@linkcode Settings.token}.
   */
  tcpHost: string;
  /** `OAUTH_COORDINATOR_TOKEN`: shared secret both sides prove they hold (protocol v2). Default none. */
  token?: string;
  /**
   * `OAUTH_RELAY_UID`: a uid besides the client's own and root that may own the relay's Unix socket
   * (the relay runs as a service account). Default none.
   */
  relayUid?: number;
  /**
   * `OAUTH_RELAY_URL`: wait at this relay over HTTPS instead of the socket, e.g.
   * `https://relay.example.com` (`http://` only for loopback hosts). Default none.
   */
  relayUrl?: string;
  /** `OAUTH_CLIENT_TOKEN`: the bearer token for {@linkcode Settings.relayUrl}. Default none. */
  clientToken?: string;
  /**
   * `OAUTH_PUBLIC_URL`: the relay's public URL as providers redirect to it, e.g.
   * `https://relay.example.com`; the redirect URI is this plus {@linkcode Settings.callbackPath}.
   * `https://` (`http://` only for loopback hosts). Default none.
   */
  publicUrl?: string;
}

/**
 * The defaults of every setting.
 *
 * @example
 * ```ts
 * import { DEFAULT_SETTINGS } from "./settings.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_SETTINGS.defaultTimeout, 300);
 * ```
 */
export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  enabled: true,
  callbackPath: "/oauth/callback",
  codeKeys: ["code", "authorization_code"],
  socketPath: "/tmp/poast-relay-oauth.sock",
  tcpFallbackPort: 9999,
  defaultTimeout: 300,
  logUnmatched: true,
  useTcp: false,
  tcpHost: "127.0.0.1",
});

/**
 * A setting whose value cannot be used. The message names the variable and
 * the value, so a person can fix it from one line.
 *
 * @example
 * ```ts
 * import { ConfigError, loadSettings } from "./settings.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => loadSettings({ OAUTH_TCP_FALLBACK_PORT: "http" }), (error: unknown) => {
 *   assert.ok(error instanceof ConfigError);
 *   assert.equal(error.variable, "OAUTH_TCP_FALLBACK_PORT");
 *   return true;
 * });
 * ```
 */
export class ConfigError extends Error {
  /** The variable at fault, e.g. `OAUTH_TCP_FALLBACK_PORT`. */
  readonly variable: string;

  /**
   * Creates the error.
   *
   * @param variable The variable at fault.
   * @param message One line naming the variable, the value and the fix.
   */
  constructor(variable: string, message: string) {
    super(message);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/** Reads one variable; `undefined` when unset. */
export type EnvSource =
  | Record<string, string | undefined>
  | { get(name: string): string | undefined };

const TRUE = new Set(["true", "1", "yes"]);
const FALSE = new Set(["false", "0", "no"]);

/** A function that reads one variable of `env`. */
export function reader(env: EnvSource): (name: string) => string | undefined {
  if (typeof (env as { get?: unknown }).get === "function") {
    const source = env as { get(name: string): string | undefined };
    return (name) => source.get(name);
  }
  return (name) => (env as Record<string, string | undefined>)[name];
}

/** A value as it appears in an error message: quoted, and cut when long. */
export function shown(value: string): string {
  return JSON.stringify(value.length > 80 ? value.slice(0, 80) + "…" : value);
}

/** Parses a boolean the way people write them: true/false/1/0/yes/no, any case. */
export function parseBoolean(name: string, value: string): boolean {
  const word = value.trim().toLowerCase();
  if (TRUE.has(word)) return true;
  if (FALSE.has(word)) return false;
  throw new ConfigError(
    name,
    `${name} must be true or false (or 1/0, yes/no), got ${shown(value)}`,
  );
}

/** Parses a TCP port, 0–65535 (0: any free port, when listening). */
export function parsePort(name: string, value: string): number {
  const port = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || port > MAX_PORT) {
    throw new ConfigError(name, `${name} must be a port number from 0 to ${MAX_PORT}, got ${shown(value)}`);
  }
  return port;
}

/** Parses a positive number of seconds, at most {@linkcode MAX_TIMEOUT_SECONDS}. */
export function parseSeconds(name: string, value: string): number {
  const seconds = Number(value.trim());
  if (value.trim() === "" || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new ConfigError(
      name,
      `${name} must be a positive number of seconds, at most ${MAX_TIMEOUT_SECONDS}, got ${shown(value)}`,
    );
  }
  return seconds;
}

/** Parses a whole number from 1 to `max`. */
export function parseCount(name: string, value: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > max) {
    throw new ConfigError(name, `${name} must be a whole number from 1 to ${max}, got ${shown(value)}`);
  }
  return n;
}

/** Parses an absolute file path. */
export function parsePath(name: string, value: string): string {
  if (!value.startsWith("/")) {
    throw new ConfigError(name, `${name} must be an absolute path starting with "/", got ${shown(value)}`);
  }
  return value;
}

function parseCallbackPath(name: string, value: string): string {
  if (!/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/.test(value)) {
    throw new ConfigError(name, `${name} must be a URL path starting with "/", got ${shown(value)}`);
  }
  return value;
}

function parseKeys(name: string, value: string): string[] {
  const keys = value.split(",").map((key) => key.trim().toLowerCase()).filter(Boolean);
  if (keys.length === 0) {
    throw new ConfigError(name, `${name} must list at least one parameter name, got ${shown(value)}`);
  }
  return keys;
}

/** The socket's name in `$XDG_RUNTIME_DIR`, the default directory when it is set. */
export const RUNTIME_DIR_SOCKET = "oauth-relay.sock";

/** The one parse table: each setting, its variable, and how its value is read. */
const SETTINGS_TABLE: {
  [K in keyof Settings]-?: [variable: string, parse: (name: string, raw: string) => Settings[K]];
} = {
  enabled: ["OAUTH_ENABLED", parseBoolean],
  callbackPath: ["OAUTH_CALLBACK_PATH", parseCallbackPath],
  codeKeys: ["OAUTH_CODE_KEYS", parseKeys],
  socketPath: ["OAUTH_SOCKET_PATH", parsePath],
  tcpFallbackPort: ["OAUTH_TCP_FALLBACK_PORT", parsePort],
  defaultTimeout: ["OAUTH_DEFAULT_TIMEOUT", parseSeconds],
  logUnmatched: ["OAUTH_LOG_UNMATCHED", parseBoolean],
  useTcp: ["OAUTH_USE_TCP", parseBoolean],
  tcpHost: ["OAUTH_TCP_HOST", parseHost],
  token: ["OAUTH_COORDINATOR_TOKEN", parseToken],
  relayUid: ["OAUTH_RELAY_UID", parseUid],
  relayUrl: ["OAUTH_RELAY_URL", parseRelayUrl],
  clientToken: ["OAUTH_CLIENT_TOKEN", (_name, raw) => raw.trim()],
  // Held to the relay URL's rule: a redirect URI over plain HTTP would carry codes in clear (RFC 9700 §2.1).
  publicUrl: ["OAUTH_PUBLIC_URL", parseRelayUrl],
};

/**
 * Builds {@linkcode Settings} from environment variables, filling in defaults.
 *
 * @param env Where the variables come from: `Deno.env`, `process.env` or a plain object.
 * @param platform The operating system, as in `Deno.build.os`; `"windows"` turns on TCP mode.
 * @returns Complete, validated settings.
 * @throws {ConfigError} When a variable holds a value that cannot be used.
 *
 * @example
 * ```ts
 * import { loadSettings } from "./settings.ts";
 * import assert from "node:assert/strict";
 *
 * const settings = loadSettings({ OAUTH_USE_TCP: "yes", OAUTH_TCP_FALLBACK_PORT: "9100" });
 * assert.equal(settings.useTcp, true);
 * assert.equal(settings.tcpFallbackPort, 9100);
 * assert.equal(settings.callbackPath, "/oauth/callback");
 * ```
 */
export function loadSettings(env: EnvSource, platform?: string): Settings {
  const get = reader(env);
  const settings: Settings = { ...DEFAULT_SETTINGS, codeKeys: [...DEFAULT_SETTINGS.codeKeys] };
  if (platform === "windows") settings.useTcp = true;
  // A private per-user directory, where no other user can create the socket first (see docs/security.md).
  const runtimeDir = get("XDG_RUNTIME_DIR");
  if (runtimeDir?.startsWith("/")) settings.socketPath = `${runtimeDir.replace(/\/+$/, "")}/${RUNTIME_DIR_SOCKET}`;
  for (const [field, [name, parse]] of Object.entries(SETTINGS_TABLE)) {
    const raw = get(name);
    if (raw !== undefined && raw !== "") (settings as unknown as Record<string, unknown>)[field] = parse(name, raw);
  }
  return settings;
}

/** Parses a host name or IP address (brackets around IPv6 removed). */
export function parseHost(name: string, value: string): string {
  const host = value.trim();
  if (!/^[A-Za-z0-9.:\-\[\]]+$/.test(host)) {
    throw new ConfigError(name, `${name} must be a host name or IP address, got ${shown(value)}`);
  }
  return host.replace(/^\[(.*)\]$/, "$1");
}

/**
 * Parses a relay's public URL: `https://`, or `http://` for a loopback host
 * only, so a client token never travels in clear (RFC 6750 §5.3).
 */
export function parseRelayUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new ConfigError(name, `${name} must be a URL like https://relay.example.com, got ${shown(value)}`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(host))) {
    throw new ConfigError(name, `${name} must use https:// (http:// only for a loopback host), got ${shown(value)}`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ConfigError(name, `${name} must not carry credentials, a query or a fragment, got ${shown(value)}`);
  }
  return url.href.replace(/\/+$/, "");
}

function parseUid(name: string, value: string): number {
  const uid = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || uid > 2 ** 32 - 2) {
    throw new ConfigError(name, `${name} must be a numeric user id (see: id -u ACCOUNT), got ${shown(value)}`);
  }
  return uid;
}

function parseToken(name: string, value: string): string {
  if (value.length < 16) {
    throw new ConfigError(name, `${name} must be at least 16 characters (use e.g. openssl rand -hex 32)`);
  }
  return value;
}

/**
 * The coordinator address that `settings` describe.
 *
 * @param settings Where the coordinator listens.
 * @returns The Unix socket path, or the TCP host and port.
 *
 * @example
 * ```ts
 * import { coordinatorAddress, DEFAULT_SETTINGS } from "./settings.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(coordinatorAddress({ ...DEFAULT_SETTINGS, useTcp: true }), {
 *   transport: "tcp",
 *   hostname: "127.0.0.1",
 *   port: 9999,
 * });
 * ```
 */
export function coordinatorAddress(settings: Settings): CoordinatorAddress {
  if (settings.relayUrl !== undefined) return { transport: "https", url: settings.relayUrl };
  return settings.useTcp
    ? { transport: "tcp", hostname: settings.tcpHost, port: settings.tcpFallbackPort }
    : { transport: "unix", path: settings.socketPath, relayUid: settings.relayUid };
}
