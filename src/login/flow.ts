/**
 * {@linkcode login}: the whole authorization code flow through the relay, from
 * nothing to tokens. Discovery, PKCE, state and nonce, a pushed authorization
 * request when the provider offers one, the wait at the relay, the checks of
 * the response, the exchange, and the checks of the ID token.
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { OAuthConnectionError, OAuthRelayError, OAuthTimeoutError } from "../client/errors.ts";
import type { Settings } from "../client/settings.ts";
import type { Transport } from "../client/transport/transport.ts";
import { resolveSettings, waitForCode } from "../client/wait.ts";
import { MAX_TIMEOUT_SECONDS } from "../protocol/limits.ts";
import { discover, explicitServer } from "./discovery.ts";
import {
  describeOAuthError,
  LOGIN_ERROR_CODES,
  LoginCheckError,
  LoginDeniedError,
  LoginError,
  LoginExchangeError,
} from "./errors.ts";
import { type ProviderHttp, providerUrl, requestFailure, requestOptions } from "./http.ts";
import { isProviderName, type ProviderName, PROVIDERS } from "./providers.ts";

/** The link to show the person, once the relay holds the wait. */
export interface AuthorizeLink {
  /** The authorization request: open it in any browser, on any device. */
  url: string;
  /** `true` when the request was pushed first (RFC 9126): the link then only names it, and is short. */
  pushed: boolean;
  /** Seconds the login waits for the person, from now. */
  timeout: number;
  /** Seconds the pushed request stays valid (RFC 9126 §2.2 `expires_in`): open the link within them. */
  expiresIn?: number;
}

