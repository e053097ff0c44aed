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
import { LoginCheckError, LoginError } from "../src/login/errors.ts";
import { defaultTransport } from "../src/client/transport/default.ts";
import type { Transport } from "../src/client/transport/transport.ts";
import { startTestRelay, type TestRelay } from "./helpers.ts";
import { authorize } from "./support/login_cli.ts";

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

/**
 * Asserts that `error`, printed with all its causes as a log would print it, holds none of `secrets` (the code,
 * the tokens): the login keeps them out of what it rejects with.
 */
function assertNoSecrets(error: unknown, secrets: string[]): void {
  assert.ok(secrets.length > 0 && secrets.every((secret) => secret.length > 8), "the test saw the secrets");
  const printed = Deno.inspect(error, { depth: Infinity, showHidden: true });
  for (const secret of secrets) assert.ok(!printed.includes(secret), `the error holds a secret: ${printed}`);
}

/** Records each code the server puts in a redirect to the relay. */
function recordCodes(provider: { server: OAuth2Server }): string[] {
  const codes: string[] = [];
  provider.server.service.on(Events.BeforeAuthorizeRedirect, ({ url }: MutableRedirectUri) => {
    const code = url.searchParams.get("code");
    if (code) codes.push(code);
  });
  return codes;
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
      const codes = recordCodes(provider);
      const failure = loginThrough(relay, provider.issuer, { transport: tampering(state) });
      await rejectsCheck(failure, "state", message);
      assert.equal(provider.exchanges(), 0);
      assertNoSecrets(await failure.catch((error) => error), codes);
    });
  }
});

Deno.test("an ID token with another nonce is refused after the exchange and no tokens are returned", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeTokenSigning, ({ payload }: MutableToken) => {
    if ("nonce" in payload) payload.nonce = "the-nonce-of-another-login";
  });
  const tokens = recordTokens(provider);
  const failure = loginThrough(relay, provider.issuer);
  await rejectsCheck(
    failure,
    "nonce",
    /^The response failed the nonce check: the ID token's nonce is not this login's; the tokens were discarded$/,
  );
  assert.equal(provider.exchanges(), 1);
  assertNoSecrets(await failure.catch((error) => error), tokens);
});

Deno.test("an ID token without the login's nonce fails the nonce check", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeTokenSigning, ({ payload }: MutableToken) => {
    if ("nonce" in payload) delete payload.nonce;
  });
  await rejectsCheck(
    loginThrough(relay, provider.issuer),
    "nonce",
    /the ID token has no nonce; the tokens were discarded$/,
  );
});

/** Records the tokens of each token response the server sends. */
function recordTokens(provider: { server: OAuth2Server }): string[] {
  const tokens: string[] = [];
  provider.server.service.on(Events.BeforeResponse, ({ body }: MutableResponse) => {
    const response = body as Record<string, unknown>;
    for (const name of ["access_token", "id_token", "refresh_token"]) {
      if (typeof response[name] === "string") tokens.push(response[name]);
    }
  });
  return tokens;
}

Deno.test("a token response of a token type the client does not know is refused in one line, without its tokens", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeResponse, ({ body }: MutableResponse) => {
    (body as Record<string, unknown>).token_type = "mac";
  });
  const tokens = recordTokens(provider);
  const failure = loginThrough(relay, provider.issuer);
  await assert.rejects(failure, (error: unknown) => {
    assert.ok(error instanceof LoginError, String(error));
    assert.equal(error.code, "exchange_refused");
    assert.equal(error.message, "The provider's token response cannot be used: unsupported `token_type` value");
    return true;
  });
  assertNoSecrets(await failure.catch((error) => error), tokens);
});

