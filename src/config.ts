// This module is browser compatible.

/**
 * Relay settings: the `OAUTH_*` environment variables, their defaults and
 * their validation. Shared by the relay and the client.
 *
 * @module
 */

/** Settings of the relay and of its clients. Each field is an `OAUTH_*` variable in camelCase. */
export interface Settings {
  /** `OAUTH_ENABLED`: serve the callback route and the coordinator. Default `true`. */
  enabled: boolean;
  /** `OAUTH_CALLBACK_PATH`: HTTP path of the callback. Default `/oauth/callback`. */
  callbackPath: string;
  /** `OAUTH_CODE_KEYS`: parameter names that hold the code, matched case-insensitively. */
  codeKeys: string[];
  /** `OAUTH_SOCKET_PATH`: absolute path of the coordinator's Unix socket. */
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
  /** `OAUTH_COORDINATOR_TOKEN`: shared secret clients present when they register. Default none. */
  token?: string;
}

/**
 * The defaults of every setting, as the seed documents them (except `enabled`, see README).
 *
 * @example
 * ```ts
 * import { DEFAULT_SETTINGS } from "./config.ts";
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
 * import { ConfigError, loadSettings } from "./config.ts";
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

function reader(env: EnvSource): (name: string) => string | undefined {
  if (typeof (env as { get?: unknown }).get === "function") {
    const source = env as { get(name: string): string | undefined };
    return (name) => source.get(name);
  }
  return (name) => (env as Record<string, string | undefined>)[name];
}

function shown(value: string): string {
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

/** Parses a TCP port, 0–65535. */
export function parsePort(name: string, value: string): number {
  const port = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || port > 65535) {
    throw new ConfigError(name, `${name} must be a port number from 0 to 65535, got ${shown(value)}`);
  }
  return port;
}

/** Parses a positive, finite number of seconds. */
export function parseSeconds(name: string, value: string): number {
  const seconds = Number(value.trim());
  if (value.trim() === "" || !Number.isFinite(seconds) || seconds <= 0 || seconds > 2147483) {
    throw new ConfigError(name, `${name} must be a positive number of seconds, got ${shown(value)}`);
  }
  return seconds;
}

function parsePath(name: string, value: string): string {
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
 * import { loadSettings } from "./config.ts";
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
  const value = <T>(name: string, parse: (name: string, raw: string) => T, fallback: T): T => {
    const raw = get(name);
    return raw === undefined || raw === "" ? fallback : parse(name, raw);
  };
  const d = DEFAULT_SETTINGS;
  return {
    enabled: value("OAUTH_ENABLED", parseBoolean, d.enabled),
    callbackPath: value("OAUTH_CALLBACK_PATH", parseCallbackPath, d.callbackPath),
    codeKeys: value("OAUTH_CODE_KEYS", parseKeys, [...d.codeKeys]),
    socketPath: value("OAUTH_SOCKET_PATH", parsePath, d.socketPath),
    tcpFallbackPort: value("OAUTH_TCP_FALLBACK_PORT", parsePort, d.tcpFallbackPort),
    defaultTimeout: value("OAUTH_DEFAULT_TIMEOUT", parseSeconds, d.defaultTimeout),
    logUnmatched: value("OAUTH_LOG_UNMATCHED", parseBoolean, d.logUnmatched),
    useTcp: value("OAUTH_USE_TCP", parseBoolean, platform === "windows" || d.useTcp),
    tcpHost: value("OAUTH_TCP_HOST", parseHost, d.tcpHost),
    token: value("OAUTH_COORDINATOR_TOKEN", parseToken, undefined),
  };
}

function parseHost(name: string, value: string): string {
  const host = value.trim();
  if (!/^[A-Za-z0-9.:\-\[\]]+$/.test(host)) {
    throw new ConfigError(name, `${name} must be a host name or IP address, got ${shown(value)}`);
  }
  return host.replace(/^\[(.*)\]$/, "$1");
}

function parseToken(name: string, value: string): string {
  if (value.length < 16) {
    throw new ConfigError(name, `${name} must be at least 16 characters (use e.g. openssl rand -hex 32)`);
  }
  return value;
}

/** Whether `host` can only be reached from this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

/** Where the coordinator listens, as clients and `/health` see it. */
export type CoordinatorAddress =
  | { transport: "unix"; path: string }
  | { transport: "tcp"; hostname: string; port: number };

