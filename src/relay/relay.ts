/**
 * One relay: the HTTP side and the coordinator wired together, started and
 * stopped as a unit. `server.ts` runs it; tests start one per test.
 *
 * @module
 */

import { type CoordinatorAddress, formatAddress, type Settings } from "../client/settings.ts";
import { checkRelaySettings } from "./config.ts";
import { DEFAULT_MAX_WAITERS, ERROR_CODES, REGISTER_TIMEOUT_MS } from "../protocol/mod.ts";

/** Default {@linkcode RelayOptions.maxWaitersPerToken}. */
export const DEFAULT_MAX_WAITERS_PER_TOKEN = 100;
/** Default {@linkcode RelayOptions.sseHeartbeatMs}. */
export const DEFAULT_SSE_HEARTBEAT_MS = 15_000;
/** Default {@linkcode RelayOptions.resumeGraceMs}. */
export const DEFAULT_RESUME_GRACE_MS = 30_000;
import { type Coordinator, DEFAULT_MAX_PENDING, serveCoordinator } from "./coordinator/serve.ts";
import { createHandler, DEFAULT_HTTP_LIMITS, type HttpLimits } from "./http/handler.ts";
import { unavailableResponse } from "./http/pages.ts";
import { ClientTokens } from "./http/client_tokens.ts";
import { createWaitRoute } from "./http/wait.ts";
import { type HttpHandler, type HttpStats, serveHttp } from "./http/serve.ts";
import { fairListener } from "./fair_accept.ts";
import { readFileLimit } from "./fd_limit.ts";
import { DEFAULT_MAX_HTTP_CONNECTIONS, describePlan, type DescriptorPlan, planDescriptors } from "./fd_budget.ts";
import { type BoundListener, ListenError, listenTcp, listenUnix } from "./coordinator/listen.ts";
import { osErrorMessage } from "../client/transport/deno.ts";
import { createLogger, LOG_INTERVAL_MS, type Logger } from "./log.ts";
import { reclaimAfterFloods } from "./reclaim.ts";
import { MemoryRegistry } from "./registry/memory.ts";
import type { Registry } from "./registry/registry.ts";
import type { RedisRegistryOptions } from "./registry/redis.ts";

/** Where a shared registry is ({@linkcode RelayOptions.redis}), and its timings. */
export type RedisRelayOptions = Omit<
  RedisRegistryOptions,
  "logger" | "maxWaiters" | "maxLocal" | "maxWaitersPerToken" | "graceMs"
>;

/** How long shutdown waits for in-flight callbacks. */
const SHUTDOWN_GRACE_MS = 5000;

/** Options of {@linkcode startRelay}. */
export interface RelayOptions {
  settings: Settings;
  /** HTTP listener address. Default `127.0.0.1`. */
  hostname?: string;
  /** HTTP port; 0 picks a free one. Default 8000. */
  port?: number;
  /** Default: INFO lines to stderr. */
  logger?: Logger;
  /** Permission bits of the Unix socket. Default 0o600. */
  socketMode?: number;
  /** Limits on callback requests. */
  limits?: Partial<HttpLimits>;
  /** Most waiters at once, when the file limit allows (see {@linkcode Relay.caps}). Default 10,000. */
  maxWaiters?: number;
  /** Where waiters register. Default: Redis with {@linkcode RelayOptions.redis}, else a {@linkcode MemoryRegistry}. */
  registry?: Registry;
  /**
   * A Redis shared with other relays (`OAUTH_REDIS_URL`): registrations, claims, the replay memory and the
   * caps are cluster-wide, and `maxWaiters` counts every relay's waiters. Default: none (in memory).
   */
  redis?: RedisRelayOptions;
  /** Milliseconds a coordinator connection may stay silent before registering. */
  registerTimeoutMs?: number;
  /** Milliseconds a write to a client may take before it counts as gone. */
  writeTimeoutMs?: number;
  /** Longest registration in seconds; longer requests are clamped. Default 3600. */
  maxTimeout?: number;
  /** Accept waiters without a state (single-slot mode). Default `true`. */
  singleSlot?: boolean;
  /** Most coordinator connections that have not registered yet. Default 64. */
  maxPending?: number;
  /** Bearer tokens of remote waiters: `POST /v1/wait` answers only when there is at least one. */
  clientTokens?: readonly string[];
  /** Most remote waiters one client token may hold. Default 100. */
  maxWaitersPerToken?: number;
  /** Milliseconds between heartbeats on an idle remote wait stream. Default 15,000. */
  sseHeartbeatMs?: number;
  /** Milliseconds a remote registration (or its callback) is kept after its stream broke. Default 30,000. */
  resumeGraceMs?: number;
  /** PEM certificate (chain) and key: the HTTP port serves HTTPS. */
  tls?: { cert: string; key: string };
  /** Milliseconds shutdown waits for in-flight callbacks before cutting them off (503). Default 5000. */
  shutdownGraceMs?: number;
  /** The file limit to size the caps to. Default: read at start (`sh -c "ulimit -n"`, needs `--allow-run=sh`). */
  fileLimit?: number;
  /** Most HTTP connections, when the file limit allows. Default 256. */
  maxHttpConnections?: number;
  /** Milliseconds a new HTTP connection may take to send a complete request head. Default 5000. */
  headerTimeoutMs?: number;
  /** Milliseconds a kept-alive HTTP connection may sit idle. Default 10,000. */
  idleTimeoutMs?: number;
  /** Quiet milliseconds after a flood before memory is handed back (with `--expose-gc`). Default 10,000. */
  reclaimAfterMs?: number;
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** Base URL of the HTTP side, e.g. `http://127.0.0.1:8000`. */
  readonly url: string;
  /** Where clients connect; `null` when the relay is disabled. */
  readonly coordinator: CoordinatorAddress | null;
  /** The registry of waiters. */
  readonly registry: Registry;
  /** The file limit and the connection caps cut from it at start. */
  readonly caps: DescriptorPlan;
  /** Live counters of the HTTP side: open connections, and what was shed or timed out. */
  httpStats(): HttpStats;
  /** Stops accepting, finishes in-flight callbacks, tells waiting clients, removes the socket. */
  shutdown(): Promise<void>;
}

