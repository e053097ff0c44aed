// This module is browser compatible.

/**
 * Errors that {@linkcode login} rejects with, each with a stable
 * machine-readable {@linkcode LoginError.code} from {@linkcode LOGIN_ERROR_CODES}.
 *
 * @module
 */

/**
 * Stable error codes of a login.
 *
 * @example
 * ```ts
 * import { LOGIN_ERROR_CODES } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(LOGIN_ERROR_CODES.CHECK_FAILED, "check_failed");
 * ```
 */
export const LOGIN_ERROR_CODES = {
  /** The person (or the provider) refused: the callback carried `error` instead of a code (RFC 6749 §4.1.2.1). */
  DENIED: "denied",
  /** Nobody authorized before the timeout. */
  TIMEOUT: "timeout",
  /** The relay could not be reached, or went away and did not come back in time. */
  RELAY_UNREACHABLE: "relay_unreachable",
  /** The relay refused the wait or ended it (`state_taken`, `unauthorized`, `too_many_waiters`, …). */
  RELAY_REFUSED: "relay_refused",
  /** The provider could not be used: unreachable, no usable metadata, or it refused the pushed request. */
  PROVIDER: "provider",
  /** The provider's token endpoint refused to exchange the code (RFC 6749 §5.2). */
  EXCHANGE_REFUSED: "exchange_refused",
  /** The response failed a check (`iss`, `state`, `nonce`, …): nothing was exchanged or nothing is returned. */
  CHECK_FAILED: "check_failed",
  /** The options cannot work as given (no redirect URI, an `http://` issuer that is not loopback, …). */
  USAGE: "usage",
} as const;

/** One of the values of {@linkcode LOGIN_ERROR_CODES}. */
export type LoginErrorCode = typeof LOGIN_ERROR_CODES[keyof typeof LOGIN_ERROR_CODES];

/**
 * Base class of every error {@linkcode login} rejects with.
 *
 * @example
 * ```ts
 * import { LOGIN_ERROR_CODES, LoginError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new LoginError(LOGIN_ERROR_CODES.TIMEOUT, "Nobody authorized within 300 seconds");
 * assert.ok(error instanceof Error);
 * assert.equal(error.code, "timeout");
 * ```
 */
export class LoginError extends Error {
  /** Stable machine-readable reason, one of {@linkcode LOGIN_ERROR_CODES}. */
  readonly code: LoginErrorCode;

  /**
   * Creates an error with a stable code.
   *
   * @param code Stable machine-readable reason.
   * @param message One line: what happened, where, what to do.
   * @param options Standard error options; `cause` keeps the underlying error.
   */
  constructor(code: LoginErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LoginError";
    this.code = code;
  }
}

/**
 * The authorization came back without a code: the person denied it, or the
 * provider refused the request. `error` and `errorDescription` are the
 * provider's own (RFC 6749 §4.1.2.1).
 *
 * @example
 * ```ts
 * import { LoginDeniedError, LoginError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new LoginDeniedError("access_denied", "End-User aborted interaction");
 * assert.ok(error instanceof LoginError);
 * assert.equal(error.code, "denied");
 * assert.equal(error.message, "The authorization was not granted: access_denied (End-User aborted interaction)");
 * ```
 */
export class LoginDeniedError extends LoginError {
  /** The provider's `error` code, e.g. `access_denied`. */
  readonly error: string;
  /** The provider's `error_description`, when it sent one. */
  readonly errorDescription?: string;

  /**
   * Creates the error.
   *
   * @param error The provider's `error` code.
   * @param errorDescription The provider's `error_description`.
   * @param options Standard error options.
   */
  constructor(error: string, errorDescription?: string, options?: ErrorOptions) {
    super(
      LOGIN_ERROR_CODES.DENIED,
      `The authorization was not granted: ${describeOAuthError(error, errorDescription)}`,
      options,
    );
    this.name = "LoginDeniedError";
    this.error = error;
    this.errorDescription = errorDescription;
  }
}

/**
 * The token endpoint refused to exchange the code (RFC 6749 §5.2): `error` is
 * the provider's, e.g. `invalid_grant` or `invalid_client`.
 *
 * @example
 * ```ts
 * import { LoginError, LoginExchangeError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new LoginExchangeError("invalid_client", "client authentication failed", 401);
 * assert.ok(error instanceof LoginError);
 * assert.equal(error.code, "exchange_refused");
 * assert.equal(error.status, 401);
 * ```
 */
