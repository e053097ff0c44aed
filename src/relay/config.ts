/**
 * The relay's own settings: its HTTP listener, log level and limits, read
 * from the environment with the same parsers as the shared settings.
 *
 * @module
 */

import {
  ConfigError,
  type EnvSource,
  isLoopback,
  parseBoolean,
  parseCount,
  parseHost,
  parsePath,
  parsePort,
  parseSeconds,
  reader,
  type Settings,
  shown,
} from "../client/settings.ts";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_TIMEOUT_SECONDS,
  DEFAULT_MAX_WAITERS,
  MAX_BODY_BYTES_LIMIT,
} from "../protocol/limits.ts";
import { MIN_CLIENT_TOKEN_LENGTH } from "./http/client_tokens.ts";
import { DEFAULT_MAX_HTTP_CONNECTIONS } from "./fd_budget.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";

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
  logLevel: LogLevel;
  /** `OAUTH_MAX_TIMEOUT`: longest registration in seconds; longer requests are clamped. Default 3600. */
  maxTimeout: number;
  /** `OAUTH_SINGLE_SLOT`: accept waiters without a state (single-slot mode). Default `true`. */
  singleSlot: boolean;
  /**
   * `OAUTH_CLIENT_TOKENS` (comma-separated) and `OAUTH_CLIENT_TOKENS_FILE` (one per line): bearer tokens
   * of remote waiters on `POST /v1/wait`, each at least 32 characters. None: the route answers 404.
   */
  clientTokens: string[];
  /** `OAUTH_MAX_WAITERS_PER_TOKEN`: most remote waiters one token may hold. Default 100. */
  maxWaitersPerToken: number;
  /**
   * `OAUTH_MAX_HTTP_CONNECTIONS`: most HTTP connections, when the file limit allows. Each remote waiter holds
   * one. Default 256.
   */
  maxHttpConnections: number;
  /** `OAUTH_SSE_HEARTBEAT`: seconds between comment lines on an idle wait stream. Default 15. */
  sseHeartbeat: number;
  /** `OAUTH_RESUME_GRACE`: seconds a remote registration (or its callback) is kept after its stream broke. Default 30. */
  resumeGrace: number;
  /** `OAUTH_TLS_CERT_FILE`: PEM certificate (chain) for HTTPS on the HTTP port. Default none. */
  tlsCertFile?: string;
  /** `OAUTH_TLS_KEY_FILE`: PEM private key for HTTPS on the HTTP port. Default none. */
  tlsKeyFile?: string;
  /**
   * `OAUTH_REDIS_URL`: a Redis shared by several relays (`redis://`, `rediss://` for TLS, `unix://` for a
   * socket; user and password in the URL). Default none: the registry lives in this process.
   */
  redisUrl?: string;
}

/** The defaults of {@linkcode ServerConfig}. */
export const DEFAULT_SERVER_CONFIG: Readonly<ServerConfig> = Object.freeze({
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  maxWaiters: DEFAULT_MAX_WAITERS,
  socketMode: 0o600,
  hostname: "127.0.0.1",
  port: 8000,
  logLevel: "info",
  maxTimeout: DEFAULT_MAX_TIMEOUT_SECONDS,
  singleSlot: true,
  clientTokens: [],
  maxWaitersPerToken: 100,
  maxHttpConnections: DEFAULT_MAX_HTTP_CONNECTIONS,
  sseHeartbeat: 15,
  resumeGrace: 30,
});

function parseLogLevel(name: string, value: string): LogLevel {
  const level = LOG_LEVELS.find((level) => level === value.trim().toLowerCase());
  if (!level) throw new ConfigError(name, `${name} must be one of ${LOG_LEVELS.join(", ")}, got ${shown(value)}`);
  return level;
}

function parseSocketMode(name: string, value: string): number {
  const mode = value.trim();
  if (mode !== "0600" && mode !== "600" && mode !== "0660" && mode !== "660") {
    throw new ConfigError(name, `${name} must be 0600 (owner only) or 0660 (owner and group), got ${shown(value)}`);
  }
  return parseInt(mode, 8);
}

