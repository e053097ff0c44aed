/**
 * The flags that say how a command reaches the relay (`--timeout`,
 * `--socket`, `--tcp`, `--port`, `--relay`), shared by `wait` and `login`:
 * one definition of each, read by the same rules as the variables they stand in for.
 *
 * @module
 */

import { platform } from "../client/env.ts";
import {
  type EnvSource,
  loadSettings,
  parsePath,
  parsePort,
  parseRelayUrl,
  parseSeconds,
  type Settings,
} from "../client/settings.ts";
import { resolveSettings } from "../client/wait.ts";

/**
 * The flags' definitions for `node:util`'s `parseArgs`.
 *
 * @example
 * ```ts
 * import { RELAY_FLAGS } from "./relay_flags.ts";
 * import { parseArgs } from "node:util";
 * import assert from "node:assert/strict";
 *
 * const { values } = parseArgs({ args: ["--port", "9100"], options: RELAY_FLAGS });
 * assert.equal(values.port, "9100");
 * ```
 */
export const RELAY_FLAGS = {
  timeout: { type: "string" },
  socket: { type: "string" },
  tcp: { type: "boolean" },
  port: { type: "string" },
  relay: { type: "string" },
} as const;

/** Their lines in `--help`. */
export const RELAY_FLAGS_HELP = `  --timeout <secs>    Seconds to wait (default OAUTH_DEFAULT_TIMEOUT, 300)
  --socket <path>     Coordinator Unix socket (default OAUTH_SOCKET_PATH)
  --tcp               Connect over loopback TCP instead (OAUTH_USE_TCP)
  --port <port>       Coordinator TCP port, implies --tcp (default OAUTH_TCP_FALLBACK_PORT, 9999)
  --relay <url>       Wait at this relay over HTTPS (default OAUTH_RELAY_URL); the token comes
                      from OAUTH_CLIENT_TOKEN only, never a flag (command lines are public)`;

/** The flags' values as `parseArgs` returns them. */
export interface RelayFlagValues {
  timeout?: string;
  socket?: string;
  tcp?: boolean;
  port?: string;
  relay?: string;
}

/**
 * The settings and the timeout the flags and the environment give.
 *
 * @param values The parsed flags.
 * @param env The variables to read; `undefined`: the process environment when readable.
 * @returns The settings (defaults, then `env`, then the flags) and the timeout when `--timeout` was given.
 * @throws {ConfigError} When a flag or a variable holds a value that cannot be used; the message names it.
 *
 * @example
 * ```ts
 * import { relaySettings } from "./relay_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const { settings, timeout } = relaySettings({ port: "9100", timeout: "60" }, {});
 * assert.equal(settings.useTcp, true);
 * assert.equal(settings.tcpFallbackPort, 9100);
 * assert.equal(timeout, 60);
 * ```
 */
export function relaySettings(
  values: RelayFlagValues,
  env: EnvSource | undefined,
): { settings: Settings; timeout?: number } {
  const overrides: Partial<Settings> = {};
  const timeout = values.timeout === undefined ? undefined : parseSeconds("--timeout", values.timeout);
  if (values.socket !== undefined) {
    overrides.socketPath = parsePath("--socket", values.socket);
    overrides.useTcp = false;
  }
  if (values.port !== undefined) {
    overrides.tcpFallbackPort = parsePort("--port", values.port);
    overrides.useTcp = true;
  }
  if (values.tcp) overrides.useTcp = true;
  if (values.relay !== undefined) overrides.relayUrl = parseRelayUrl("--relay", values.relay);
  const settings = env === undefined ? resolveSettings(overrides) : { ...loadSettings(env, platform), ...overrides };
  return { settings, timeout };
}
