/**
 * The HTTP server of the relay: an accept loop of our own that decides which
 * connections to hold, in front of Deno's own HTTP engine.
 *
 * Why not `Deno.serve`: its accept loop ends the server on the first EMFILE
 * (`Uncaught (in promise) Http: Error: Too many open files`, and the process
 * exits), and it has no connection cap, no header timeout and no idle
 * timeout. Why not `node:http`: after one EMFILE its listener stops accepting
 * for good, and it serves at 40 % of the speed. Here `Deno.listen` accepts,
 * this module admits, sheds and times out connections, and each admitted
 * connection is handed to `serveHttpOnConnection`, the per-connection entry
 * point `Deno.serve` itself is built on, so requests are parsed and answered
 * exactly as before, at the same speed. That entry point is internal to Deno:
 * {@linkcode serveHttp} checks for it at start and refuses with one line when
 * it is missing; Deno is pinned (2.9.6) and `tests/flood_test.ts` exercises
 * every path on an upgrade. docs/reliability.md has the measurements.
 *
 * @module
 */

import { nextTurn } from "../fair_accept.ts";
import type { Logger } from "../log.ts";

/** Where the HTTP side listens. */
export interface HttpListenOptions {
  /** Default `127.0.0.1`. */
  hostname?: string;
  /** 0 picks a free port. Default 8000. */
  port?: number;
  /** PEM certificate (chain) and key: serve HTTPS. */
  tls?: { cert: string; key: string };
}

/** What a {@linkcode serveHttp} handler is given: a request and where it came from. */
export type HttpHandler = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response>;

/** Options of {@linkcode serveHttp}. */
export interface HttpServeOptions extends HttpListenOptions {
  /** Answers each request. */
  handler: HttpHandler;
  /** Answers a request whose handler threw. */
  onError: (error: unknown) => Response | Promise<Response>;
  /** The answer to a slow request cut off to make room, or one the handler never finished (503). */
  busyResponse: () => Response;
  /** Where shedding and time-outs are told, rate-limited (`Logger.limited`). */
  logger: Logger;
  /** Most connections open at once, closing ones included (each holds a file descriptor). */
  maxConnections: number;
  /** Milliseconds a new connection may take to send a complete request head. Default 5000. */
  headerTimeoutMs?: number;
  /** Milliseconds a kept-alive connection may sit idle between requests. Default 10,000. */
  idleTimeoutMs?: number;
  /** Milliseconds after which a request the handler has not answered gets `busyResponse`. Default 20,000. */
  requestTimeoutMs?: number;
  /** At the cap with nothing idle, a request in flight this long makes room for a new connection. Default 1000. */
  busyAfterMs?: number;
}

/** Counters of a {@linkcode HttpServer}, since it started. */
export interface HttpStats {
  /** Connections open now, closing ones included. */
  open: number;
  /** Connections being closed now (they still hold their descriptor). */
  closing: number;
  /** Requests in flight now. */
  inFlight: number;
  /** The cap now: lower than `maxConnections` for a while after an accept failed for lack of descriptors. */
  cap: number;
  /** New connections closed at once: the cap was reached and nothing could make room. */
  shed: number;
  /** Connections with nothing in flight closed to make room for a new one. */
  evicted: number;
  /** Requests in flight answered `busyResponse` to make room for a new connection. */
  evictedBusy: number;
  /** Connections closed for sending no complete request head in time. */
  headerTimeouts: number;
  /** Kept-alive connections closed after sitting idle. */
  idleTimeouts: number;
  /** Requests answered `busyResponse` after `requestTimeoutMs`. */
  requestTimeouts: number;
  /** Accepts that failed (EMFILE, ECONNABORTED, …) and were retried. */
  acceptErrors: number;
}

/** A running {@linkcode serveHttp}. */
export interface HttpServer {
  /** Where it listens (the port, when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** The cap the server was started with. */
  readonly maxConnections: number;
  /** Live counters. */
  stats(): HttpStats;
  /**
   * Stops accepting and shuts every connection down gracefully: idle ones
   * close, requests in flight are answered (their unread bodies cut off, as
   * `Deno.serve` does). Connections still open `lingerMs` later are closed.
   */
  shutdown(lingerMs?: number): Promise<void>;
}

/** How the accept loop is told the listener went away. */
const LISTENER_CLOSED = [Deno.errors.BadResource, Deno.errors.Interrupted];
/** A request in flight younger than this is never cut off to make room. */
const MIN_BUSY_MS = 50;
/** Milliseconds an early-answered connection has to close by itself before it is cut. */
const DOOMED_GRACE_MS = 1000;
/** Milliseconds without a failed accept before a lowered cap goes up again, a step at a time. */
const CAP_RECOVERY_MS = 5000;
const BUSY_HEADERS = { connection: "close" };

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: HttpHandler,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: (scheme: string) => void,
) => { finished: Promise<void>; shutdown(): Promise<void> };

