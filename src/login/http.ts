// This module is browser compatible.

/**
 * How a login talks to the provider over HTTP: one rule for which URLs may be
 * plain `http://` (loopback hosts only, for tests and local providers), the
 * request options oauth4webapi takes, and a short reason for a failed request.
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { isLoopback } from "../protocol/address.ts";
import { LOGIN_ERROR_CODES, LoginError, type LoginErrorCode, providerText } from "./errors.ts";

/** How long one request to the provider may take. */
export const PROVIDER_REQUEST_TIMEOUT_MS = 30_000;

/** What every request to the provider shares. */
export interface ProviderHttp {
  /** The `fetch` to use, e.g. one that trusts a private CA. Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Cancels every request. */
  signal?: AbortSignal;
}

/**
 * Whether `url` is plain HTTP to a loopback host, the one case where a login
 * accepts `http://` (RFC 9700 §2.1: every other endpoint is HTTPS).
 *
 * @param url A provider URL.
 * @returns `true` for `http://127.0.0.1:…`, `http://localhost:…`, `http://[::1]:…`.
 *
 * @example
 * ```ts
 * import { isLoopbackHttp } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isLoopbackHttp(new URL("http://127.0.0.1:8080/")), true);
 * assert.equal(isLoopbackHttp(new URL("http://provider.example/")), false);
 * ```
 */
export function isLoopbackHttp(url: URL): boolean {
  return url.protocol === "http:" && isLoopback(url.hostname.replace(/^\[(.*)\]$/, "$1"));
}

/**
 * Parses a provider URL named `what`: `https://`, or `http://` on a loopback host.
 *
 * @param what What the URL is, for the message (e.g. `issuer`).
 * @param value The URL.
 * @param code The error's code: `usage` for a URL the caller gave, `provider` for one from the provider's metadata.
 * @returns The parsed URL.
 * @throws {LoginError} `code` when it is not a URL, or not HTTPS and not loopback.
 *
 * @example
 * ```ts
 * import { providerUrl } from "./http.ts";
 * import { LoginError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(providerUrl("issuer", "https://accounts.google.com").host, "accounts.google.com");
 * assert.throws(() => providerUrl("issuer", "http://accounts.google.com"), LoginError);
 * ```
 */
export function providerUrl(what: string, value: string, code: LoginErrorCode = LOGIN_ERROR_CODES.USAGE): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new LoginError(
      code,
      `The ${what} must be a URL like https://provider.example, got ${quote(value)}`,
    );
  }
  if (url.protocol !== "https:" && !isLoopbackHttp(url)) {
    throw new LoginError(
      code,
      `The ${what} must use https:// (http:// only on a loopback host), got ${quote(value)}`,
    );
  }
  if (url.username || url.password || url.hash) {
    throw new LoginError(
      code,
      `The ${what} must not carry credentials or a fragment, got ${quote(url.origin)}…`,
    );
  }
  return url;
}

/**
 * The options oauth4webapi takes for a request to `url`: the custom `fetch`,
 * a timeout joined to the caller's signal, and `allowInsecureRequests` for a
 * loopback `http://` URL only, so metadata cannot send a request in clear elsewhere.
 *
 * @param url Where the request goes.
 * @param http The caller's `fetch` and signal.
 * @returns Options for an oauth4webapi request function.
 *
 * @example
 * ```ts
 * import { requestOptions } from "./http.ts";
 * import * as oauth from "oauth4webapi";
 * import assert from "node:assert/strict";
 *
 * assert.equal(requestOptions(new URL("http://127.0.0.1:9/token"), {})[oauth.allowInsecureRequests], true);
 * assert.equal(requestOptions(new URL("https://provider.example/token"), {})[oauth.allowInsecureRequests], false);
 * ```
 */
export function requestOptions(url: string | URL, http: ProviderHttp): {
  signal: () => AbortSignal;
  [oauth.customFetch]?: typeof fetch;
  [oauth.allowInsecureRequests]: boolean;
} {
  const target = typeof url === "string" ? new URL(url) : url;
  return {
    signal: () => {
      const timeout = AbortSignal.timeout(PROVIDER_REQUEST_TIMEOUT_MS);
      return http.signal ? AbortSignal.any([http.signal, timeout]) : timeout;
    },
    ...(http.fetch ? { [oauth.customFetch]: http.fetch } : {}),
    [oauth.allowInsecureRequests]: isLoopbackHttp(target),
  };
}

/**
 * Why a request failed, in a few words: `fetch` puts the reason at the end of
 * its message or in its cause.
 *
 * @param error What the request threw.
 * @returns E.g. `connection refused`.
 *
 * @example
 * ```ts
 * import { requestFailure } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new TypeError("error sending request for url (http://127.0.0.1:9/): client error (Connect): tcp connect error: Connection refused (os error 111)");
 * assert.equal(requestFailure(error), "connection refused");
 * ```
 */
export function requestFailure(error: unknown): string {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return `no answer within ${PROVIDER_REQUEST_TIMEOUT_MS / 1000} seconds`;
  }
  const inner = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const text = (inner instanceof Error ? inner.message : String(inner)).split("\n")[0];
  const last = text.replace(/^.*: (?=[^:]*$)/s, "").replace(/\s*\(os error \d+\)$/, "").trim();
  return (last || text).replace(/\.$/, "").toLowerCase();
}

/** A URL as a message shows it: quoted, short, and without control characters (metadata is the provider's text). */
function quote(value: string): string {
  return JSON.stringify(providerText(value.length > 80 ? value.slice(0, 80) + "…" : value));
}
