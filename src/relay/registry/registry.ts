/**
 * The registry seam: who waits for which state, and the one step that hands
 * a callback to exactly one of them. The HTTP side, the waiter lifecycle and
 * `/health` see only {@linkcode Registry}; the in-memory registry is the
 * default, and a registry shared by several relays implements the same
 * interface and passes the same cases (`cases.ts`).
 *
 * @module
 */

import type { ErrorCode, OAuthCallbackResult } from "../../protocol/mod.ts";

/** A client waiting for one callback, as the registry sees it. */
export interface Waiter {
  /** The state it waits for; `null` for the single slot. */
  readonly state: string | null;
  /** Hands over the callback. Resolves `true` when it reached the client. Called at most once. */
  deliver(result: OAuthCallbackResult): Promise<boolean>;
  /** Ends the wait without a callback, telling the client why. */
  end(code: ErrorCode, message: string): Promise<void>;
}

/** What became of a callback. */
export type DeliveryOutcome = "delivered" | "no_waiter" | "already_delivered";

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
   *   when the state was delivered recently, `too_many_waiters` when the registry is full.
   */
  register(waiter: Waiter): Promise<void>;
  /** Removes `waiter` if it still holds its place (it ended, or its client went away). */
  release(waiter: Waiter): Promise<void>;
  /**
   * Claims `result.state` exactly once and hands `result` to the waiter that
   * holds it (RFC 9700 §4.2.4: a code is delivered once, however many
   * identical callbacks race for it).
   */
  claim(result: OAuthCallbackResult): Promise<DeliveryOutcome>;
  /** How many clients are waiting. */
  count(): Promise<number>;
  /** The waiters this process holds, e.g. to tell them the relay stops. */
  local(): Waiter[];
}

/** A registration the registry refuses; `code` is sent to the client. */
export class RegistrationError extends Error {
  /** Stable reason, e.g. `state_taken`. */
  readonly code: ErrorCode;
  /**
   * @param code Stable reason.
   * @param message One line for the client.
   */
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "RegistrationError";
    this.code = code;
  }
}