/** Options of {@linkcode login}. */
export interface LoginOptions {
  /** The client's identifier at the provider. */
  clientId: string;
  /**
   * The client's secret, for a confidential client; a public client has none (PKCE protects it). Read it from
   * the environment or a secret store, never from a command line.
   */
  clientSecret?: string;
  /** A preset: `github`, `google`, `microsoft` or `gitlab`. What else is given wins over it. */
  provider?: ProviderName;
  /**
   * The issuer identifier: its metadata is discovered (OpenID Connect Discovery, else RFC 8414). With
   * explicit endpoints, it is the issuer that a callback's `iss` and an ID token are checked against.
   */
  issuer?: string;
  /** The authorization endpoint, for a provider without metadata (with {@linkcode LoginOptions.tokenEndpoint}). */
  authorizationEndpoint?: string;
  /** The token endpoint, for a provider without metadata (with {@linkcode LoginOptions.authorizationEndpoint}). */
  tokenEndpoint?: string;
  /** Space-separated scopes. Default: the preset's, else `openid`. */
  scope?: string;
  /**
   * The redirect URI registered at the provider: the relay's callback. Default: `OAUTH_PUBLIC_URL` (else
   * `OAUTH_RELAY_URL`) followed by `OAUTH_CALLBACK_PATH`.
   */
  redirectUri?: string;
  /** Further parameters of the authorization request, e.g. `{ prompt: "consent", login_hint: "…" }`. */
  authorizationParams?: Record<string, string>;
  /** Seconds to wait for the person. Default: `OAUTH_DEFAULT_TIMEOUT` (300). */
  timeout?: number;
  /** Called once, when the relay holds the wait: the moment to show the link. */
  onLink: (link: AuthorizeLink) => void;
  /** Cancels the login; it rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Relay settings that win over the `OAUTH_*` variables (socket path, `relayUrl`, `clientToken`, …). */
  settings?: Partial<Settings>;
  /** How to reach the relay. Default: the socket, or HTTPS for a relay URL. */
  transport?: Transport;
  /** The `fetch` for requests to the provider. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/** A token response (RFC 6749 §5.1), with whatever else the provider sent. */
export interface TokenResponse {
  /** The access token. */
  readonly access_token: string;
  /** Its type, in lower case: `bearer` (or `dpop`). */
  readonly token_type: string;
  /** Seconds it is valid for, when the provider says. */
  readonly expires_in?: number;
  /** A refresh token, when granted. */
  readonly refresh_token?: string;
  /** The ID token (OpenID Connect), checked. */
  readonly id_token?: string;
  /** The scope granted, when it differs or the provider says. */
  readonly scope?: string;
  /** Other parameters of the response. */
  readonly [parameter: string]: unknown;
}

/** The claims of a checked ID token (OpenID Connect Core §2). */
export interface IdTokenClaims {
  /** The issuer: the provider's. */
  readonly iss: string;
  /** The person's identifier at the provider. */
  readonly sub: string;
  /** The audience: this client. */
  readonly aud: string | string[];
  /** Issued at, seconds since the epoch. */
  readonly iat: number;
  /** Expires at, seconds since the epoch. */
  readonly exp: number;
  /** This login's nonce. */
  readonly nonce?: string;
  /** Other claims (`email`, `name`, …). */
  readonly [claim: string]: unknown;
}

/** What {@linkcode login} returns. */
export interface LoginResult {
  /** The token response (RFC 6749 §5.1), `token_type` in lower case. */
  tokens: TokenResponse;
  /** The ID token's claims, checked (`iss`, `aud`, `azp`, `exp`, `iat`, `nonce`); absent without `openid`. */
  claims?: IdTokenClaims;
  /** The issuer the response was checked against; absent for explicit endpoints without one. */
  issuer?: string;
}

/** Reserved parameters of the authorization request: set by the flow, never by `authorizationParams`. */
const RESERVED_PARAMS = new Set([
  "client_id",
  "redirect_uri",
  "response_type",
  "state",
  "nonce",
  "code_challenge",
  "code_challenge_method",
  "scope",
  "request_uri",
  "request",
]);

/**
 * Runs an authorization code flow through the relay and returns the tokens.
 *
 * 1. Finds the provider's endpoints (discovery, or the explicit ones or a preset's).
 * 2. Makes a PKCE S256 verifier (RFC 7636, always: RFC 9700 §2.1.1), a 256-bit random `state`, and for
 *    `openid` a `nonce`.
 * 3. Pushes the request when the provider offers PAR (RFC 9126): nothing of it travels in the link.
 * 4. Registers the state at the relay, and only then calls `onLink`: a callback cannot arrive before the
 *    wait.
 * 5. Checks the callback: the `state`, and the `iss` (RFC 9207) when the provider sends it or says it does.
 *    An `error` is the person's or the provider's refusal.
 * 6. Exchanges the code with the verifier, then checks the ID token's claims and its `nonce`.
 *
 * @param options The provider, the client, what to ask for, and how to show the link.
 * @returns The token response and the checked ID token claims.
 * @throws {LoginDeniedError} When the callback carries an `error` (`denied`).
 * @throws {LoginCheckError} When `iss`, `state`, `nonce` or the ID token fail a check (`check_failed`).
 * @throws {LoginExchangeError} When the token endpoint refuses the code (`exchange_refused`).
 * @throws {LoginError} `timeout`, `relay_unreachable`, `relay_refused`, `provider` or `usage`.
 * @throws {TypeError} When an option has the wrong type.
 *
 * @example Logging in at Google through a public relay
 * ```ts ignore
 * import { login } from "jsr:@org/oauth-relay/login";
 *
 * const { tokens, claims } = await login({
 *   provider: "google",
 *   clientId: "1234.apps.googleusercontent.com",
 *   clientSecret: Deno.env.get("OAUTH_CLIENT_SECRET"),
 *   onLink: ({ url }) => console.error(url),
 * });
 * console.log(claims?.email, tokens.expires_in);
 * ```
 *
 * @example Options that cannot work are refused before anything is contacted
 * ```ts
 * import { login } from "./flow.ts";
 * import { LoginError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   login({ clientId: "c", issuer: "http://provider.example", redirectUri: "https://relay.example/cb", onLink() {} }),
 *   (error: unknown) => error instanceof LoginError && error.code === "usage",
 * );
 * ```
 */
export async function login(options: LoginOptions): Promise<LoginResult> {
  validate(options);
  const http: ProviderHttp = { fetch: options.fetch, signal: options.signal };
  const preset = options.provider === undefined ? undefined : PROVIDERS[options.provider];
  const scope = options.scope ?? preset?.scope ?? "openid";
  const openid = scope.split(" ").includes("openid");
  const settings = resolveSettings(options.settings);
  const redirectUri = redirectUriOf(options.redirectUri, settings);
  const extraParams = withoutReserved(options.authorizationParams);

  // 1. The provider.
  const authorizationEndpoint = options.authorizationEndpoint ??
    (options.issuer === undefined ? preset?.authorizationEndpoint : undefined);
  const tokenEndpoint = options.tokenEndpoint ?? (options.issuer === undefined ? preset?.tokenEndpoint : undefined);
  let as: oauth.AuthorizationServer;
  let knownIssuer = true;
  let discovered = false;
  if (authorizationEndpoint !== undefined || tokenEndpoint !== undefined) {
    if (authorizationEndpoint === undefined || tokenEndpoint === undefined) {
      throw new LoginError(
        LOGIN_ERROR_CODES.USAGE,
        "The authorization endpoint and the token endpoint go together: give both, or an issuer to discover them",
      );
    }
    ({ server: as, known: knownIssuer } = explicitServer({
      authorizationEndpoint,
      tokenEndpoint,
      issuer: options.issuer,
    }));
    if (openid && !knownIssuer) {
      // OpenID Connect Core §3.1.3.7: an ID token is checked against the issuer; without one it cannot be.
      throw new LoginError(
        LOGIN_ERROR_CODES.USAGE,
        `The scope asks for openid, but no issuer is known to check the ID token against: give the issuer, or leave openid out`,
      );
    }
  } else {
    const issuer = options.issuer ?? preset?.issuer;
    if (issuer === undefined) {
      throw new LoginError(
        LOGIN_ERROR_CODES.USAGE,
        "No provider: give an issuer, a preset (github, google, microsoft, gitlab), or the authorization and token endpoints",
      );
    }
    as = await discover(issuer, http);
    discovered = true;
  }
  if (as.authorization_endpoint === undefined || as.token_endpoint === undefined) {
    throw new LoginError(
      LOGIN_ERROR_CODES.PROVIDER,
      `The provider's metadata at ${as.issuer} names no authorization or no token endpoint`,
    );
  }
  // Every endpoint is checked now, before the person is asked anything: no code is spent on a token endpoint
  // that cannot be used. An endpoint from the metadata that fails is the provider's fault, not the caller's.
  const where = discovered ? ` in the metadata at ${as.issuer}` : "";
  const fault = discovered ? LOGIN_ERROR_CODES.PROVIDER : LOGIN_ERROR_CODES.USAGE;
  const authorizationUrl = providerUrl(`authorization endpoint${where}`, as.authorization_endpoint, fault);
  const tokenUrl = providerUrl(`token endpoint${where}`, as.token_endpoint, fault);
  const parEndpoint = as.pushed_authorization_request_endpoint;
  const parUrl = parEndpoint === undefined ? undefined : providerUrl(`PAR endpoint${where}`, parEndpoint, fault);
  const client: oauth.Client = { client_id: options.clientId };
  const clientAuth = clientAuthentication(as, options.clientSecret, preset?.clientAuth);

  // 2. What binds the response to this login.
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState(); // 32 random bytes: 256 bits.
  const nonce = openid ? oauth.generateRandomNonce() : undefined;
  const params = new URLSearchParams({
    ...extraParams,
    client_id: options.clientId,
    redirect_uri: redirectUri,
    response_type: "code",
    scope,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    ...(nonce === undefined ? {} : { nonce }),
  });

  // 3. The link: pushed when offered (RFC 9126 §4: then only client_id and request_uri travel in it).
  let link: URL;
  let expiresIn: number | undefined;
  if (parUrl !== undefined) {
    const pushed = await push(as, client, clientAuth, params, parUrl, http);
    link = new URL(authorizationUrl);
    link.searchParams.set("client_id", options.clientId);
    link.searchParams.set("request_uri", pushed.request_uri);
    expiresIn = pushed.expires_in;
  } else {
    link = new URL(authorizationUrl);
    for (const [key, value] of params) link.searchParams.set(key, value);
  }

  // 4. Register first, then show the link.
  const timeout = options.timeout ?? settings.defaultTimeout;
  let callback;
  try {
    callback = await waitForCode({
      state,
      timeout,
      signal: options.signal,
      settings,
      transport: options.transport,
      onRegistered: ({ timeout: granted }) =>
        options.onLink({
          url: shortLink(link),
          pushed: parUrl !== undefined,
          timeout: Math.min(timeout, granted ?? timeout),
          expiresIn,
        }),
    });
  } catch (error) {
    throw relayFailure(error);
  }

  // 5. The callback: state and iss before anything else, an error only then (a forged error is a failed check).
  let validated: URLSearchParams;
  try {
    validated = oauth.validateAuthResponse(as, client, callbackParams(callback.raw), state);
  } catch (error) {
    if (error instanceof oauth.AuthorizationResponseError) {
      throw new LoginDeniedError(error.error, error.error_description, { cause: withoutSecrets(error) });
    }
    throw responseCheckFailure(error, as.issuer, knownIssuer);
  }
  // RFC 6749 §4.1.2: a response carries one code, or an error; anything else is not the provider's answer.
  const codes = validated.getAll("code");
  if (codes.length !== 1 || codes[0] === "") {
    throw new LoginCheckError(
      "callback",
      `the callback carries ${
        codes.length > 1 ? "more than one code" : "neither a code nor an error"
      }; nothing was exchanged`,
    );
  }

  // 6. The exchange, then the ID token.
  let response: Response;
  try {
    response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      validated,
      redirectUri,
      verifier,
      requestOptions(tokenUrl, http),
    );
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    throw new LoginError(
      LOGIN_ERROR_CODES.PROVIDER,
      `Cannot reach the provider's token endpoint at ${tokenUrl.origin}${tokenUrl.pathname}: ${requestFailure(error)}`,
      { cause: error },
    );
  }
  let tokens: oauth.TokenEndpointResponse;
  try {
    tokens = await oauth.processAuthorizationCodeResponse(as, client, response, {
      expectedNonce: nonce ?? oauth.expectNoNonce,
      requireIdToken: openid,
    });
  } catch (error) {
    throw exchangeFailure(error);
  }
  return {
    tokens,
    claims: oauth.getValidatedIdTokenClaims(tokens),
    issuer: knownIssuer ? as.issuer : undefined,
  };
}