/** Deno's per-connection HTTP server, or a one-line error naming what is missing. */
function serveOnConnection(): ServeOnConnection {
  const internal = (Deno as unknown as Record<symbol, Record<string, unknown> | undefined>)[
    (Deno as unknown as { internal: symbol }).internal
  ];
  const serve = internal?.serveHttpOnConnection;
  if (typeof serve !== "function") {
    throw new Error(
      `Deno ${Deno.version.deno} lacks the internal serveHttpOnConnection the relay's HTTP server is built on; ` +
        "run the Deno version this relay is tested with (2.9.6)",
    );
  }
  return serve as ServeOnConnection;
}

/**
 * A stand-in for the AbortSignal `serveHttpOnConnection` takes. Aborting it
 * cancels the connection at once (not gracefully), which is what eviction
 * and timeouts need, but a real AbortSignal would run the cancel from an
 * event listener: on a connection that closed a moment earlier the cancel
 * throws BadResource there, an uncaught exception that ends the process.
 * This one keeps the listener and calls it inside `try`.
 */
function cancelHandle(): { signal: AbortSignal; cancel(): boolean } {
  let onAbort: (() => void) | undefined;
  const signal = {
    aborted: false,
    addEventListener(type: string, listener: () => void) {
      if (type === "abort") onAbort = listener;
    },
    removeEventListener() {},
  } as unknown as AbortSignal;
  return {
    signal,
    cancel() {
      const listener = onAbort;
      onAbort = undefined;
      if (!listener) return false;
      try {
        listener();
      } catch { /* already closed */ }
      return true;
    },
  };
}

/** Responses whose body is a long-lived stream, and when each ends. */
const STREAMING = new WeakMap<Response, Promise<void>>();

/**
 * Marks `response` as a long-lived stream: its connection counts as busy
 * until `ended` settles, so neither the idle timeout nor the eviction of
 * slow requests cuts it.
 *
 * @param response The streaming response.
 * @param ended Settles when the stream has ended.
 * @returns `response`.
 */
export function streamingResponse(response: Response, ended: Promise<void>): Response {
  STREAMING.set(response, ended);
  return response;
}

/** Opens the HTTP listener, with TLS when a certificate is given (HTTP/2 comes with it by ALPN). */
export function listenHttp(options: HttpListenOptions): Deno.Listener<Deno.Conn, Deno.NetAddr> {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 8000;
  if (options.tls) {
    return Deno.listenTls({
      hostname,
      port,
      cert: options.tls.cert,
      key: options.tls.key,
      alpnProtocols: ["h2", "http/1.1"],
    });
  }
  return Deno.listen({ hostname, port, transport: "tcp" });
}

type Phase = "head" | "busy" | "idle" | "closing";

/** One admitted connection. */
interface Connection {
  phase: Phase;
  /** Requests in flight (more than one only over HTTP/2). */
  inFlight: number;
  /** When the connection entered "head" or "idle", or was answered early (performance.now()). */
  since: number;
  /** Answered early with `connection: close`: cut if it has not closed by itself soon. */
  doomed: boolean;
  cancel(): boolean;
  graceful(): Promise<void>;
  finished: Promise<void>;
}

/** One request in flight. */
interface Pending {
  connection: Connection;
  started: number;
  /** Answers the request now; the handler's own answer, later, is dropped. */
  answer(response: Response): void;
}

/**
 * Serves `handler` over HTTP/1.1 (and HTTP/2 with prior knowledge) with a
 * connection cap, timeouts and shedding, surviving any flood.
 *
 * Near `maxConnections` each new connection makes room by closing another:
 * an idle kept-alive connection or a silent one first, a slow request (503)
 * next, the oldest connection still sending its request head last. Only when
 * closed connections have not yet given their descriptors back is the new
 * one closed at once. An accept that fails (EMFILE: descriptors used
 * elsewhere in the process) lowers the cap for a while.
 *
 * @throws {Error} When Deno lacks `serveHttpOnConnection`.
 * @throws {Deno.errors.AddrInUse} When the port is taken.
 */
