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
};

/**
 * Reads {@linkcode ServerConfig} from environment variables.
 *
 * @param env Where the variables come from.
 * @returns The relay's own settings, defaults filled in.
 * @throws {ConfigError} When a variable holds a value that cannot be used.
 */
export function loadServerConfig(env: EnvSource): ServerConfig {
  const get = reader(env);
  const config: ServerConfig = { ...DEFAULT_SERVER_CONFIG };
  for (const [field, [name, parse]] of Object.entries(SERVER_TABLE)) {
    const raw = get(name);
    if (raw !== undefined && raw.trim() !== "") {
      (config as unknown as Record<string, unknown>)[field] = parse(name, raw);
    }
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
