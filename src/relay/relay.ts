/**
 * One relay: the HTTP side and the coordinator wired together, started and
 * stopped as a unit. `server.ts` runs it; tests start one per test.
 *
 * @module
 */

import { type CoordinatorAddress, formatAddress, type Settings } from "../client/settings.ts";
import { checkRelaySettings } from "./config.ts";
import { DEFAULT_MAX_WAITERS, ERROR_CODES } from "../protocol/mod.ts";
import { type Coordinator, DEFAULT_MAX_PENDING, serveCoordinator } from "./coordinator/serve.ts";
import { createHandler, type HttpLimits } from "./http/handler.ts";
import { type BoundListener, listenTcp, listenUnix } from "./coordinator/listen.ts";
import { createLogger, type Logger } from "./log.ts";
import { MemoryRegistry } from "./registry/memory.ts";
import type { Registry } from "./registry/registry.ts";

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
  /** Most waiters at once. Default 10,000. */
  maxWaiters?: number;
  /** Where waiters register. Default: a {@linkcode MemoryRegistry} of `maxWaiters`. */
  registry?: Registry;
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
  /** Milliseconds shutdown waits for in-flight callbacks before cutting them off (503). Default 5000. */
  shutdownGraceMs?: number;
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** Base URL of the HTTP side, e.g. `http://127.0.0.1:8000`. */
  readonly url: string;
  /** Where clients connect; `null` when the relay is disabled. */
  readonly coordinator: CoordinatorAddress | null;
  /** The registry of waiters. */
  readonly registry: Registry;
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
  const logger = options.logger ?? createLogger("info");
  const maxWaiters = options.maxWaiters ?? DEFAULT_MAX_WAITERS;
  const registry = options.registry ?? new MemoryRegistry({ maxWaiters });

  let bound: BoundListener | undefined;
  let coordinator: Coordinator | undefined;
  const handler = createHandler({
    settings,
    registry,
    logger,
    coordinator: () => bound?.address ?? null,
    limits: options.limits,
    stopping: () => stopping !== undefined,
  });
  // Deno's server.shutdown() cuts off request bodies still being read, so the
  // relay counts its in-flight requests and lets them finish first.
  let inFlight = 0;
  let drained: PromiseWithResolvers<void> | undefined;
  const tracked = async (request: Request): Promise<Response> => {
    inFlight++;
    try {
      return await handler(request);
    } finally {
      if (--inFlight === 0) drained?.resolve();
    }
  };

  // HTTP first: a relay whose port is taken must fail before it touches the socket path,
  // where it could replace the socket of a relay starting at the same moment.
  const { promise: listening, resolve } = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8000,
    onListen: () => resolve(),
    onError: (error) => {
      logger.error(`Callback handler failed: ${error instanceof Error ? error.message : error}`);
      return new Response("Internal error\n", { status: 500, headers: { "cache-control": "no-store" } });
    },
  }, tracked);
  await listening;

  if (settings.enabled) {
    logger.info("OAuth relay enabled");
    logger.info("OAuth coordinator starting");
    try {
      bound = settings.useTcp
        ? listenTcp(settings.tcpHost, settings.tcpFallbackPort)
        : await listenUnix(settings.socketPath, options.socketMode);
    } catch (error) {
      await server.shutdown();
      throw error;
    }
    const maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    coordinator = serveCoordinator(bound.listener, {
      registry,
      logger,
      defaultTimeout: settings.defaultTimeout,
      registerTimeoutMs: options.registerTimeoutMs,
      writeTimeoutMs: options.writeTimeoutMs,
      token: settings.token,
      maxTimeout: options.maxTimeout,
      singleSlot: options.singleSlot,
      maxPending,
      // Room for every waiter plus the ones that have yet to register.
      maxConnections: maxWaiters + maxPending,
    });
    logger.info(`OAuth coordinator listening on ${formatAddress(bound.address)}`);
  } else {
    logger.info("OAuth relay disabled (OAUTH_ENABLED=false): no callback route, no coordinator");
  }
  const { hostname, port } = server.addr;
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
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
      await server.shutdown();
      await coordinator?.endAll(ERROR_CODES.SHUTDOWN, "The relay is shutting down");
      await coordinator?.finished;
      await bound?.close();
      if (bound) logger.info("OAuth coordinator stopped");
    })();

  return {
    url,
    coordinator: bound?.address ?? null,
    registry,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
