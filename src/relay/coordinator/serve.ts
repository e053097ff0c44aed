/**
 * The coordinator: accepts client connections, registers each as a waiter,
 * and writes the callback to it when the HTTP side routes one there.
 *
 * @module
 */

import {
  decodeClientMessage,
  encode,
  LineSplitter,
  MAX_LINE_BYTES,
  type OAuthCallbackResult,
  PROTOCOL_VERSION,
  ProtocolError,
  type RelayMessage,
} from "../../protocol/mod.ts";
import { RegistrationError, type Waiter, type WaiterRegistry } from "../registry/memory.ts";
import { type Logger, quote, redactCode } from "../log.ts";
import { createHash, timingSafeEqual } from "node:crypto";

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Compares tokens in constant time: hashing first makes the lengths equal too. */
function tokenMatches(expected: Uint8Array, presented: string | undefined): boolean {
  return presented !== undefined && timingSafeEqual(expected, digest(presented));
}

/** Options of {@linkcode serveCoordinator}. */
export interface CoordinatorOptions {
  registry: WaiterRegistry;
  logger: Logger;
  /** Seconds a registration lasts when the client names no timeout. */
  defaultTimeout: number;
  /** Milliseconds a connection may stay silent before it registers. */
  registerTimeoutMs?: number;
  /** When set, clients must present this token in their register message. */
  token?: string;
  /** Most open connections, registered or not; more are closed at once. */
  maxConnections?: number;
  /** Milliseconds a write to a client may take before the client counts as gone. Default 5000. */
  writeTimeoutMs?: number;
}

/** A running coordinator. */
export interface Coordinator {
  /** Resolves when the accept loop has ended. */
  readonly finished: Promise<void>;
  /** Ends every open connection with `code`, e.g. on shutdown; resolves once each is closed. */
  endAll(code: string, message: string): Promise<void>;
}

const READ_BUFFER_BYTES = 1024;
/**
 * Read buffer of a registered client, which sends nothing more: the pending
 * read only notices it hang up. Every waiter holds one, so it is small.
 */
const WAITING_BUFFER_BYTES = 64;
/** How long an ended connection waits for the client to hang up before closing it. */
const LINGER_MS = 1000;
/** How long a write to a client may take before the client counts as gone. */
const WRITE_TIMEOUT_MS = 5000;
// setTimeout takes a signed 32-bit delay; longer waits are capped (about 24 days).
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Serves the coordinator protocol on `listener` until the listener closes. */
export function serveCoordinator(listener: Deno.Listener, options: CoordinatorOptions): Coordinator {
  const connections = new Set<Connection>();
  const expectedToken = options.token === undefined ? undefined : digest(options.token);
  const { logger } = options;
  const maxConnections = options.maxConnections ?? Infinity;
  const finished = (async () => {
    let failures = 0;
    let refused = 0;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        failures = 0;
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) return;
        // Out of file descriptors (EMFILE) or an aborted handshake: the relay must not die of it.
        const wait = Math.min(1000, 100 * 2 ** failures++);
        logger.error(`Coordinator cannot accept connections: ${error instanceof Error ? error.message : error}`);
        await new Promise((resolve) => setTimeout(resolve, wait));
        continue;
      }
      if (connections.size >= maxConnections) {
        // Any local process can open connections; keep descriptors for the callbacks and real clients.
        if (refused++ % 1000 === 0) logger.warn(`Coordinator refused a connection: ${maxConnections} already open`);
        conn.close();
        continue;
      }
      const connection = new Connection(conn, options, connections, expectedToken);
      connections.add(connection);
      connection.serve();
    }
  })();
  return {
    finished,
    async endAll(code, message) {
      await Promise.all([...connections].map((connection) => connection.end(code, message)));
    },
  };
}

/** One client connection; after it registers, it is the registry's waiter. */
class Connection implements Waiter {
  state: string | null = null;
  #done = false;
  #registered = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #conn: Deno.Conn;
  readonly #options: CoordinatorOptions;
  readonly #connections: Set<Connection>;
  readonly #expectedToken: Uint8Array | undefined;
  readonly #closed = Promise.withResolvers<void>();
  /** Resolves when the connection is closed and forgotten. */
  readonly closed: Promise<void> = this.#closed.promise;

  constructor(
    conn: Deno.Conn,
    options: CoordinatorOptions,
    connections: Set<Connection>,
    expectedToken: Uint8Array | undefined,
  ) {
    this.#conn = conn;
    this.#options = options;
    this.#connections = connections;
    this.#expectedToken = expectedToken;
  }