function validate(options: LoginOptions): void {
  if (typeof options !== "object" || options === null) throw new TypeError('"options" must be an object');
  if (typeof options.clientId !== "string" || options.clientId === "") {
    throw new TypeError('"options.clientId" must be a non-empty string');
  }
  if (typeof options.onLink !== "function") throw new TypeError('"options.onLink" must be a function');
  if (options.provider !== undefined && !isProviderName(options.provider)) {
    throw new TypeError(`"options.provider" must be one of ${Object.keys(PROVIDERS).join(", ")}`);
  }
  const { timeout } = options;
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout > 0) || timeout > MAX_TIMEOUT_SECONDS)) {
    throw new RangeError(`"options.timeout" must be a positive number of seconds, at most ${MAX_TIMEOUT_SECONDS}`);
  }
  if (options.scope !== undefined && (typeof options.scope !== "string" || options.scope.trim() === "")) {
    throw new TypeError('"options.scope" must be a non-empty string');
  }
}

/** The redirect URI: given, or the relay's public URL and callback path. */
function redirectUriOf(given: string | undefined, settings: Settings): string {
  if (given !== undefined) {
    // RFC 9700 §2.1: the code travels to this URI; in clear only to a loopback host.
    providerUrl("redirect URI", given);
    return given;
  }
  const base = settings.publicUrl ?? settings.relayUrl;
  if (base === undefined) {
    throw new LoginError(
      LOGIN_ERROR_CODES.USAGE,
      "No redirect URI: set OAUTH_PUBLIC_URL to the relay's public URL (its callback is the redirect URI registered at the provider), or give the redirect URI",
    );
  }
  return base + settings.callbackPath;
}