Deno.test("a callback that carries tokens (implicit or hybrid flow) is refused, and its code is never exchanged", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeAuthorizeRedirect, ({ url }: MutableRedirectUri) => {
    url.searchParams.set("id_token", "eyJhbGciOiJub25lIn0.e30.");
  });
  await rejectsCheck(
    loginThrough(relay, provider.issuer),
    "callback",
    /^The response failed the callback check: implicit and hybrid flows are not supported; nothing was exchanged$/,
  );
  assert.equal(provider.exchanges(), 0);
});

Deno.test("a callback with the login's state but not exactly one code (and no error) is refused", async (t) => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  for (
    const [name, change, message] of [
      ["no code", (url: URL) => url.searchParams.delete("code"), /carries neither a code nor an error/],
      ["two codes", (url: URL) => url.searchParams.append("code", "a-second-code"), /carries more than one code/],
    ] as const
  ) {
    await t.step(name, async () => {
      const tamper = ({ url }: MutableRedirectUri) => change(url);
      provider.server.service.on(Events.BeforeAuthorizeRedirect, tamper);
      try {
        await rejectsCheck(loginThrough(relay, provider.issuer), "callback", message);
        assert.equal(provider.exchanges(), 0);
      } finally {
        provider.server.service.off(Events.BeforeAuthorizeRedirect, tamper);
      }
    });
  }
});

Deno.test("metadata naming a token endpoint in clear is refused as the provider's fault, before the link is shown", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeWellKnownOpenIdConfiguration, ({ body }: MutableResponse) => {
    (body as Record<string, unknown>).token_endpoint = "http://provider.example/token";
  });
  let shown = false;
  await assert.rejects(
    login({
      issuer: provider.issuer,
      clientId: "mock-client",
      redirectUri: `${relay.url}/oauth/callback`,
      settings: relay.client,
      timeout: 30,
      onLink: () => shown = true,
    }),
    (error: unknown) => {
      assert.ok(error instanceof LoginError, String(error));
      assert.equal(error.code, "provider");
      assert.match(
        error.message,
        /^The token endpoint in the metadata at http:\/\/127\.0\.0\.1:\d+ must use https:\/\/ \(http:\/\/ only on a loopback host\), got "http:\/\/provider\.example\/token"$/,
      );
      return true;
    },
  );
  assert.equal(shown, false);
});

Deno.test("provider text in the metadata reaches a message without terminal control characters", async (t) => {
  await using provider = await startMockProvider();
  const evil = "\u001b]0;pwned\u0007\u001b[2J\u009b31m\u202e";
  for (
    const [name, field, value, message] of [
      ["another issuer", "issuer", `https://evil.example/${evil}`, /it names the issuer https:\/\/evil\.example\//],
      ["an endpoint in clear", "token_endpoint", `ftp://evil.example/${evil}`, /token endpoint in the metadata/],
    ] as const
  ) {
    await t.step(name, async () => {
      const tamper = ({ body }: MutableResponse) => (body as Record<string, unknown>)[field] = value;
      provider.server.service.on(Events.BeforeWellKnownOpenIdConfiguration, tamper);
      try {
        await assert.rejects(
          login({ issuer: provider.issuer, clientId: "c", redirectUri: "https://relay.example/cb", onLink() {} }),
          (error: unknown) => {
            assert.ok(error instanceof LoginError, String(error));
            assert.equal(error.code, "provider");
            assert.match(error.message, message);
            // deno-lint-ignore no-control-regex
            assert.doesNotMatch(error.message, /[\u0000-\u001f\u007f-\u009f\u202e]/);
            return true;
          },
        );
      } finally {
        provider.server.service.off(Events.BeforeWellKnownOpenIdConfiguration, tamper);
      }
    });
  }
});

Deno.test("an ID token for another audience fails the id_token check", async () => {
  await using relay = await startTestRelay();
  await using provider = await startMockProvider();
  provider.server.service.on(Events.BeforeTokenSigning, ({ payload }: MutableToken) => {
    if ("nonce" in payload) payload.aud = "another-client";
  });
  await rejectsCheck(loginThrough(relay, provider.issuer), "id_token", /"aud"/);
});
