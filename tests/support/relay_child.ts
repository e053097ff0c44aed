/**
 * A relay in a child process, for the stress scenarios: the same `startRelay`
 * that server.ts runs, on a Unix socket in a fresh temp directory (or loopback
 * TCP), answering `stats` and `stop` on stdin with JSON lines on stdout.
 * `RelayProcess` (./relay_process.ts) starts it as
 * `deno run … tests/support/relay_child.ts '<ChildOptions as JSON>'`.
 *
 * @module
 */

import { DEFAULT_SETTINGS, type Settings } from "../../src/client/settings.ts";
import type { Logger } from "../../src/relay/log.ts";
import { startRelay } from "../../src/relay/relay.ts";
import { textLines } from "./lines.ts";
import { heapUsed } from "./stats.ts";

/** Options of a relay child. */
export interface ChildOptions {
  useTcp: boolean;
  maxWaiters: number;
  registerTimeoutMs: number;
  /** Start the child under `ulimit -n` of this many file descriptors (Linux/macOS, via bash). */
  fileLimit?: number;
}

/** What a relay child reports about itself. */
export interface ChildStats {
  waiting: number;
  heapUsed: number;
  rss: number;
  errors: string[];
  errorCount: number;
}

/** Runs in the child: a relay that answers `stats` and `stop` on stdin with JSON lines on stdout. */
async function relayChild(options: ChildOptions): Promise<void> {
  const errors: string[] = [];
  let errorCount = 0;
  const error = (message: string) => {
    errorCount++;
    if (errors.length < 5) errors.push(message);
    if (errorCount <= 5) console.error(`relay ERROR - ${message}`);
  };
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error,
    // Lines a stranger can repeat: the relay rate-limits them, but here every ERROR counts.
    limited(level, _kind, message) {
      if (level === "error") error(message);
    },
    debugEnabled: false,
  };
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "oauth-relay-stress-" });
  const settings: Settings = {
    ...DEFAULT_SETTINGS,
    socketPath: `${dir}/relay.sock`,
    tcpFallbackPort: 0,
    useTcp: options.useTcp,
    defaultTimeout: 300,
    logUnmatched: false,
  };
  const relay = await startRelay({
    settings,
    port: 0,
    logger,
    maxWaiters: options.maxWaiters,
    registerTimeoutMs: options.registerTimeoutMs,
  });
  const say = (message: unknown) => console.log(JSON.stringify(message));
  say({ url: relay.url, coordinator: relay.coordinator, callbackPath: settings.callbackPath, dir });
  for await (const command of textLines(Deno.stdin.readable)) {
    if (command === "stats") {
      const stats: ChildStats = {
        waiting: await relay.registry.count(),
        heapUsed: heapUsed(),
        rss: Deno.memoryUsage().rss,
        errors,
        errorCount,
      };
      say(stats);
    } else if (command === "stop") {
      await relay.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      say({ stopped: true });
      return;
    }
  }
  await relay.shutdown();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

if (import.meta.main) await relayChild(JSON.parse(Deno.args[0]));
