/**
 * What `login()` refuses, against a real authorization server
 * (`oauth2-mock-server`) that the test makes misbehave through its hooks,
 * and a real relay: a callback from another issuer (a mix-up, RFC 9207), a
 * callback whose state is not the login's, an ID token with another nonce.
 * A refused callback is never exchanged. The person's browser is `fetch`
 * following the provider's redirect to the relay (the server has no pages).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  Events,
  type MutableRedirectUri,
  type MutableResponse,
  type MutableToken,
  OAuth2Server,
} from "oauth2-mock-server";
import { login, type LoginOptions } from "../login.ts";
import { LoginCheckError } from "../src/login/errors.ts";
import { defaultTransport } from "../src/client/transport/default.ts";
import type { Transport } from "../src/client/transport/transport.ts";
import { body, startTestRelay, type TestRelay } from "./helpers.ts";

/** A running mock authorization server on 127.0.0.1, stopped with `await using`. */
async function startMockProvider() {
  const server = new OAuth2Server();
  await server.issuer.keys.generate("RS256");
  await server.start(0, "127.0.0.1");
  // Its default issuer says localhost; name the address it listens on.
  const issuer = `http://127.0.0.1:${server.address().port}`;
  server.issuer.url = issuer;
  let exchanges = 0;
  server.service.on(Events.BeforeResponse, () => exchanges++);
  return {
    server,
    issuer,
    /** How many token responses the server sent: a refused callback must leave this at 0. */
    exchanges: () => exchanges,
    async [Symbol.asyncDispose]() {
      await server.stop();
    },
  };
}

/** The person: opens the link, and their browser follows the provider's redirect to the relay. */
async function authorize(link: string): Promise<void> {
  const answer = await fetch(link, { redirect: "manual" });
  await body(answer);
  assert.equal(answer.status, 302);
  await body(await fetch(answer.headers.get("location")!));
}

/** login() against `issuer` through `relay`, the person authorizing as soon as the link is shown. */
async function loginThrough(relay: TestRelay, issuer: string, extra: Partial<LoginOptions> = {}) {
  let person: Promise<void> | undefined;
  try {
    return await login({
      issuer,
      clientId: "mock-client",
      redirectUri: `${relay.url}/oauth/callback`,
      settings: relay.client,
      timeout: 30,
      onLink: (link) => person = authorize(link.url),
      ...extra,
    });
  } finally {
    await person;
  }
}

/** Asserts that `promise` rejects with a failed `check`, whose message matches `message`. */
async function rejectsCheck(promise: Promise<unknown>, check: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof LoginCheckError, String(error));
    assert.equal(error.code, "check_failed");
    assert.equal(error.check, check);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("login() against a well-behaved server returns tokens and claims (the control case)", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  const { tokens, claims } = await loginThrough(relay, provider.issuer);
  assert.equal(tokens.token_type, "bearer");
  assert.equal(claims?.iss, provider.issuer);
  assert.equal(provider.exchanges(), 1);
});

Deno.test("a callback naming another issuer is refused as a mix-up, and its code is never exchanged", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeAuthorizeRedirect, ({ url }: MutableRedirectUri) => {
    url.searchParams.set("iss", "https://attacker.example");
  });
  await rejectsCheck(
    loginThrough(relay, provider.issuer),
    "iss",
    /^The response failed the iss check: the callback names another issuer than http:\/\/127\.0\.0\.1:\d+ \(RFC 9207: a mix-up\); nothing was exchanged$/,
  );
  assert.equal(provider.exchanges(), 0);
});

Deno.test("a callback without iss from a server that says it sends one is refused (RFC 9207 §2.4)", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeWellKnownOpenIdConfiguration, ({ body }: MutableResponse) => {
    (body as Record<string, unknown>).authorization_response_iss_parameter_supported = true;
  });
  await rejectsCheck(
    loginThrough(relay, provider.issuer),
    "iss",
    /the callback has no iss, though .* says it sends one/,
  );
  assert.equal(provider.exchanges(), 0);
});

/**
 * The real transport to the relay, with every callback's `state` parameter replaced on the way: what a relay
 * that is not to be trusted (or a bug) would hand over.
 */
function tampering(state: (original: unknown) => unknown): Transport {
  return {
    async open(address, registration) {
      const channel = await defaultTransport.open(address, registration);
      return {
        ...channel,
        async read() {
          const message = await channel.read();
          if (message?.type !== "callback") return message;
          return {
            ...message,
            result: { ...message.result, raw: { ...message.result.raw, state: state(message.result.raw.state) } },
          };
        },
      };
    },
  };
}

Deno.test("a callback whose state is not the login's is refused, and its code is never exchanged", async (t) => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  for (
    const [name, state, message] of [
      [
        "another state",
        () => "a-state-of-another-login",
        /the callback's state is not this login's; nothing was exchanged$/,
      ],
      ["no state", () => undefined, /the callback has no state; nothing was exchanged$/],
    ] as const
  ) {
    await t.step(name, async () => {
      await rejectsCheck(loginThrough(relay, provider.issuer, { transport: tampering(state) }), "state", message);
      assert.equal(provider.exchanges(), 0);
    });
  }
});

Deno.test("an ID token with another nonce is refused after the exchange and no tokens are returned", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeTokenSigning, ({ payload }: MutableToken) => {
    if ("nonce" in payload) payload.nonce = "the-nonce-of-another-login";
  });
  await rejectsCheck(
    loginThrough(relay, provider.issuer),
    "nonce",
    /^The response failed the nonce check: the ID token's nonce is not this login's; the tokens were discarded$/,
  );
  assert.equal(provider.exchanges(), 1);
});

Deno.test("an ID token for another audience fails the id_token check", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeTokenSigning, ({ payload }: MutableToken) => {
    if ("nonce" in payload) payload.aud = "another-client";
  });
  await rejectsCheck(loginThrough(relay, provider.issuer), "id_token", /"aud"/);
});
