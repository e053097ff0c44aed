/**
 * The waiter lifecycle, the same for every kind of connection: authenticate,
 * register, expire, deliver, end. A transport (the coordinator's socket
 * today) only frames messages and hands each client's register message here
 * through a {@linkcode WaiterLink}.
 *
 * @module
 */

import {
  DEFAULT_MAX_TIMEOUT_SECONDS,
  ERROR_CODES,
  type ErrorCode,
  type OAuthCallbackResult,
  PROTOCOL_VERSION,
  type RegisterMessage,
  type RelayMessage,
} from "../protocol/mod.ts";
import { type Deadline, deadlines } from "./deadlines.ts";
import { type Logger, quote, redactCode } from "./log.ts";
import { RegistrationError, type Registry, type RemoteTicket, type Waiter } from "./registry/registry.ts";

/** How a link is closed: after the callback, after an error line the client should read, or because it is gone. */
export type CloseReason = "delivered" | "ended" | "gone";

/** The connection a waiter talks through, as a transport provides it. */
export interface WaiterLink {
  /** Who is at the other end, for log lines. */
  readonly peer: string;
  /** Sends one message. Resolves `false` when the client is gone or stopped reading. */
  send(message: RelayMessage): Promise<boolean>;
  /** Closes the link; resolves once it is closed. */
  close(reason: CloseReason): Promise<void>;
  /** Set for a remote (HTTPS) client: what a registry keeps so that it can resume. */
  readonly remote?: RemoteTicket;
  /** Told which refusal ended the registration, before the error message is sent. */
  refused?(error: RegistrationError): void;
}

/** What became of a remote client's request to take its registration back ({@linkcode ClientWaiter.resume}). */
export type ResumeResult = "resumed" | "absent" | "refused" | "ended";

/** What every waiter obeys, whatever its transport. */
export interface WaiterPolicy {
  registry: Registry;
  logger: Logger;
  /** Seconds a registration lasts when the client names no timeout. */
  defaultTimeout: number;
  /** Longest registration in seconds; a longer request is clamped and the client told. Default 3600. */
  maxTimeout?: number;
  /** Whether waiters without a state are accepted. Default `true`. */
  singleSlot?: boolean;
  /** Milliseconds a client may take to register after connecting. */
  registerTimeoutMs: number;
  /** Whether clients must prove they hold a credential (the coordinator token). */
  requireAuth?: boolean;
}

/**
 * What a transport found out about the client's credential: `none` when the
 * relay asks for none, `valid`, or why not.
 */
export type Credential = "none" | "valid" | "missing" | "wrong";

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

type Phase = "connected" | "registering" | "registered" | "done";

/** One client, from connection to its one final message. */
export class ClientWaiter implements Waiter {
  #state: string | null = null;
  #phase: Phase = "connected";
  #expiresAt: number | undefined;
  /** Settles once `registered` is written (or the wait ended): a callback never goes out before it. */
  readonly #announced = Promise.withResolvers<void>();
  #wasAnnounced = false;
  #registerDeadline: Deadline | undefined;
  #expiry: Deadline | undefined;
  #closed: Promise<void> | undefined;
  readonly #link: WaiterLink;
  readonly #policy: WaiterPolicy;

