// This module is browser compatible.

/**
 * Errors that {@linkcode waitForCode} rejects with, each with a stable
 * machine-readable {@linkcode OAuthRelayError.code}.
 *
 * @module
 */

import { ERROR_CODES } from "../protocol/codes.ts";

export { ERROR_CODES, type ErrorCode } from "../protocol/codes.ts";

/**
 * Base class of every error the relay client rejects with.
 *
 * @example Telling relay errors apart from other failures
 * ```ts
 * import { OAuthRelayError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new OAuthRelayError("superseded", "Superseded by a newer waiter");
 * assert.ok(error instanceof Error);
 * assert.equal(error.code, "superseded");
 * ```
 */
export class OAuthRelayError extends Error {
  /** Stable machine-readable reason, one of {@linkcode ERROR_CODES} or a code sent by the relay. */
  readonly code: string;

  /**
   * Creates an error with a stable code.
   *
   * @param code Stable machine-readable reason.
   * @param message One line: what happened, where, what to do.
   * @param options Standard error options; `cause` keeps the underlying error.
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OAuthRelayError";
    this.code = code;
  }
}

/**
 * No callback arrived before the timeout.
 *
 * @example
 * ```ts
 * import { OAuthRelayError, OAuthTimeoutError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new OAuthTimeoutError("No callback within 5 seconds");
 * assert.ok(error instanceof OAuthRelayError);
 * assert.equal(error.code, "timeout");
 * ```
 */
export class OAuthTimeoutError extends OAuthRelayError {
  /**
   * Creates the error.
   *
   * @param message One line: what happened, where, what to do.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(ERROR_CODES.TIMEOUT, message, options);
    this.name = "OAuthTimeoutError";
  }
}

/**
 * The relay's coordinator could not be reached, or went away and did not
 * come back before the deadline.
 *
 * @example
 * ```ts
 * import { OAuthConnectionError, OAuthRelayError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new OAuthConnectionError("Cannot connect to relay at /tmp/x.sock: no such file");
 * assert.ok(error instanceof OAuthRelayError);
 * assert.equal(error.code, "connection");
 * ```
 */
export class OAuthConnectionError extends OAuthRelayError {
  /**
   * Creates the error.
   *
   * @param message One line: what happened, where, what to do.
   * @param options Standard error options; `cause` keeps the system error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(ERROR_CODES.CONNECTION, message, options);
    this.name = "OAuthConnectionError";
  }
}
