// This module is browser compatible.

/**
 * The stable error codes: what the relay sends in an `error` message and what
 * {@linkcode OAuthRelayError.code} carries on the client. One constant per
 * code, used at every throw site on both sides.
 *
 * @module
 */

/**
 * Stable error codes.
 *
 * @example
 * ```ts
 * import { ERROR_CODES } from "./codes.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ERROR_CODES.STATE_TAKEN, "state_taken");
 * ```
 */
export const ERROR_CODES = {
  /** No callback arrived before the deadline. */
  TIMEOUT: "timeout",
  /** The relay could not be reached, or went away and did not come back in time. */
  CONNECTION: "connection",
  /** A newer single-slot registration replaced this one. */
  SUPERSEDED: "superseded",
  /** Another client is already waiting for this state. */
  STATE_TAKEN: "state_taken",
  /** This state was delivered recently; a fresh random state is needed. */
  STATE_USED: "state_used",
  /** The client sent nothing in time after connecting. */
  IDLE: "idle",
  /** The relay speaks another protocol version. */
  UNSUPPORTED_VERSION: "unsupported_version",
  /** The relay holds as many waiters as it allows. */
  TOO_MANY_WAITERS: "too_many_waiters",
  /** The relay refused the coordinator token. */
  UNAUTHORIZED: "unauthorized",
  /** The relay did not understand a message, or the client did not understand the relay. */
  PROTOCOL: "protocol",
  /** The relay is stopping; a client reconnects to the next one. */
  SHUTDOWN: "shutdown",
  /** The relay cannot take registrations right now (its registry is unreachable); try again shortly. */
  UNAVAILABLE: "unavailable",
  /** The relay dropped this connection to make room: too many connections had not registered yet. Retry. */
  BUSY: "busy",
  /** The relay does not accept waiters without a state (`OAUTH_SINGLE_SLOT=false`). */
  SINGLE_SLOT_DISABLED: "single_slot_disabled",
} as const;

/** One of the values of {@linkcode ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[keyof typeof ERROR_CODES];
