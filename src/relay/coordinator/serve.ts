/**
 * The coordinator's socket side: accepts client connections, cuts their
 * bytes into lines, and hands each client to the waiter lifecycle
 * (`../waiter.ts`), which decides everything else.
 *
 * @module
 */

import {
  decodeClientMessage,
  encode,
  ERROR_CODES,
  type ErrorCode,
  LineSplitter,
  MAX_LINE_BYTES,
  newNonce,
  proofMatches,
  proofOf,
  PROTOCOL_VERSION,
  ProtocolError,
  REGISTER_TIMEOUT_MS,
  type RegisterMessage,
  type RelayMessage,
  writeAll,
} from "../../protocol/mod.ts";
import { type Deadline, deadlines } from "../deadlines.ts";
import type { Logger } from "../log.ts";
import { ConnectionBudget } from "./budget.ts";
import type { Registry } from "../registry/registry.ts";
import { ClientWaiter, type CloseReason, type Credential, type WaiterLink, type WaiterPolicy } from "../waiter.ts";

/** Options of {@linkcode serveCoordinator}. */
export interface CoordinatorOptions {
  registry: Registry;
  logger: Logger;
  /** Seconds a registration lasts when the client names no timeout. */
  defaultTimeout: number;
  /** Milliseconds a connection may stay silent before it registers. */
  registerTimeoutMs?: number;
  /** When set, clients must present this token in their register message. */
  token?: string;
  /** Most open connections, registered or not; more are closed at once. */
  maxConnections?: number;
  /** Most connections that have not registered yet; the oldest makes room for a new one. Default 64. */
  maxPending?: number;
  /** Most connections from one address beyond loopback. Default 256. */
  maxPerPeer?: number;
  /** Longest registration in seconds. Default 3600. */
  maxTimeout?: number;
  /** Whether waiters without a state are accepted. Default `true`. */
  singleSlot?: boolean;
  /** Milliseconds a write to a client may take before the client counts as gone. Default 5000. */
  writeTimeoutMs?: number;
}

/** A running coordinator. */
export interface Coordinator {
  /** Resolves when the accept loop has ended. */
  readonly finished: Promise<void>;
  /** Ends every open connection with `code`, e.g. on shutdown; resolves once each is closed. */
  endAll(code: ErrorCode, message: string): Promise<void>;
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

/** Default {@linkcode CoordinatorOptions.maxPending}. */
export const DEFAULT_MAX_PENDING = 64;
/** Default {@linkcode CoordinatorOptions.maxPerPeer}. */
export const DEFAULT_MAX_PER_PEER = 256;

/** Serves the coordinator protocol on `listener` until the listener closes. */
export function serveCoordinator(listener: Deno.Listener, options: CoordinatorOptions): Coordinator {
  const { logger } = options;
  const budget = new ConnectionBudget<Connection>({
    maxConnections: options.maxConnections ?? Infinity,
    maxPending: options.maxPending ?? DEFAULT_MAX_PENDING,
    maxPerPeer: options.maxPerPeer ?? DEFAULT_MAX_PER_PEER,
  });
  const policy: WaiterPolicy = {
    registry: options.registry,
    logger,
    defaultTimeout: options.defaultTimeout,
    registerTimeoutMs: options.registerTimeoutMs ?? REGISTER_TIMEOUT_MS,
    requireAuth: options.token !== undefined,
    maxTimeout: options.maxTimeout,
    singleSlot: options.singleSlot,
  };
  const writeTimeoutMs = options.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
  const finished = (async () => {
    let failures = 0;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        failures = 0;
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) return;
        // Out of file descriptors (EMFILE) or an aborted handshake: the relay must not die of it.
        const wait = Math.min(1000, 100 * 2 ** failures++);
        logger.limited(
          "error",
          "failed accepts on the coordinator",
          `Coordinator cannot accept connections: ${error instanceof Error ? error.message : error}`,
        );
        await new Promise((resolve) => setTimeout(resolve, wait));
        continue;
      }
      const connection = new Connection(conn, budget, writeTimeoutMs);
      const admission = budget.admit(connection);
      if (!admission.admitted) {
        // Any local process can open connections; keep descriptors for the callbacks and real clients.
        logger.limited(
          "warn",
          "coordinator connections refused",
          `Coordinator refused a connection: ${admission.reason}`,
        );
        connection.shed(null);
        continue;
      }
      if (admission.evict) {
        logger.limited(
          "warn",
          "silent coordinator connections dropped",
          "Coordinator dropped its oldest connection that had not registered, to make room",
        );
        admission.evict.shed({
          v: PROTOCOL_VERSION,
          type: "error",
          code: ERROR_CODES.BUSY,
          message: "The relay has too many connections that have not registered; try again",
        });
      }
      connection.serve(policy, options.token);
    }
  })();
  return {
    finished,
    async endAll(code, message) {
      await Promise.all(budget.all().map((connection) => connection.waiter?.end(code, message)));
    },
  };
}

/** One client connection: framing, and the socket end of a {@linkcode WaiterLink}. */
class Connection implements WaiterLink {
  waiter: ClientWaiter | undefined;
  readonly peer: string;
  readonly host: string | null;
  #closed = false;
  #linger: Deadline | undefined;
  readonly #done = Promise.withResolvers<void>();
  readonly #conn: Deno.Conn;
  readonly #budget: ConnectionBudget<Connection>;
  readonly #writeTimeoutMs: number;