/** The coordinator address that `settings` describe. */
export function coordinatorAddress(settings: Settings): CoordinatorAddress {
  return settings.useTcp
    ? { transport: "tcp", hostname: settings.tcpHost, port: settings.tcpFallbackPort }
    : { transport: "unix", path: settings.socketPath };
}

/** The address as one short string, for messages: a path, or `host:port`. */
export function formatAddress(address: CoordinatorAddress): string {
  return address.transport === "unix" ? address.path : `${address.hostname}:${address.port}`;
}

/** Settings only the relay process reads: its HTTP listener, log level and limits. */
export interface ServerConfig {
  /** `OAUTH_MAX_BODY_BYTES`: largest callback body. Default 65536 (64 KiB), at most 262144. */
  maxBodyBytes: number;
  /** `OAUTH_MAX_WAITERS`: most clients waiting at once. Default 10000. */
  maxWaiters: number;
  /** `OAUTH_SOCKET_MODE`: permission bits of the Unix socket, 0600 or 0660. Default 0600. */
  socketMode: number;
  /** `HOST`: address of the HTTP listener. Default `127.0.0.1` (put a TLS proxy in front). */
  hostname: string;
  /** `PORT`: HTTP port. Default `8000`. */
  port: number;
  /** `OAUTH_LOG_LEVEL`: debug, info, warn, error or silent. Default `info`. */
  logLevel: "debug" | "info" | "warn" | "error" | "silent";
}

const LEVELS = ["debug", "info", "warn", "error", "silent"] as const;

/** Largest `OAUTH_MAX_BODY_BYTES`: a delivered callback must fit the client's line limit. */
export const MAX_BODY_BYTES_LIMIT = 256 * 1024;

/**
 * Reads {@linkcode ServerConfig} from environment variables.
 *
 * @throws {ConfigError} When a variable holds a value that cannot be used.
 */
export function loadServerConfig(env: EnvSource): ServerConfig {
  const get = reader(env);
  const hostname = get("HOST")?.trim() || "127.0.0.1";
  const rawPort = get("PORT");
  const port = rawPort ? parsePort("PORT", rawPort) : 8000;
  const rawLevel = get("OAUTH_LOG_LEVEL")?.trim().toLowerCase() || "info";
  const logLevel = LEVELS.find((level) => level === rawLevel);
  if (!logLevel) {
    throw new ConfigError(
      "OAUTH_LOG_LEVEL",
      `OAUTH_LOG_LEVEL must be one of ${LEVELS.join(", ")}, got ${shown(get("OAUTH_LOG_LEVEL") ?? "")}`,
    );
  }
  const count = (name: string, fallback: number, max = Number.MAX_SAFE_INTEGER) => {
    const raw = get(name);
    if (raw === undefined || raw.trim() === "") return fallback;
    const n = Number(raw.trim());
    if (!/^\d+$/.test(raw.trim()) || n < 1 || n > max) {
      throw new ConfigError(name, `${name} must be a whole number from 1 to ${max}, got ${shown(raw)}`);
    }
    return n;
  };
  const rawMode = get("OAUTH_SOCKET_MODE")?.trim() || "0600";
  if (rawMode !== "0600" && rawMode !== "600" && rawMode !== "0660" && rawMode !== "660") {
    throw new ConfigError(
      "OAUTH_SOCKET_MODE",
      `OAUTH_SOCKET_MODE must be 0600 (owner only) or 0660 (owner and group), got ${shown(rawMode)}`,
    );
  }
  return {
    hostname,
    port,
    logLevel,
    maxBodyBytes: count("OAUTH_MAX_BODY_BYTES", 64 * 1024, MAX_BODY_BYTES_LIMIT),
    maxWaiters: count("OAUTH_MAX_WAITERS", 10_000),
    socketMode: parseInt(rawMode, 8),
  };
}

/**
 * Checks settings that are valid one by one but unsafe together.
 *
 * @throws {ConfigError} When the coordinator would listen beyond loopback without a token (RFC 8252 §8.3).
 */
export function checkRelaySettings(settings: Settings): void {
  if (settings.enabled && settings.useTcp && !isLoopback(settings.tcpHost) && !settings.token) {
    throw new ConfigError(
      "OAUTH_TCP_HOST",
      `OAUTH_TCP_HOST=${settings.tcpHost} is reachable from other machines: set OAUTH_COORDINATOR_TOKEN so clients must authenticate`,
    );
  }
}