export class LoginExchangeError extends LoginError {
  /** The provider's `error` code. */
  readonly error: string;
  /** The provider's `error_description`, when it sent one. */
  readonly errorDescription?: string;
  /** The HTTP status of the token endpoint's answer. */
  readonly status: number;

  /**
   * Creates the error.
   *
   * @param error The provider's `error` code.
   * @param errorDescription The provider's `error_description`.
   * @param status The HTTP status of the answer.
   * @param options Standard error options.
   */
  constructor(error: string, errorDescription: string | undefined, status: number, options?: ErrorOptions) {
    super(
      LOGIN_ERROR_CODES.EXCHANGE_REFUSED,
      `The provider refused to exchange the code: ${describeOAuthError(error, errorDescription)}`,
      options,
    );
    this.name = "LoginExchangeError";
    this.error = error;
    this.errorDescription = errorDescription;
    this.status = status;
  }
}

/** What a {@linkcode LoginCheckError} says failed. */
export type LoginCheck =
  /** The callback's `iss` is not the provider's issuer (RFC 9207 §2.4: a mix-up). */
  | "iss"
  /** The callback's `state` is missing or not this login's (RFC 6749 §10.12). */
  | "state"
  /** The callback cannot be used at all: a repeated parameter, or tokens in it (an implicit or hybrid flow). */
  | "callback"
  /** The ID token's `nonce` is not this login's (OpenID Connect Core §3.1.3.7 step 11). */
  | "nonce"
  /** Another claim of the ID token failed (`iss`, `aud`, `azp`, `exp`, `iat`, …), or the ID token is missing. */
  | "id_token";

/**
 * The provider's response failed a check; {@linkcode LoginCheckError.check}
 * says which. A failed `iss` or `state` check means nothing was exchanged.
 *
 * @example
 * ```ts
 * import { LoginCheckError, LoginError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new LoginCheckError("iss", "the callback came from https://evil.example, not https://issuer.example");
 * assert.ok(error instanceof LoginError);
 * assert.equal(error.code, "check_failed");
 * assert.equal(error.check, "iss");
 * assert.match(error.message, /^The response failed the iss check: /);
 * ```
 */
export class LoginCheckError extends LoginError {
  /** Which check failed. */
  readonly check: LoginCheck;

  /**
   * Creates the error.
   *
   * @param check Which check failed.
   * @param detail What was wrong, in a few words.
   * @param options Standard error options.
   */
  constructor(check: LoginCheck, detail: string, options?: ErrorOptions) {
    super(LOGIN_ERROR_CODES.CHECK_FAILED, `The response failed the ${check} check: ${detail}`, options);
    this.name = "LoginCheckError";
    this.check = check;
  }
}

/** The longest part of a provider's text a message repeats: a description is for a person, not a payload. */
const MAX_PROVIDER_TEXT = 200;

/**
 * A provider's `error` and `error_description` in one line, cut when long,
 * without control characters (they come from a stranger and end up in a terminal).
 *
 * @param error The `error` code.
 * @param description The `error_description`, if any.
 * @returns E.g. `access_denied (End-User aborted interaction)`.
 *
 * @example
 * ```ts
 * import { describeOAuthError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(describeOAuthError("invalid_grant", "bad\ncode\u001b[2J"), "invalid_grant (bad code [2J)");
 * ```
 */
export function describeOAuthError(error: string, description?: string): string {
  const text = providerText(error) || "error";
  return description ? `${text} (${providerText(description)})` : text;
}

/**
 * A string a provider chose, made safe for a one-line message on a terminal:
 * control characters (C0, C1: escape sequences) and line and direction
 * overrides become spaces, and a long one is cut.
 *
 * @param text What the provider sent (an `error_description`, an issuer in its metadata, …).
 * @returns One line, at most 200 characters and an ellipsis.
 *
 * @example
 * ```ts
 * import { providerText } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(providerText("https://evil.example/\u001b]0;title\u0007"), "https://evil.example/ ]0;title");
 * ```
 */
export function providerText(text: string): string {
  // deno-lint-ignore no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]+/g, " ").trim();
  return line.length > MAX_PROVIDER_TEXT ? line.slice(0, MAX_PROVIDER_TEXT) + "…" : line;
}