/** The one parse table of the relay's own variables. */
const SERVER_TABLE: {
  [K in keyof ServerConfig]: [variable: string, parse: (name: string, raw: string) => ServerConfig[K]];
} = {
  hostname: ["HOST", parseHost],
  port: ["PORT", parsePort],
  logLevel: ["OAUTH_LOG_LEVEL", parseLogLevel],
  maxBodyBytes: ["OAUTH_MAX_BODY_BYTES", (name, raw) => parseCount(name, raw, MAX_BODY_BYTES_LIMIT)],
  maxWaiters: ["OAUTH_MAX_WAITERS", (name, raw) => parseCount(name, raw)],
  socketMode: ["OAUTH_SOCKET_MODE", parseSocketMode],
  maxTimeout: ["OAUTH_MAX_TIMEOUT", parseSeconds],
  singleSlot: ["OAUTH_SINGLE_SLOT", parseBoolean],
  clientTokens: ["OAUTH_CLIENT_TOKENS", (name, raw) => parseClientTokens(name, raw.split(","))],
  maxWaitersPerToken: ["OAUTH_MAX_WAITERS_PER_TOKEN", (name, raw) => parseCount(name, raw)],
  maxHttpConnections: ["OAUTH_MAX_HTTP_CONNECTIONS", (name, raw) => parseCount(name, raw)],
  sseHeartbeat: ["OAUTH_SSE_HEARTBEAT", parseSeconds],
  resumeGrace: ["OAUTH_RESUME_GRACE", parseSeconds],
  tlsCertFile: ["OAUTH_TLS_CERT_FILE", parsePath],
  tlsKeyFile: ["OAUTH_TLS_KEY_FILE", parsePath],
  redisUrl: ["OAUTH_REDIS_URL", parseRedisUrl],
};

/**
 * A Redis URL as it may be shown in a log line or an error: any password replaced by `***`.
 *
 * @param url `redis://`, `rediss://` or `unix://`.
 * @returns The URL without its password.
 *
 * @example
 * ```ts
 * import { redactRedisUrl } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(redactRedisUrl("redis://app:s3cret@redis.internal:6379/2"), "redis://app:***@redis.internal:6379/2");
 * ```
 */
export function redactRedisUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*:)[^@/]*@/i, "$1***@");
}

/** A Redis URL node-redis can use; the error never shows the password. */
function parseRedisUrl(name: string, raw: string): string {
  const value = raw.trim();
  const hidden = redactRedisUrl(value);
  const problem = (why: string) =>
    new ConfigError(
      name,
      `${name} ${why}: redis://[user:password@]host[:port][/db], rediss://… (TLS) or unix:///path/to/redis.sock, got ${
        shown(hidden)
      }`,
    );
  if (/^unix:/i.test(value)) {
    // unix://[user[:password]@]/absolute/path[?db=N], as node-redis reads it.
    if (!/^unix:\/\/(?:[^:@/]*(?::[^@/]*)?@)?\/[^?#]+(?:\?db=\d+)?$/i.test(value)) {
      throw problem("must name an absolute socket path");
    }
    return value;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw problem("is not a URL");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw problem("must start with redis://, rediss:// or unix://");
  }
  if (!url.hostname) throw problem("must name a host");
  if (url.pathname.length > 1 && !/^\/\d+$/.test(url.pathname)) throw problem("may name only a database number");
  return value;
}

function parseClientTokens(name: string, tokens: string[]): string[] {
  const list = tokens.map((token) => token.trim()).filter(Boolean);
  if (list.length === 0) throw new ConfigError(name, `${name} must list at least one token`);
  for (const [i, token] of list.entries()) {
    if (token.length < MIN_CLIENT_TOKEN_LENGTH || !/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
      // Never echo a token: name its position only.
      throw new ConfigError(
        name,
        `${name}: token ${
          i + 1
        } must be at least ${MIN_CLIENT_TOKEN_LENGTH} characters of A-Z a-z 0-9 -._~+/ (use e.g. openssl rand -hex 32)`,
      );
    }
  }
  return list;
}

/**
 * Reads {@linkcode ServerConfig} from environment variables.
 *
 * @param env Where the variables come from.
 * @returns The relay's own settings, defaults filled in.
 * @throws {ConfigError} When a variable holds a value that cannot be used.
 */
export function loadServerConfig(
  env: EnvSource,
  readFile: (path: string) => string = (path) => Deno.readTextFileSync(path),
): ServerConfig {
  const get = reader(env);
  const config: ServerConfig = { ...DEFAULT_SERVER_CONFIG };
  for (const [field, [name, parse]] of Object.entries(SERVER_TABLE)) {
    const raw = get(name);
    if (raw !== undefined && raw.trim() !== "") {
      (config as unknown as Record<string, unknown>)[field] = parse(name, raw);
    }
  }
  const file = get("OAUTH_CLIENT_TOKENS_FILE")?.trim();
  if (file) {
    let text: string;
    try {
      text = readFile(file);
    } catch (error) {
      throw new ConfigError(
        "OAUTH_CLIENT_TOKENS_FILE",
        `OAUTH_CLIENT_TOKENS_FILE=${file} cannot be read: ${
          error instanceof Error ? error.message.split("\n")[0] : error
        }`,
      );
    }
    const fromFile = parseClientTokens("OAUTH_CLIENT_TOKENS_FILE", text.split("\n"));
    config.clientTokens = [...config.clientTokens, ...fromFile];
  }
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    throw new ConfigError(
      config.tlsCertFile ? "OAUTH_TLS_KEY_FILE" : "OAUTH_TLS_CERT_FILE",
      "OAUTH_TLS_CERT_FILE and OAUTH_TLS_KEY_FILE go together: set both for HTTPS, or neither",
    );
  }
  return config;
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