  async serve(): Promise<void> {
    const { logger } = this.#options;
    this.#timer = setTimeout(
      () => this.end("idle", "No registration received in time; send a register message first"),
      this.#options.registerTimeoutMs ?? 10_000,
    );
    const splitter = new LineSplitter();
    let buffer = new Uint8Array(READ_BUFFER_BYTES);
    let drained = 0;
    try {
      for (;;) {
        if (this.#registered && buffer.length > WAITING_BUFFER_BYTES) buffer = new Uint8Array(WAITING_BUFFER_BYTES);
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        if (this.#done) {
          // Ended: discard what the client still sends (bounded) so it can read our reply.
          drained += n;
          if (drained > MAX_LINE_BYTES) break;
          continue;
        }
        try {
          for (const line of splitter.push(buffer.subarray(0, n))) this.#onLine(line);
          // A registered client has nothing more to say; bytes it sends would only pile up.
          if (this.#registered && splitter.pending > 0) {
            throw new ProtocolError("Nothing may follow the register message");
          }
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          logger.debug(`Coordinator refused a message: ${error.message}`);
          this.end(error.code, error.message);
        }
      }
    } catch (error) {
      if (!this.#done) {
        logger.debug(`Coordinator connection failed: ${error instanceof Error ? error.message : error}`);
      }
    } finally {
      // A client that disconnects or dies is forgotten at once.
      if (!this.#done && this.#registered) {
        logger.debug(`Client for state ${quote(this.state)} disconnected before its callback`);
      }
      this.#finish();
    }
  }

  #onLine(line: Uint8Array): void {
    // Once refused or ended, later lines of the same packet are ignored, not registered.
    if (this.#done) return;
    if (this.#registered) throw new ProtocolError("Already registered: one register message per connection");
    const message = decodeClientMessage(line);
    const { registry, logger, defaultTimeout } = this.#options;
    this.state = message.state ?? null;
    if (this.#expectedToken && !tokenMatches(this.#expectedToken, message.token)) {
      logger.warn(
        `Refused coordinator client from ${peer(this.#conn)}: ${message.token === undefined ? "no" : "wrong"} token`,
      );
      this.end("unauthorized", "The relay requires a valid coordinator token (OAUTH_COORDINATOR_TOKEN)");
      return;
    }
    try {
      registry.add(this);
    } catch (error) {
      if (!(error instanceof RegistrationError)) throw error;
      logger.info(`Refused client for state ${quote(this.state)}: ${error.message}`);
      this.end(error.code, error.message);
      return;
    }
    this.#registered = true;
    clearTimeout(this.#timer);
    const seconds = message.timeout ?? defaultTimeout;
    this.#timer = setTimeout(() => this.#expire(), Math.min(seconds * 1000, MAX_TIMER_MS));
    logger.info(`Client registered for state: ${quote(this.state)}`);
    this.#send({ v: PROTOCOL_VERSION, type: "registered", state: this.state });
  }

  #expire(): void {
    if (this.#done) return;
    this.#options.logger.info(`OAuth callback timeout for state: ${quote(this.state)}`);
    this.end("timeout", "No callback arrived before the timeout");
  }

  async deliver(result: OAuthCallbackResult): Promise<boolean> {
    if (this.#done) return false;
    this.#done = true;
    const delivered = await this.#send({ v: PROTOCOL_VERSION, type: "callback", result });
    const { logger } = this.#options;
    if (delivered) {
      logger.info(`OAuth callback delivered to client for state: ${quote(this.state)}`);
      if (logger.debugEnabled) logger.debug(`Delivered ${redactCode(result.code)} for state ${quote(this.state)}`);
    }
    this.#finish();
    return delivered;
  }

  async end(code: string, message: string): Promise<void> {
    if (this.#done) return this.closed;
    this.#done = true;
    if (this.#registered) this.#options.registry.remove(this);
    clearTimeout(this.#timer);
    if (await this.#send({ v: PROTOCOL_VERSION, type: "error", code, message })) {
      // Half-close and let the client hang up after reading the reply: closing
      // with its bytes unread would reset the connection before it sees why.
      try {
        await this.#conn.closeWrite();
      } catch { /* already gone */ }
      this.#timer = setTimeout(() => this.#finish(), LINGER_MS);
    } else {
      this.#finish();
    }
    return this.closed;
  }

  async #send(message: RelayMessage): Promise<boolean> {
    const bytes = encode(message);
    // A client that stops reading must not hold a callback request (or shutdown) forever.
    const stuck = setTimeout(() => this.#finish(), this.#options.writeTimeoutMs ?? WRITE_TIMEOUT_MS);
    try {
      for (let offset = 0; offset < bytes.length;) offset += await this.#conn.write(bytes.subarray(offset));
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(stuck);
    }
  }

  #finish(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    if (this.#registered) this.#options.registry.remove(this);
    if (!this.#connections.delete(this)) return;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#closed.resolve();
  }
}

function peer(conn: Deno.Conn): string {
  const address = conn.remoteAddr;
  return address.transport === "tcp" ? `${address.hostname}:${address.port}` : "the Unix socket";
}