/** How the client authenticates at the token (and PAR) endpoint: none for a public client (PKCE instead). */
function clientAuthentication(
  as: oauth.AuthorizationServer,
  secret: string | undefined,
  preferred: "client_secret_basic" | "client_secret_post" | undefined,
): oauth.ClientAuth {
  if (secret === undefined || secret === "") return oauth.None();
  const supported = as.token_endpoint_auth_methods_supported;
  // RFC 8414 §2: without the list, client_secret_basic is the default (RFC 6749 §2.3.1 requires it).
  const method = supported === undefined
    ? preferred ?? "client_secret_basic"
    : supported.includes("client_secret_basic")
    ? "client_secret_basic"
    : "client_secret_post";
  return method === "client_secret_basic" ? oauth.ClientSecretBasic(secret) : oauth.ClientSecretPost(secret);
}

function withoutReserved(params: Record<string, string> | undefined): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(params ?? {})) {
    if (RESERVED_PARAMS.has(key)) {
      throw new LoginError(LOGIN_ERROR_CODES.USAGE, `The authorization parameter ${key} is set by the login itself`);
    }
    kept[key] = String(value);
  }
  return kept;
}

/** RFC 9126 §2: pushes the request; its `request_uri` then stands for it in the link. */
async function push(
  as: oauth.AuthorizationServer,
  client: oauth.Client,
  clientAuth: oauth.ClientAuth,
  params: URLSearchParams,
  endpoint: URL,
  http: ProviderHttp,
): Promise<oauth.PushedAuthorizationResponse> {
  let response: Response;
  try {
    response = await oauth.pushedAuthorizationRequest(as, client, clientAuth, params, requestOptions(endpoint, http));
  } catch (error) {
    if (http.signal?.aborted) throw http.signal.reason;
    throw new LoginError(
      LOGIN_ERROR_CODES.PROVIDER,
      `Cannot reach the provider's PAR endpoint at ${endpoint.origin}${endpoint.pathname}: ${requestFailure(error)}`,
      { cause: error },
    );
  }
  try {
    return await oauth.processPushedAuthorizationResponse(as, client, response);
  } catch (error) {
    const refusal = oauthErrorOf(error);
    throw new LoginError(
      LOGIN_ERROR_CODES.PROVIDER,
      `The provider refused the pushed authorization request: ${
        refusal ? describeOAuthError(refusal.error, refusal.description) : errorText(error)
      }`,
      { cause: error },
    );
  }
}

