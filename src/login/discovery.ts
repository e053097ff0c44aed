// This module is browser compatible.

/**
 * Finding the provider's endpoints: OpenID Connect Discovery, falling back to
 * RFC 8414 metadata, or endpoints given explicitly for a provider that
 * publishes none (GitHub).
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { LOGIN_ERROR_CODES, LoginError, providerText } from "./errors.ts";
import { type ProviderHttp, providerUrl, requestFailure, requestOptions } from "./http.ts";

/**
 * Reads the provider's metadata from its issuer identifier: OpenID Connect
 * Discovery 1.0 §4 (`/.well-known/openid-configuration`), and when that is
 * absent RFC 8414 §3 (`/.well-known/oauth-authorization-server`). The metadata
 * must name exactly this issuer (OpenID Connect Discovery §4.3, RFC 8414 §3.3).
 *
 * @param issuer The issuer identifier, `https://` (or `http://` on loopback).
 * @param http A custom `fetch` and a signal.
 * @returns The provider's metadata.
 * @throws {LoginError} `usage` for an issuer that is not a usable URL; `provider` when the provider cannot
 *   be reached, publishes no metadata, or names another issuer.
 *
 * @example An issuer over plain HTTP that is not loopback is refused before any request
 * ```ts
 * import { discover } from "./discovery.ts";
 * import { LoginError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(discover("http://provider.example"), (error: unknown) => {
 *   assert.ok(error instanceof LoginError);
 *   assert.equal(error.code, "usage");
 *   return true;
 * });
 * ```
 */
export async function discover(issuer: string, http: ProviderHttp = {}): Promise<oauth.AuthorizationServer> {
  const url = providerUrl("issuer", issuer);
  const tried: string[] = [];
  for (const algorithm of ["oidc", "oauth2"] as const) {
    let response: Response;
    try {
      response = await oauth.discoveryRequest(url, { algorithm, ...requestOptions(url, http) });
    } catch (error) {
      if (http.signal?.aborted) throw http.signal.reason;
      throw new LoginError(
        LOGIN_ERROR_CODES.PROVIDER,
        `Cannot reach the provider at ${issuer}: ${requestFailure(error)}`,
        { cause: error },
      );
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      tried.push(`${response.url || url.href} answered ${response.status}`);
      continue;
    }
    try {
      return await oauth.processDiscoveryResponse(url, response);
    } catch (error) {
      const named = (error as { cause?: { body?: { issuer?: unknown } } }).cause?.body?.issuer;
      const detail = error instanceof oauth.OperationProcessingError &&
          error.code === oauth.JSON_ATTRIBUTE_COMPARISON && typeof named === "string"
        ? `it names the issuer ${providerText(named)}, not ${issuer}; use that issuer`
        : `${error instanceof Error ? error.message : error}`;
      throw new LoginError(
        LOGIN_ERROR_CODES.PROVIDER,
        `The provider's metadata at ${response.url || url.href} cannot be used: ${detail}`,
        { cause: error },
      );
    }
  }
  throw new LoginError(
    LOGIN_ERROR_CODES.PROVIDER,
    `No metadata for the issuer ${issuer} (${
      tried.join("; ")
    }): check the issuer, or give the authorization and token endpoints`,
  );
}

/** Endpoints given explicitly, for a provider without metadata. */
export interface ExplicitEndpoints {
  /** The authorization endpoint (RFC 6749 §3.1). */
  authorizationEndpoint: string;
  /** The token endpoint (RFC 6749 §3.2). */
  tokenEndpoint: string;
  /**
   * The issuer identifier, when the provider has one: then a callback's `iss` and an ID token are checked
   * against it. Without it, an ID token cannot be checked, so `openid` cannot be asked for.
   */
  issuer?: string;
}

/**
 * Metadata built from explicit endpoints, for a provider that publishes none.
 *
 * @param endpoints The authorization and token endpoints, and the issuer if known.
 * @returns Metadata for oauth4webapi; `known` is `false` when no issuer was given (the issuer field then
 *   holds the authorization endpoint's origin, which nothing is checked against).
 * @throws {LoginError} `usage` when an endpoint is not `https://` (or loopback `http://`).
 *
 * @example GitHub's endpoints
 * ```ts
 * import { explicitServer } from "./discovery.ts";
 * import assert from "node:assert/strict";
 *
 * const { server, known } = explicitServer({
 *   authorizationEndpoint: "https://github.com/login/oauth/authorize",
 *   tokenEndpoint: "https://github.com/login/oauth/access_token",
 * });
 * assert.equal(server.token_endpoint, "https://github.com/login/oauth/access_token");
 * assert.equal(known, false);
 * ```
 */
export function explicitServer(endpoints: ExplicitEndpoints): { server: oauth.AuthorizationServer; known: boolean } {
  const authorization = providerUrl("authorization endpoint", endpoints.authorizationEndpoint);
  const token = providerUrl("token endpoint", endpoints.tokenEndpoint);
  if (endpoints.issuer !== undefined) providerUrl("issuer", endpoints.issuer);
  return {
    server: {
      // RFC 9207 §2.4: the issuer is compared as a simple string, so it is kept exactly as given.
      issuer: endpoints.issuer ?? authorization.origin,
      authorization_endpoint: authorization.href,
      token_endpoint: token.href,
    },
    known: endpoints.issuer !== undefined,
  };
}
