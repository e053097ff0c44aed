/**
 * `login()` as a Node, Bun or Deno program uses it: `@org/oauth-relay/login`
 * from the built package, against a real OpenID provider (`oidc-provider`,
 * PAR on, a public client that must use PKCE) and a real relay, both
 * subprocesses this file starts (`support.mjs`). The person is `fetch` with a
 * cookie jar going through the provider's development sign-in and consent
 * pages and following its redirects to the relay, as a browser does (the
 * Chromium run of the CLI under Node is `bin_e2e_test.ts`).
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { login, LoginCheckError, LoginDeniedError, LoginError } from "@org/oauth-relay/login";
import { OAuthRelayError } from "@org/oauth-relay";
import { PUBLIC_CLIENT, signIn, startOidcProvider, startRelay, userinfo } from "./support.mjs";

let dir, relay, provider, settings;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "oauth-relay-cross-login-"));
  relay = await startRelay({ OAUTH_SOCKET_PATH: join(dir, "relay.sock") });
  provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
  settings = { useTcp: false, socketPath: relay.coordinator };
});

after(async () => {
  await provider?.stop();
  await relay?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The global `fetch`, recording each request login() makes to the provider: its method, URL and form body. */
function recordingFetch() {
  const requests = [];
  return {
    requests,
    fetch: (url, init = {}) => {
      requests.push({ method: init.method ?? "GET", url: String(url), body: new URLSearchParams(init.body ?? "") });
      return fetch(url, init);
    },
  };
}

/** login() at the test provider through the relay; the person signs in as soon as the link is shown. */
async function loginAsPerson(person, options = {}) {
  let signedIn;
  const links = [];
  try {
    const result = await login({
      issuer: provider.issuer,
      clientId: PUBLIC_CLIENT,
      redirectUri: `${relay.url}/oauth/callback`,
      settings,
      timeout: 60,
      onLink: (link) => {
        links.push(link);
        signedIn = signIn(link.url, { relay: relay.url, ...person });
      },
      ...options,
    });
    return { result, links, page: await signedIn };
  } finally {
    // A rejected login still waits for the person to finish, so nothing is left running.
    await signedIn?.catch(() => {});
  }
}

test("login() signs in with PKCE and a pushed request and returns tokens and the ID token's checked claims", async () => {
  const recorder = recordingFetch();
  const { result, links, page } = await loginAsPerson({ login: "carol" }, {
    scope: "openid email",
    fetch: recorder.fetch,
  });

  // RFC 9126 §4: the link names the pushed request, nothing of it.
  assert.equal(links.length, 1);
  assert.equal(links[0].pushed, true);
  assert.ok(links[0].expiresIn > 0);
  assert.deepEqual([...new URL(links[0].url).searchParams.keys()], ["client_id", "request_uri"]);
  assert.equal(page.status, 200);
  assert.match(page.text, /Authorization Complete/);

  // The pushed request carried PKCE S256, a 256-bit state and a nonce; the exchange carried the verifier.
  const par = recorder.requests.find((request) => request.url.endsWith("/request"));
  assert.ok(par, recorder.requests.map((request) => request.url).join(", "));
  assert.equal(par.body.get("code_challenge_method"), "S256");
  assert.match(par.body.get("code_challenge"), /^[A-Za-z0-9_-]{43}$/);
  assert.match(par.body.get("state"), /^[A-Za-z0-9_-]{43}$/);
  assert.match(par.body.get("nonce"), /^[A-Za-z0-9_-]{43}$/);
  const exchange = recorder.requests.find((request) => request.body.get("grant_type") === "authorization_code");
  assert.match(exchange.body.get("code_verifier"), /^[A-Za-z0-9_-]{43}$/);

  const { tokens, claims, issuer } = result;
  assert.equal(issuer, provider.issuer);
  assert.equal(tokens.token_type, "bearer");
  assert.equal(tokens.scope, "openid email");
  assert.equal(claims.iss, provider.issuer);
  assert.equal(claims.sub, "carol");
  assert.equal(claims.aud, PUBLIC_CLIENT);
  assert.equal(claims.nonce, par.body.get("nonce"));
  assert.deepEqual(await userinfo(provider.issuer, tokens.access_token), {
    sub: "carol",
    email: "carol@example.test",
    email_verified: true,
  });
});

test("login() rejects with LoginDeniedError and the provider's error when the person cancels", async () => {
  await assert.rejects(loginAsPerson({ decision: "cancel" }), (error) => {
    assert.ok(error instanceof LoginDeniedError, String(error));
    assert.ok(error instanceof LoginError);
    assert.equal(error.name, "LoginDeniedError");
    assert.equal(error.code, "denied");
    assert.equal(error.error, "access_denied");
    assert.equal(error.errorDescription, "End-User aborted interaction");
    assert.equal(error.message, "The authorization was not granted: access_denied (End-User aborted interaction)");
    return true;
  });
});

test("login() refuses a callback that names another issuer (RFC 9207), and exchanges nothing", async () => {
  const recorder = recordingFetch();
  await assert.rejects(
    loginAsPerson({ tamper: (url) => url.searchParams.set("iss", "https://attacker.example") }, {
      fetch: recorder.fetch,
    }),
    (error) => {
      assert.ok(error instanceof LoginCheckError, String(error));
      assert.ok(!(error instanceof OAuthRelayError));
      assert.equal(error.code, "check_failed");
      assert.equal(error.check, "iss");
      assert.equal(
        error.message,
        `The response failed the iss check: the callback names another issuer than ${provider.issuer} ` +
          "(RFC 9207: a mix-up); nothing was exchanged",
      );
      return true;
    },
  );
  assert.ok(recorder.requests.some((request) => request.url.endsWith("/request")), "the request was pushed");
  assert.deepEqual(recorder.requests.filter((request) => request.body.has("code")), [], "no code was exchanged");
});