  /**
   * Starts the clock: a client that does not register within
   * `policy.registerTimeoutMs` is ended as idle.
   *
   * @param link The connection.
   * @param policy The rules.
   */
  constructor(link: WaiterLink, policy: WaiterPolicy) {
    this.#link = link;
    this.#policy = policy;
    this.#registerDeadline = deadlines.after(
      policy.registerTimeoutMs,
      () => this.end(ERROR_CODES.IDLE, "No registration received in time; send a register message first"),
    );
  }

  /** The state it waits for; `null` for the single slot (or before registering). */
  get state(): string | null {
    return this.#state;
  }

  /** Whether the registration is in place (and not yet ended). */
  get registered(): boolean {
    return this.#phase === "registered";
  }

  /** Whether the final message went out (or the client is gone). */
  get done(): boolean {
    return this.#phase === "done";
  }

  /** When the registration ends (epoch milliseconds), once known. */
  get expiresAt(): number | undefined {
    return this.#expiresAt;
  }

  /** Set for a remote (HTTPS) client. */
  get remote(): RemoteTicket | undefined {
    return this.#link.remote;
  }

  /**
   * Authenticates and registers the client; ends it with the reason when refused.
   *
   * @param message The client's register message.
   * @param credential What the transport found about the client's proof of the token.
   */
  async register(message: RegisterMessage, credential: Credential = "none"): Promise<void> {
    if (this.#phase !== "connected") return;
    this.#phase = "registering";
    const { registry, logger } = this.#policy;
    this.#state = message.state ?? null;
    if (this.#policy.requireAuth && credential !== "valid") {
      logger.limited(
        "warn",
        "coordinator clients refused for their token",
        `Refused coordinator client from ${this.#link.peer}: ${credential === "wrong" ? "wrong" : "no"} token`,
      );
      await this.end(
        ERROR_CODES.UNAUTHORIZED,
        "The relay requires a valid coordinator token (OAUTH_COORDINATOR_TOKEN)",
      );
      return;
    }
    if (this.#state === null && this.#policy.singleSlot === false) {
      await this.end(
        ERROR_CODES.SINGLE_SLOT_DISABLED,
        "This relay does not accept waiters without a state (OAUTH_SINGLE_SLOT=false); send the authorization's state",
      );
      return;
    }
    // A stranger must not hold a slot for weeks: every registration is capped, and the client told.
    const maxTimeout = this.#policy.maxTimeout ?? DEFAULT_MAX_TIMEOUT_SECONDS;
    const seconds = Math.min(message.timeout ?? this.#policy.defaultTimeout, maxTimeout);
    // Known before registering: a shared registry keeps the registration no longer.
    this.#expiresAt = Date.now() + seconds * 1000;
    try {
      await registry.register(this);
    } catch (error) {
      await this.#refused(error);
      return;
    }
    // The client may have gone, or been superseded or delivered to, while the registry answered.
    if (this.#phase !== "registering") {
      if (this.#phase === "done") await registry.release(this);
      return;
    }
    if (logger.infoEnabled) logger.info(`Client registered for state: ${quote(this.#state)} (${this.#link.peer})`);
    await this.#registered(seconds);
  }

  /**
   * Takes back a remote registration with its resume secret (the link's
   * ticket), here or from another relay sharing the registry. `absent`: no
   * registration is held for the state, and this waiter is left unused, to
   * be discarded; `refused`: likewise, because another client holds it.
   *
   * @param message The client's request, as a register message.
   * @param kept What to do with a callback kept while the client was away: deliver it now, or drop it (a cancel).
   */
  async resume(message: RegisterMessage, kept: "deliver" | "drop" = "deliver"): Promise<ResumeResult> {
    const remote = this.#link.remote;
    if (this.#phase !== "connected" || !remote || message.state == null) return "refused";
    this.#phase = "registering";
    this.#state = message.state;
    let outcome;
    try {
      outcome = await this.#policy.registry.resume(this as this & { remote: RemoteTicket });
    } catch (error) {
      await this.#refused(error);
      return "ended";
    }
    if (outcome.kind === "absent" || outcome.kind === "refused") {
      this.#stop();
      return outcome.kind;
    }
    this.#expiresAt = outcome.expiresAt;
    const seconds = Math.max(0.001, (outcome.expiresAt - Date.now()) / 1000);
    if (this.#phase !== "registering") {
      if (this.#phase === "done" && outcome.kind === "resumed") await this.#policy.registry.release(this);
      return "ended";
    }
    await this.#registered(seconds);
    // The callback came while the client was away: it is handed over at once (or dropped with a cancel).
    if (outcome.kind === "kept" && kept === "deliver") await this.deliver(outcome.result);
    return "resumed";
  }

  async #refused(error: unknown): Promise<void> {
    const { logger } = this.#policy;
    if (error instanceof RegistrationError) {
      logger.limited(
        "info",
        "refused registrations",
        `Refused client for state ${quote(this.#state)}: ${error.message}`,
      );
      this.#link.refused?.(error);
      await this.end(error.code, error.message);
    } else {
      logger.error(`Cannot register client for state ${quote(this.#state)}: ${describe(error)}`);
      await this.end(ERROR_CODES.UNAVAILABLE, "The relay cannot take registrations right now; try again shortly");
    }
  }

  async #registered(seconds: number): Promise<void> {
    this.#phase = "registered";
    deadlines.cancel(this.#registerDeadline);
    // Every waiter is held for minutes: keep nothing it no longer needs.
    this.#registerDeadline = undefined;
    this.#expiry = deadlines.after(seconds * 1000, () => this.#expire());
    await this.#link.send({ v: PROTOCOL_VERSION, type: "registered", state: this.#state, timeout: seconds });
    this.#wasAnnounced = true;
    this.#announced.resolve();
  }

  #expire(): void {
    if (this.#phase === "done") return;
    this.#policy.logger.info(`OAuth callback timeout for state: ${quote(this.#state)}`);
    this.end(ERROR_CODES.TIMEOUT, "No callback arrived before the timeout");
  }

  /** Writes the callback to the client and closes. Resolves `true` when it was written. */
  async deliver(result: OAuthCallbackResult): Promise<boolean> {
    // A shared registry may hand over a callback before its own answer to the registration got here.
    if (!this.#wasAnnounced && this.#phase !== "done" && this.#phase !== "connected") await this.#announced.promise;
    if (this.#phase === "done") return false;
    this.#stop();
    const delivered = await this.#link.send({ v: PROTOCOL_VERSION, type: "callback", result });
    const { logger } = this.#policy;
    if (delivered) {
      if (logger.infoEnabled) logger.info(`OAuth callback delivered to client for state: ${quote(this.#state)}`);
      if (logger.debugEnabled) logger.debug(`Delivered ${redactCode(result.code)} for state ${quote(this.#state)}`);
    }
    // Closing after the callback is immediate; the HTTP answer need not wait for it.
    this.#closed = this.#link.close(delivered ? "delivered" : "gone");
    return delivered;
  }

  /** Ends the wait without a callback, telling the client why; resolves once the link is closed. */
  async end(code: ErrorCode, message: string): Promise<void> {
    if (this.#phase === "done") return this.#closed;
    const wasRegistered = this.#phase === "registered";
    this.#stop();
    if (wasRegistered) await this.#policy.registry.release(this);
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#closed = promise;
    const sent = await this.#link.send({ v: PROTOCOL_VERSION, type: "error", code, message });
    await this.#link.close(sent ? "ended" : "gone");
    resolve();
  }

  /**
   * The registration moved to another waiter (its client resumed it
   * elsewhere): close the link without a word and without releasing it.
   */
  moved(): void {
    if (this.#phase === "done") return;
    this.#stop();
    this.#policy.logger.debug(`Registration for state ${quote(this.#state)} moved to where its client resumed`);
    this.#closed = this.#link.close("gone");
  }

  /** The client hung up (or its connection failed): forget it at once. */
  async gone(): Promise<void> {
    if (this.#phase === "done") return;
    const wasRegistered = this.#phase === "registered";
    this.#stop();
    if (wasRegistered) {
      this.#policy.logger.debug(`Client for state ${quote(this.#state)} disconnected before its callback`);
      await this.#policy.registry.release(this);
    }
    this.#closed = this.#link.close("gone");
    await this.#closed;
  }

  #stop(): void {
    this.#phase = "done";
    this.#wasAnnounced = true;
    this.#announced.resolve();
    deadlines.cancel(this.#registerDeadline);
    deadlines.cancel(this.#expiry);
  }
}