  constructor(conn: Deno.Conn, budget: ConnectionBudget<Connection>, writeTimeoutMs: number) {
    this.#conn = conn;
    this.#budget = budget;
    this.#writeTimeoutMs = writeTimeoutMs;
    const address = conn.remoteAddr;
    this.host = address.transport === "tcp" ? address.hostname : null;
    this.peer = address.transport === "tcp" ? `${address.hostname}:${address.port}` : "the Unix socket";
  }

  /** Drops the connection at once, after one best-effort error line (a silent peer has nothing unread). */
  shed(message: RelayMessage | null): void {
    if (message) {
      this.#conn.write(encode(message)).catch(() => {}).finally(() => this.#closeNow());
    } else {
      this.#closeNow();
    }
  }

  async serve(policy: WaiterPolicy, token: string | undefined): Promise<void> {
    const waiter = this.waiter = new ClientWaiter(this, policy);
    const splitter = new LineSplitter();
    let buffer = new Uint8Array(READ_BUFFER_BYTES);
    /** The nonces of a `hello` and our `challenge`, once exchanged. */
    let nonces: { client: string; relay: string } | undefined;
    let heard = false;
    let drained = 0;
    try {
      for (;;) {
        if (waiter.registered && buffer.length > WAITING_BUFFER_BYTES) buffer = new Uint8Array(WAITING_BUFFER_BYTES);
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        if (waiter.done) {
          // Ended: discard what the client still sends (bounded) so it can read our reply.
          drained += n;
          if (drained > MAX_LINE_BYTES) break;
          continue;
        }
        try {
          for (const line of splitter.push(buffer.subarray(0, n))) {
            // Once refused or ended, later lines of the same packet are ignored, not registered.
            if (waiter.done) break;
            if (heard) throw new ProtocolError("Already registered: one register message per connection");
            const message = decodeClientMessage(line);
            if (message.type === "hello") {
              if (nonces) throw new ProtocolError("Only one hello per connection");
              nonces = { client: message.nonce, relay: newNonce() };
              this.#challenge(nonces, token);
              continue;
            }
            heard = true;
            this.#budget.heard(this);
            this.#register(waiter, message, nonces, token);
          }
          // A registered client has nothing more to say; bytes it sends would only pile up.
          if (heard && splitter.pending > 0) throw new ProtocolError("Nothing may follow the register message");
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          policy.logger.debug(`Coordinator refused a message: ${error.message}`);
          waiter.end(error.code, error.message);
        }
      }
    } catch (error) {
      if (!waiter.done) {
        policy.logger.debug(`Coordinator connection failed: ${error instanceof Error ? error.message : error}`);
      }
    } finally {
      // A client that disconnects or dies is forgotten at once.
      await waiter.gone();
      this.#closeNow();
    }
  }

  /** Answers a `hello`: our nonce, and our proof of the token over both nonces when there is one. */
  async #challenge(nonces: { client: string; relay: string }, token: string | undefined): Promise<void> {
    const proof = token === undefined ? undefined : await proofOf(token, "relay", nonces.client, nonces.relay);
    await this.send({ v: PROTOCOL_VERSION, type: "challenge", nonce: nonces.relay, proof });
  }

  /** Checks the register message's proof (the token never travels) and hands the client to its waiter. */
  async #register(
    waiter: ClientWaiter,
    message: RegisterMessage,
    nonces: { client: string; relay: string } | undefined,
    token: string | undefined,
  ): Promise<void> {
    let credential: Credential = "none";
    if (token !== undefined) {
      if (!nonces || message.proof === undefined) credential = "missing";
      else {
        const expected = await proofOf(token, "client", nonces.client, nonces.relay);
        credential = proofMatches(expected, message.proof) ? "valid" : "wrong";
      }
    }
    await waiter.register(message, credential);
  }

  async send(message: RelayMessage): Promise<boolean> {
    // A client that stops reading must not hold a callback request (or shutdown) forever.
    const stuck = deadlines.after(this.#writeTimeoutMs, () => this.#closeNow());
    try {
      const bytes = encode(message);
      // One write takes a whole message almost always; loop only when it did not.
      const written = await this.#conn.write(bytes);
      if (written < bytes.length) await writeAll(this.#conn, bytes.subarray(written));
      return true;
    } catch {
      return false;
    } finally {
      deadlines.cancel(stuck);
    }
  }

  async close(reason: CloseReason): Promise<void> {
    if (reason !== "gone" && !this.#closed) {
      // Half-close and let the client hang up after reading the reply: closing
      // with its bytes unread would reset the connection before it sees why.
      // After a callback too: the client hangs up at once, and the pending read
      // then ends quietly, where closing first would cancel it (an error object
      // built and thrown for every delivery; 49 against 56 µs of relay CPU per
      // delivery, in three and two runs of `deno task bench --modes unix`).
      try {
        await this.#conn.closeWrite();
      } catch { /* already gone */ }
      this.#linger ??= deadlines.after(LINGER_MS, () => this.#closeNow());
    } else {
      this.#closeNow();
    }
    return this.#done.promise;
  }

  #closeNow(): void {
    deadlines.cancel(this.#linger);
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.release(this);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#done.resolve();
  }
}