export function serveHttp(options: HttpServeOptions): HttpServer {
  const serveOn = serveOnConnection();
  const { logger, maxConnections } = options;
  const headerTimeoutMs = options.headerTimeoutMs ?? 5000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 10_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 20_000;
  const busyAfterMs = options.busyAfterMs ?? 1000;
  // Room kept free for connections being closed: they hold their descriptor until they are gone.
  const slack = Math.max(2, Math.floor(maxConnections / 8));
  const floor = Math.max(4, slack);
  let cap = maxConnections;
  let lastAcceptError = -Infinity;

  const listener = listenHttp(options);
  const connections = new Set<Connection>();
  /** Connections with nothing in flight, oldest first (a Set keeps insertion order). */
  const evictable = new Set<Connection>();
  /** Requests in flight, oldest first. */
  const pending = new Set<Pending>();
  const totals = {
    shed: 0,
    evicted: 0,
    evictedBusy: 0,
    headerTimeouts: 0,
    idleTimeouts: 0,
    requestTimeouts: 0,
    acceptErrors: 0,
  };
  let stopping = false;
  /** Connections in `connections` that are being closed. */
  let closing = 0;

  const shedLine = (what: string) =>
    logger.limited("warn", "HTTP connections shed", `HTTP is at its cap of ${cap} connections: ${what}`);

  const close = (connection: Connection) => {
    if (connection.phase === "closing") return;
    connection.phase = "closing";
    closing++;
    evictable.delete(connection);
    connection.cancel();
  };

  /** Answers `request` now with `response` and lets its connection close; it is cut if it does not. */
  const answerEarly = (request: Pending, response: Response) => {
    pending.delete(request);
    request.connection.doomed = true;
    request.connection.since = performance.now();
    request.answer(response);
  };

  /**
   * Makes room for one connection, cheapest first: an idle kept-alive
   * connection, or one that has sent no request head for `busyAfterMs` (a
   * real client sends its head at once); failing those, a request in flight
   * for `busyAfterMs` (a dribbled body), or for `MIN_BUSY_MS` when requests
   * in flight hold half the room (dribbled bodies arriving faster than they
   * age would otherwise take every place); failing that, the oldest
   * connection still waiting for its head, however young.
   */
  const evictOne = (): boolean => {
    const now = performance.now();
    for (const connection of evictable) {
      if (connection.phase === "idle" || now - connection.since >= busyAfterMs) {
        evict(connection, "closed its oldest connection with nothing in flight to make room");
        return true;
      }
    }
    const oldest = pending.values().next().value;
    const age = oldest ? now - oldest.started : 0;
    if (oldest && (age >= busyAfterMs || (pending.size * 2 >= cap - slack && age >= MIN_BUSY_MS))) {
      totals.evictedBusy++;
      shedLine(`answered 503 to its oldest request (${Math.round(now - oldest.started)} ms in flight) to make room`);
      answerEarly(oldest, withHeaders(options.busyResponse(), BUSY_HEADERS));
      return true;
    }
    const oldestHead = evictable.values().next().value;
    if (oldestHead) evict(oldestHead, "closed its oldest connection still waiting for a request head to make room");
    return oldestHead !== undefined;
  };
  const evict = (connection: Connection, what: string) => {
    totals.evicted++;
    shedLine(what);
    close(connection);
  };

  // One coarse sweeper rather than a timer per connection and per request.
  const tick = Math.max(50, Math.min(1000, Math.floor(Math.min(headerTimeoutMs, idleTimeoutMs) / 4)));
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const connection of evictable) {
      if (connection.phase === "head" && now - connection.since >= headerTimeoutMs) {
        totals.headerTimeouts++;
        logger.limited(
          "info",
          "HTTP connections without a request head in time",
          `HTTP closed a connection that sent no complete request head within ${headerTimeoutMs / 1000} s`,
        );
        close(connection);
      } else if (connection.phase === "idle" && now - connection.since >= idleTimeoutMs) {
        totals.idleTimeouts++;
        close(connection);
      }
    }
    for (const request of pending) {
      if (now - request.started < requestTimeoutMs) break; // oldest first
      totals.requestTimeouts++;
      logger.limited(
        "warn",
        "HTTP requests unanswered in time",
        `HTTP answered 503 to a request still unanswered after ${requestTimeoutMs / 1000} s`,
      );
      answerEarly(request, withHeaders(options.busyResponse(), BUSY_HEADERS));
    }
    for (const connection of connections) {
      if (connection.doomed && connection.phase !== "closing" && now - connection.since >= DOOMED_GRACE_MS) {
        close(connection);
      }
    }
    if (cap < maxConnections && now - lastAcceptError >= CAP_RECOVERY_MS) {
      cap = Math.min(maxConnections, cap + slack);
      lastAcceptError = now - CAP_RECOVERY_MS / 2; // the next step comes a little later
    }
  }, tick);
  Deno.unrefTimer(sweeper);

  const admit = (conn: Deno.Conn) => {
    // Small writes (an event, a page) go out at once: Nagle's algorithm would hold them for an ACK, ~40 ms.
    try {
      (conn as Deno.Conn & { setNoDelay?(noDelay?: boolean): void }).setNoDelay?.(true);
    } catch { /* not a TCP connection, or already gone */ }
    const handle = cancelHandle();
    const connection: Connection = {
      phase: "head",
      inFlight: 0,
      since: performance.now(),
      doomed: false,
      cancel: handle.cancel,
      graceful: () => Promise.resolve(),
      finished: Promise.resolve(),
    };
    const handler: HttpHandler = (request, info) => {
      // A complete request head has arrived.
      if (connection.phase === "closing") return Promise.resolve(withHeaders(options.busyResponse(), BUSY_HEADERS));
      connection.inFlight++;
      connection.phase = "busy";
      evictable.delete(connection);
      const { promise, resolve } = Promise.withResolvers<Response>();
      let settled = false;
      // The first answer (the handler's, or an early one) wins and settles the request's place in the books.
      const settle = (response: Response | Promise<Response>) => {
        if (settled) {
          // Answered early (503 to make room): a late response is never sent, so end its stream here.
          if (response instanceof Response) response.body?.cancel().catch(() => {});
          return;
        }
        settled = true;
        pending.delete(entry);
        const done = () => {
          if (--connection.inFlight === 0 && connection.phase === "busy") {
            connection.phase = "idle";
            connection.since = performance.now();
            evictable.add(connection); // now the newest
          }
        };
        // A stream (a remote waiter's events) keeps its connection busy until it ends: never idle, never evicted.
        const ended = response instanceof Response ? STREAMING.get(response) : undefined;
        if (ended) ended.finally(done);
        else done();
        resolve(response);
      };
      const entry: Pending = { connection, started: performance.now(), answer: settle };
      pending.add(entry);
      let work: Promise<Response>;
      try {
        work = options.handler(request, info);
      } catch (error) {
        work = Promise.reject(error);
      }
      // Settled here rather than by Deno so that an early answer can win; onError is Deno's 500 page.
      work.then(settle, (error) => settle(new Promise<Response>((ok) => ok(options.onError(error)))));
      return promise;
    };
    let server: { finished: Promise<void>; shutdown(): Promise<void> };
    try {
      server = serveOn(conn, handle.signal, handler, options.onError, () => {});
    } catch (error) {
      logger.limited(
        "error",
        "failed HTTP connections",
        `HTTP could not serve a connection: ${error instanceof Error ? error.message : error}`,
      );
      try {
        conn.close();
      } catch { /* taken over or gone */ }
      return;
    }
    connection.graceful = () => server.shutdown().catch(() => {});
    connection.finished = server.finished.catch(() => {}).finally(() => {
      if (connection.phase === "closing") closing--;
      connection.phase = "closing";
      connections.delete(connection);
      evictable.delete(connection);
    });
    connections.add(connection);
    evictable.add(connection);
  };

  const accepting = (async () => {
    let failures = 0;
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        failures = 0;
      } catch (error) {
        if (stopping || LISTENER_CLOSED.some((type) => error instanceof type)) return;
        // Out of descriptors (EMFILE, ENFILE) or an aborted handshake: back off, and make room.
        totals.acceptErrors++;
        lastAcceptError = performance.now();
        cap = Math.max(floor, Math.min(cap, connections.size - slack));
        logger.limited(
          "error",
          "failed accepts on HTTP",
          `HTTP cannot accept connections: ${
            error instanceof Error ? error.message : error
          }; holding at most ${cap} connections for a while`,
        );
        evictOne();
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 10 * 2 ** failures++)));
        continue;
      }
      // With connections queued, accept() resolves at once: let the rest of the relay run between two.
      await nextTurn();
      if (stopping) {
        conn.close();
        return;
      }
      // A connection being closed holds its descriptor for a few more turns: the cap counts it, but
      // making room looks at the live ones only, or a storm would close more than it lets in.
      if (connections.size - closing >= cap - slack) evictOne();
      if (connections.size >= cap) {
        totals.shed++;
        shedLine("closed a new connection at once");
        try {
          conn.close();
        } catch { /* gone */ }
        continue;
      }
      admit(conn);
    }
  })();

  let shuttingDown: Promise<void> | undefined;
  return {
    addr: listener.addr,
    maxConnections,
    stats: () => ({ open: connections.size, closing, inFlight: pending.size, cap, ...totals }),
    shutdown: (lingerMs = 1000) =>
      shuttingDown ??= (async () => {
        stopping = true;
        try {
          listener.close();
        } catch { /* closed */ }
        await accepting;
        const all = [...connections];
        for (const connection of all) connection.graceful();
        // A request whose body the client stops sending keeps its connection open after the answer.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const linger = new Promise((resolve) => timer = setTimeout(resolve, lingerMs));
        await Promise.race([Promise.all(all.map((connection) => connection.finished)), linger]);
        clearTimeout(timer);
        for (const connection of connections) close(connection);
        await Promise.all([...connections].map((connection) => connection.finished));
        clearInterval(sweeper);
      })(),
  };
}

/** `response` with `headers` set (a constructed or cloned Response has mutable headers). */
function withHeaders(response: Response, headers: Record<string, string>): Response {
  for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
  return response;
}