/** The link as text; `:` stays unescaped in a query (RFC 3986 §3.4), which keeps a PAR link's QR code small. */
function shortLink(link: URL): string {
  return link.href.replaceAll("%3A", ":");
}

/** The callback's parameters as the provider sent them; a repeated one stays repeated, and fails a check. */
function callbackParams(raw: Record<string, unknown>): URLSearchParams {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(raw)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null) {
        params.append(key, typeof item === "string" ? item : JSON.stringify(item));
      }
    }
  }
  return params;
}

/** What the relay's errors mean for a login. */
function relayFailure(error: unknown): unknown {
  if (error instanceof OAuthTimeoutError) {
    return new LoginError(LOGIN_ERROR_CODES.TIMEOUT, error.message, { cause: error });
  }
  if (error instanceof OAuthConnectionError) {
    return new LoginError(LOGIN_ERROR_CODES.RELAY_UNREACHABLE, error.message, { cause: error });
  }
  if (error instanceof OAuthRelayError) {
    return new LoginError(LOGIN_ERROR_CODES.RELAY_REFUSED, error.message, { cause: error });
  }
  return error;
}

/**
 * oauth4webapi's error, to keep as a cause, without its own `cause`: that holds the callback's parameters (the
 * code) or the token response (the tokens), and a program that logs an error logs its causes.
 */
function withoutSecrets(error: unknown): unknown {
  if (error instanceof Error) delete (error as { cause?: unknown }).cause;
  return error;
}