/**
 * Starts a relay.
 *
 * @throws {ListenError} When the coordinator cannot listen (live relay on the socket, port in use, …).
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { settings } = options;
  checkRelaySettings(settings);
  // Lines a stranger can repeat mark a flood; once they stop, memory is handed back (./reclaim.ts).
  const floodWatch = reclaimAfterFloods(
    options.logger ?? createLogger("info"),
    options.reclaimAfterMs ?? LOG_INTERVAL_MS,
  );
  const logger = floodWatch.logger;
  // One descriptor budget for both ports, so that no flood on either can run the process out of them.
  const wants = {
    http: options.maxHttpConnections ?? DEFAULT_MAX_HTTP_CONNECTIONS,
    waiting: settings.enabled ? options.maxWaiters ?? DEFAULT_MAX_WAITERS : 0,
    pending: settings.enabled ? options.maxPending ?? DEFAULT_MAX_PENDING : 0,
  };
  const fileLimit = options.fileLimit === undefined
    ? await readFileLimit()
    : { limit: options.fileLimit, source: "given" as const };
  const caps = planDescriptors(fileLimit, wants);
  const graceMs = options.resumeGraceMs ?? DEFAULT_RESUME_GRACE_MS;
  const registry = options.registry ?? (options.redis
    ? await connectRedis(options.redis, {
      logger,
      maxWaiters: options.maxWaiters ?? DEFAULT_MAX_WAITERS,
      maxLocal: Math.max(1, caps.waiting),
      maxWaitersPerToken: options.maxWaitersPerToken ?? DEFAULT_MAX_WAITERS_PER_TOKEN,
      graceMs,
    })
    : new MemoryRegistry({ maxWaiters: Math.max(1, caps.waiting) }));

  let bound: BoundListener | undefined;
  let coordinator: Coordinator | undefined;
  // Remote waiting over HTTPS: the same waiter rules as the socket; single-slot mode stays local.
  const wait = settings.enabled && options.clientTokens?.length
    ? createWaitRoute({
      tokens: new ClientTokens(options.clientTokens),
      policy: {
        registry,
        logger,
        defaultTimeout: settings.defaultTimeout,
        registerTimeoutMs: REGISTER_TIMEOUT_MS,
        maxTimeout: options.maxTimeout,
        singleSlot: false,
      },
      logger,
      maxPerToken: options.maxWaitersPerToken ?? DEFAULT_MAX_WAITERS_PER_TOKEN,
      heartbeatMs: options.sseHeartbeatMs ?? DEFAULT_SSE_HEARTBEAT_MS,
      graceMs,
    })
    : undefined;
  const handler = createHandler({
    settings,
    registry,
    logger,
    coordinator: () => bound?.address ?? null,
    limits: options.limits,
    stopping: () => stopping !== undefined,
    wait,
  });
  // The HTTP server's shutdown cuts off request bodies still being read (as Deno.serve's does), so the
  // relay counts its in-flight requests and lets them finish first.
  let inFlight = 0;
  let drained: PromiseWithResolvers<void> | undefined;
  const tracked: HttpHandler = async (request, info) => {
    inFlight++;
    try {
      return await handler(request, info);
    } finally {
      if (--inFlight === 0) drained?.resolve();
    }
  };

  // HTTP first: a relay whose port is taken must fail before it touches the socket path,
  // where it could replace the socket of a relay starting at the same moment.
  const httpHost = options.hostname ?? "127.0.0.1";
  const httpPort = options.port ?? 8000;
  let server: ReturnType<typeof serveHttp>;
  try {
    server = serveHttp({
      hostname: httpHost,
      port: httpPort,
      tls: options.tls,
      handler: tracked,
      onError: (error) => {
        logger.error(`Callback handler failed: ${error instanceof Error ? error.message : error}`);
        return new Response("Internal error\n", { status: 500, headers: { "cache-control": "no-store" } });
      },
      // A slow callback cut off to make room during a flood: reload in a moment.
      busyResponse: unavailableResponse,
      logger,
      maxConnections: caps.http,
      headerTimeoutMs: options.headerTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      // A backstop only: the handler bounds the body itself (408), and a delivery by the write timeout.
      requestTimeoutMs: (options.limits?.bodyTimeoutMs ?? DEFAULT_HTTP_LIMITS.bodyTimeoutMs) + 10_000,
    });
  } catch (error) {
    if (!options.registry) await registry.close();
    throw httpListenError(httpHost, httpPort, error);
  }
  logger.info(describePlan(caps, wants, settings.enabled));

  if (settings.enabled) {
    logger.info("OAuth relay enabled");
    logger.info("OAuth coordinator starting");
    try {
      bound = settings.useTcp
        ? listenTcp(settings.tcpHost, settings.tcpFallbackPort)
        : await listenUnix(settings.socketPath, options.socketMode);
    } catch (error) {
      await server.shutdown();
      if (!options.registry) await registry.close();
      throw error;
    }
    coordinator = serveCoordinator(fairListener(bound.listener), {
      registry,
      logger,
      defaultTimeout: settings.defaultTimeout,
      registerTimeoutMs: options.registerTimeoutMs,
      writeTimeoutMs: options.writeTimeoutMs,
      token: settings.token,
      maxTimeout: options.maxTimeout,
      singleSlot: options.singleSlot,
      maxPending: caps.pending,
      // Room for every waiter plus the ones that have yet to register, within the descriptor budget.
      maxConnections: caps.coordinator,
    });
    logger.info(`OAuth coordinator listening on ${formatAddress(bound.address)}`);
  } else {
    logger.info("OAuth relay disabled (OAUTH_ENABLED=false): no callback route, no coordinator");
  }
  const { hostname, port } = server.addr;
  const url = `${options.tls ? "https" : "http"}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  logger.info(`HTTP listening on ${url}`);

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      // Stop taking new clients first, then let in-flight callbacks finish, then tell the rest.
      bound?.listener.close();
      if (inFlight > 0) {
        drained = Promise.withResolvers();
        const graceMs = options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
        const grace = setTimeout(() => {
          logger.warn(`Shutdown: ${inFlight} callback(s) still in flight after ${graceMs} ms are answered 503`);
          drained!.resolve();
        }, graceMs);
        await drained.promise;
        clearTimeout(grace);
      }
      // A shared registry keeps remote registrations for another relay, where their clients resume.
      await registry.retire();
      // Remote streams never end by themselves: end them before the HTTP server waits for its connections.
      await wait?.endAll(ERROR_CODES.SHUTDOWN, "The relay is shutting down");
      await server.shutdown();
      await coordinator?.endAll(ERROR_CODES.SHUTDOWN, "The relay is shutting down");
      await coordinator?.finished;
      await bound?.close();
      if (!options.registry) await registry.close();
      floodWatch.stop();
      if (bound) logger.info("OAuth coordinator stopped");
    })();

  return {
    url,
    coordinator: bound?.address ?? null,
    registry,
    caps,
    httpStats: () => server.stats(),
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

/** One line for a person when the HTTP side cannot listen, naming the variables to change. */
function httpListenError(hostname: string, port: number, error: unknown): Error {
  if (error instanceof ListenError) return error;
  const where = `Cannot listen for HTTP at ${hostname}:${port} (HOST, PORT)`;
  if (error instanceof Deno.errors.AddrInUse) {
    return new ListenError(`${where}: the address is in use; stop the other server or set PORT`, { cause: error });
  }
  if (error instanceof Deno.errors.NotCapable) {
    return new ListenError(`${where}: ${error.message.split("\n")[0]}`, { cause: error });
  }
  // Only the system's answers to listening name HOST; anything else is not about the address.
  if (!(error instanceof Error) || !/os error|lookup|address|resolve/i.test(error.message)) return error as Error;
  return new ListenError(`${where}: ${osErrorMessage(error)}; check HOST`, { cause: error });
}

/** Connects the Redis registry, loaded only when asked for: a relay without Redis never loads its client. */
async function connectRedis(
  redis: RedisRelayOptions,
  limits: Omit<RedisRegistryOptions, "url">,
): Promise<Registry> {
  const { RedisRegistry } = await import("./registry/redis.ts");
  return await RedisRegistry.connect({ ...redis, ...limits });
}
