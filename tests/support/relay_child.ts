/**
 * A relay in a child process, for the stress scenarios: the same `startRelay`
 * that server.ts runs, on a Unix socket in a fresh temp directory (or loopback
 * TCP), answering `stats`, `peek` and `stop` on stdin with JSON lines on stdout.
 * `RelayProcess` (./relay_process.ts) starts it as
 * `deno run … tests/support/relay_child.ts '<ChildOptions as JSON>'`.
 *
 * @module
 */

import { type CoordinatorAddress, DEFAULT_SETTINGS, type Settings } from "../../src/client/settings.ts";
import type { DescriptorPlan } from "../../src/relay/fd_budget.ts";
import type { HttpStats } from "../../src/relay/http/serve.ts";
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
  /** HTTP timeouts of the relay (see `RelayOptions`); the relay's defaults when absent. */
  headerTimeoutMs?: number;
  idleTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** Quiet milliseconds after a flood before the relay hands memory back (see `RelayOptions`). */
  reclaimAfterMs?: number;
  /** Extra environment of the child process, e.g. `MALLOC_MMAP_THRESHOLD_`. */
  env?: Record<string, string>;
}

/** What a relay child says once it listens. */
export interface ChildReady {
  url: string;
  /** A socket: the child never serves waiters over HTTPS. */
  coordinator: Exclude<CoordinatorAddress, { transport: "https" }>;
  callbackPath: string;
  dir: string;
  /** The file limit the relay read and the caps it cut from it. */
  caps: DescriptorPlan;
}

/** What a relay child reports about itself. */
export interface ChildStats {
  waiting: number;
  heapUsed: number;
  rss: number;
  errors: string[];
  errorCount: number;
  /** The HTTP side's connections and what it shed. */
  http: HttpStats;
  /** Times the relay handed memory back after a flood (its INFO line). */
  reclaims: number;
}

/** The counters a relay child reports without a garbage collection. */
export type ChildPeek = Pick<ChildStats, "waiting" | "http" | "reclaims">;

/** Runs in the child: a relay that answers `stats`, `peek` and `stop` on stdin with JSON lines on stdout. */
async function relayChild(options: ChildOptions): Promise<void> {
  const errors: string[] = [];
  let errorCount = 0;
  const error = (message: string) => {
    errorCount++;
    if (errors.length < 5) errors.push(message);
    if (errorCount <= 5) console.error(`relay ERROR - ${message}`);
  };
  let reclaims = 0;
  const logger: Logger = {
    debug() {},
    info(message) {
      if (message.startsWith("Quiet again after a flood")) reclaims++;
    },
    warn() {},
    error,
    // Lines a stranger can repeat: the relay rate-limits them, but here every ERROR counts.
    limited(level, _kind, message) {
      if (level === "error") error(message);
    },
    debugEnabled: false,
    infoEnabled: true,
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
    headerTimeoutMs: options.headerTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    limits: options.bodyTimeoutMs === undefined ? undefined : { bodyTimeoutMs: options.bodyTimeoutMs },
    reclaimAfterMs: options.reclaimAfterMs,
  });
  const say = (message: unknown) => console.log(JSON.stringify(message));
  const ready: ChildReady = {
    url: relay.url,
    coordinator: relay.coordinator as ChildReady["coordinator"],
    callbackPath: settings.callbackPath,
    dir,
    caps: relay.caps,
  };
  say(ready);
  for await (const command of textLines(Deno.stdin.readable)) {
    if (command === "stats") {
      const stats: ChildStats = {
        waiting: await relay.registry.count(),
        heapUsed: heapUsed(),
        rss: Deno.memoryUsage().rss,
        errors,
        errorCount,
        http: relay.httpStats(),
        reclaims,
      };
      say(stats);
    } else if (command === "peek") {
      // The live counters only: no garbage collection, so it can be asked often without disturbing the relay.
      const peek: ChildPeek = { waiting: await relay.registry.count(), http: relay.httpStats(), reclaims };
      say(peek);
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
