/**
 * The registry seam: who waits for which state, and the one step that hands
 * a callback to exactly one of them. The HTTP side, the waiter lifecycle and
 * `/health` see only {@linkcode Registry}; the in-memory registry is the
 * default, and a registry shared by several relays (Redis, `redis.ts`)
 * implements the same interface and passes the same cases (`cases.ts`).
 *
 * @module
 */

import { ERROR_CODES, type ErrorCode, type OAuthCallbackResult } from "../../protocol/mod.ts";

/**
 * What a registry keeps of a remote (HTTPS) registration, so that its client
 * can take it back with its resume secret, at this relay or at another one
 * sharing the registry.
 */
export interface RemoteTicket {
  /** SHA-256 of the resume secret, in hex: the registry compares it and never holds the secret. */
  readonly resumeHash: string;
  /** Fingerprint of the client token, for the per-token cap. */
  readonly token: string;
}

/** A client waiting for one callback, as the registry sees it. */
export interface Waiter {
  /** The state it waits for; `null` for the single slot. */
  readonly state: string | null;
  /** When the registration ends (epoch milliseconds); a shared registry keeps it no longer. */
  readonly expiresAt?: number;
  /** Set for a remote (HTTPS) waiter, whose client may lose its stream and resume. */
  readonly remote?: RemoteTicket;
  /** Hands over the callback. Resolves `true` when it reached the client. Called at most once. */
  deliver(result: OAuthCallbackResult): Promise<boolean>;
  /** Ends the wait without a callback, telling the client why. */
  end(code: ErrorCode, message: string): Promise<void>;
  /**
   * The registration moved to another waiter (its client resumed elsewhere):
   * forget it without a word and without releasing it.
   */
  moved?(): void;
}

/**
 * What became of a callback. `unavailable`: the registry could not be asked
 * (a shared store is unreachable); the person reloads in a moment.
 */
export type DeliveryOutcome = "delivered" | "no_waiter" | "already_delivered" | "unavailable";

/** What became of a request to take a remote registration back with its resume secret. */
export type ResumeOutcome =
  /** The registration is now `waiter`'s; `expiresAt` as it was registered. */
  | { kind: "resumed"; expiresAt: number }
  /** The callback already came and is kept for the owner: hand it over; nothing is registered. */
  | { kind: "kept"; expiresAt: number; result: OAuthCallbackResult }
  /** Nothing is held for the state (it expired, or the relay that held it is gone): register afresh. */
  | { kind: "absent" }
  /** Another client holds the state, or the secret is wrong: refuse, and disturb nobody. */
  | { kind: "refused" };

/** What the registry says about itself on `/health`. */
export interface RegistryStatus {
  /** Whether it takes registrations and claims callbacks now. */
  ok: boolean;
  /** Clients waiting (at every relay sharing the registry); `null` when it cannot count them now. */
  waiting: number | null;
  /** Why not `ok`: one line. */
  reason?: string;
  /** What a shared registry adds to `/health`: this relay's own count, the store's connection. */
  details?: Record<string, unknown>;
}

/**
 * Where waiters register and callbacks find them. Every operation is async,
 * so a store shared by several relays can implement it.
 */
export interface Registry {
  /**
   * Registers `waiter` for its state. A single-slot waiter (state `null`)
   * replaces the previous one, which is ended as superseded.
   *
   * @throws {RegistrationError} `state_taken` when another client waits for the state, `state_used`
   *   when the state was delivered recently, `too_many_waiters` when the registry is full,
   *   `unavailable` when a shared store cannot be reached.
   */
  register(waiter: Waiter): Promise<void>;
  /**
   * Gives `waiter` the remote registration of its state when `resumeHash`
   * matches the one it was registered with.
   *
   * @throws {RegistrationError} `unavailable` when a shared store cannot be reached.
   */
  resume(waiter: Waiter & { remote: RemoteTicket }): Promise<ResumeOutcome>;
  /** Removes `waiter` if it still holds its place (it ended, or its client went away). */
  release(waiter: Waiter): Promise<void>;
  /**
   * Claims `result.state` exactly once and hands `result` to the waiter that
   * holds it (RFC 9700 §4.2.4: a code is delivered once, however many
   * identical callbacks race for it).
   */
  claim(result: OAuthCallbackResult): Promise<DeliveryOutcome>;
  /** How many clients are waiting (at every relay sharing the registry). */
  count(): Promise<number>;
  /** The waiters this process holds, e.g. to tell them the relay stops. */
  local(): Waiter[];
  /** Whether it works now, and what `/health` shows of it. */
  status(): Promise<RegistryStatus>;
  /**
   * The relay stops: remote registrations are left for another relay to take
   * over (their clients resume there); others are released as they end.
   */
  retire(): Promise<void>;
  /** Lets go of every resource (connections, timers); last in a shutdown. */
  close(): Promise<void>;
}

/** Which limit refused a registration: the registry's, or the client token's. */
export type RegistrationLimit = "registry" | "token";

/** A registration the registry refuses; `code` is sent to the client. */
export class RegistrationError extends Error {
  /** Stable reason, e.g. `state_taken`. */
  readonly code: ErrorCode;
  /** For `too_many_waiters`: whether the registry or the client token is full (HTTP 503 or 429). */
  readonly limit: RegistrationLimit;
  /**
   * @param code Stable reason.
   * @param message One line for the client.
   * @param limit Which limit refused it (`too_many_waiters` only).
   */
  constructor(code: ErrorCode, message: string, limit: RegistrationLimit = "registry") {
    super(message);
    this.name = "RegistrationError";
    this.code = code;
    this.limit = limit;
  }
}

/** The refusals every registry gives, worded once. */
export const REFUSALS = {
  /** A replayed old callback must not find a new waiter for a used state (RFC 6749 §10.12). */
  stateUsed: (): RegistrationError =>
    new RegistrationError(
      ERROR_CODES.STATE_USED,
      "This state was already used for a completed authorization; start again with a fresh random state",
    ),
  /** First come keeps its place: a second registration must not steal a code. */
  stateTaken: (): RegistrationError =>
    new RegistrationError(ERROR_CODES.STATE_TAKEN, "Another client is already waiting for this state"),
  /** The registry holds as many waiters as it may. */
  full: (max: number): RegistrationError =>
    new RegistrationError(
      ERROR_CODES.TOO_MANY_WAITERS,
      `The relay already holds ${max} waiting clients; try again later`,
    ),
  /** One client token holds as many remote registrations as it may. */
  tokenFull: (max: number): RegistrationError =>
    new RegistrationError(
      ERROR_CODES.TOO_MANY_WAITERS,
      `This client token already holds ${max} waiting registrations; try again later`,
      "token",
    ),
  /** A shared store cannot be reached. */
  unavailable: (): RegistrationError =>
    new RegistrationError(
      ERROR_CODES.UNAVAILABLE,
      "The relay cannot take registrations right now (its shared registry is unreachable); try again shortly",
    ),
} as const;
