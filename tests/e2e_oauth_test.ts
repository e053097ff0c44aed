/**
 * End to end against a real OAuth 2.0 authorization server (`oauth2-mock-server`):
 * the test plays the person's browser through `/authorize`, the provider's
 * redirect reaches the relay, the code reaches `waitForCode()`, and the code is
 * exchanged at the provider's token endpoint with PKCE.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Events, type MutableRedirectUri, OAuth2Server } from "oauth2-mock-server";
import { body, MODES, startTestRelay, wait } from "./helpers.ts";

/** A running mock provider, stopped with `await using`. */
interface Provider extends AsyncDisposable {
  server: OAuth2Server;
  /** Where the test reaches it; the issuer URL says `localhost`, which may resolve to `::1` first. */
  url: string;
  /** The `iss` the provider signs into tokens and adds to its redirects. */
  issuer: string;
}

async function startProvider(): Promise<Provider> {
  const server = new OAuth2Server();
  await server.issuer.keys.generate("RS256");
  await server.start(0, "127.0.0.1");
  const issuer = server.issuer.url;
  assert.ok(issuer, "the mock server sets its issuer URL on start");
  // oauth2-mock-server 9.3.0 sends no `iss` on its redirect; a provider that follows
  // RFC 9207 §2 does, and the relay must hand it to the client for the mix-up check.
  server.service.on(Events.BeforeAuthorizeRedirect, ({ url }: MutableRedirectUri) => {
    url.searchParams.set("iss", issuer);
  });
  return {
    server,
    url: `http://127.0.0.1:${server.address().port}`,
    issuer,
    async [Symbol.asyncDispose]() {
      await server.stop();
    },
  };
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** RFC 7636 §4.1–4.2: a random verifier and its S256 challenge. */
async function pkce(): Promise<{ verifier: string; challenge: string }> {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url(new Uint8Array(digest)) };
}

function jwtPayload(jwt: string): Record<string, unknown> {
  const parts = jwt.split(".");
  assert.equal(parts.length, 3, "a JWS in compact serialization has three parts");
  const json = atob(parts[1].replaceAll("-", "+").replaceAll("_", "/"));
  return JSON.parse(json);
}

for (const mode of MODES) {
  Deno.test(`A code from a real OAuth 2.0 provider reaches waitForCode() and buys a token (${mode} coordinator)`, async () => {
    await using provider = await startProvider();
    await using relay = await startTestRelay({ mode });
    const state = crypto.randomUUID();
    const clientId = "e2e-client";
    const redirectUri = `${relay.url}/oauth/callback`;
    const { verifier, challenge } = await pkce();

    // Register first, then send the person to the provider.
    const { result, registered } = wait(relay, { state, timeout: 10 });
    await registered;

    const authorize = new URL("/authorize", provider.url);
    authorize.search = new URLSearchParams({
      response_type: "code",
      client_id: clientId,
      redirect_uri: redirectUri,
      state,
      scope: "openid",
      code_challenge: challenge,
      code_challenge_method: "S256",
    }).toString();
    const consent = await fetch(authorize, { redirect: "manual" });
    await body(consent);
    assert.equal(consent.status, 302);
    const location = consent.headers.get("location");
    assert.ok(location, "the provider redirects with a Location");
    const redirect = new URL(location);
    assert.equal(`${redirect.origin}${redirect.pathname}`, redirectUri);
    const code = redirect.searchParams.get("code");
    assert.ok(code, "the redirect carries a code");
    assert.equal(redirect.searchParams.get("state"), state);

    // The provider's redirect reaches the relay.
    const landing = await fetch(redirect, { redirect: "manual" });
    const page = await body(landing);
    assert.equal(landing.status, 200);
    assert.match(page, /Authorization Complete/);

    const callback = await result;
    assert.equal(callback.success, true);
    assert.equal(callback.code, code);
    assert.equal(callback.state, state);
    assert.equal(callback.raw.code, code);
    assert.equal(callback.raw.state, state);
    assert.equal(callback.raw.iss, provider.issuer);
    // Every parameter of the redirect, nothing more.
    assert.deepEqual(callback.raw, Object.fromEntries(redirect.searchParams));

    // The program exchanges the code; the mock server advertises only the "none"
    // client authentication method, so client_id goes in the body (RFC 6749 §4.1.3).
    const tokenResponse = await fetch(new URL("/token", provider.url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: callback.code,
        redirect_uri: redirectUri,
        client_id: clientId,
        code_verifier: verifier,
      }),
    });
    const token = JSON.parse(await body(tokenResponse));
    assert.equal(tokenResponse.status, 200, JSON.stringify(token));
    assert.equal(token.token_type, "Bearer");
    assert.equal(typeof token.access_token, "string");
    assert.equal(jwtPayload(token.access_token).iss, provider.issuer);
    assert.equal(jwtPayload(token.id_token).aud, clientId);
  });
}