/** A failed check of the callback (oauth4webapi checks `iss` first, then `state`), named. */
function responseCheckFailure(error: unknown, issuer: string, knownIssuer: boolean): unknown {
  if (error instanceof oauth.UnsupportedOperationError) {
    // Tokens in the callback (implicit or hybrid flow): never asked for, so not this login's (RFC 9700 §2.1.2).
    return new LoginCheckError("callback", `${error.message}; nothing was exchanged`, { cause: withoutSecrets(error) });
  }
  if (!(error instanceof oauth.OperationProcessingError)) return error;
  const message = error.message;
  withoutSecrets(error);
  if (message.includes("only once")) {
    return new LoginCheckError("callback", `${message}; nothing was exchanged`, { cause: error });
  }
  if (message.includes('"iss"')) {
    if (!knownIssuer) {
      return new LoginCheckError("iss", "the callback names an issuer, but none was given to check it against", {
        cause: error,
      });
    }
    return new LoginCheckError(
      "iss",
      message.includes("missing")
        ? `the callback has no iss, though ${issuer} says it sends one (RFC 9207); nothing was exchanged`
        : `the callback names another issuer than ${issuer} (RFC 9207: a mix-up); nothing was exchanged`,
      { cause: error },
    );
  }
  if (message.includes('"state"')) {
    return new LoginCheckError(
      "state",
      `${
        message.includes("missing") ? "the callback has no state" : "the callback's state is not this login's"
      }; nothing was exchanged`,
      { cause: error },
    );
  }
  return new LoginCheckError("callback", `${message}; nothing was exchanged`, { cause: error });
}

/** A failed exchange: the provider's refusal, or a token response or ID token that fails a check. */
function exchangeFailure(error: unknown): unknown {
  const refusal = oauthErrorOf(error);
  if (refusal) {
    return new LoginExchangeError(refusal.error, refusal.description, refusal.status, {
      cause: withoutSecrets(error),
    });
  }
  // An UnsupportedOperationError: a token type, or an ID token (encrypted, `crit`), that the client cannot use.
  if (error instanceof oauth.OperationProcessingError || error instanceof oauth.UnsupportedOperationError) {
    const cause = error.cause as { claim?: unknown; claims?: unknown } | undefined;
    withoutSecrets(error);
    if (cause?.claim === "nonce") {
      return new LoginCheckError("nonce", "the ID token's nonce is not this login's; the tokens were discarded", {
        cause: error,
      });
    }
    if (error.message === 'JWT "nonce" (nonce) claim missing') {
      return new LoginCheckError("nonce", "the ID token has no nonce; the tokens were discarded", { cause: error });
    }
    if (
      error.code === oauth.JWT_CLAIM_COMPARISON || error.code === oauth.JWT_TIMESTAMP_CHECK ||
      cause?.claims !== undefined || /ID Token|id_token|\bJW[TE]\b/.test(error.message)
    ) {
      return new LoginCheckError("id_token", `${error.message}; the tokens were discarded`, { cause: error });
    }
    return new LoginError(
      LOGIN_ERROR_CODES.EXCHANGE_REFUSED,
      `The provider's token response cannot be used: ${error.message}`,
      { cause: error },
    );
  }
  return error;
}

/** The OAuth error a provider answered with, from a JSON body, a `WWW-Authenticate` challenge, or a 200 body. */
function oauthErrorOf(error: unknown): { error: string; description?: string; status: number } | undefined {
  if (error instanceof oauth.ResponseBodyError) {
    return { error: error.error, description: error.error_description, status: error.status };
  }
  if (error instanceof oauth.WWWAuthenticateChallengeError) {
    const parameters = error.cause[0]?.parameters;
    return {
      error: parameters?.error ?? "invalid_client",
      description: parameters?.error_description,
      status: error.status,
    };
  }
  // GitHub answers a refused exchange with 200 and an error in the body.
  const body = (error as { cause?: { body?: { error?: unknown; error_description?: unknown } } }).cause?.body;
  if (error instanceof oauth.OperationProcessingError && typeof body?.error === "string") {
    return {
      error: body.error,
      description: typeof body.error_description === "string" ? body.error_description : undefined,
      status: 200,
    };
  }
  return undefined;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
