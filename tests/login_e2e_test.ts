/**
 * `client.ts login` and `login()` end to end with real parts: a real OpenID
 * provider (`oidc-provider`, PAR on unless a test turns it off, a public
 * client that must use PKCE), a real relay, and headless Chromium as the
 * person, who opens the printed link, signs in and consents (or cancels) at
 * the provider's pages, and whose browser the provider redirects to the relay.
 *
 * @module
 */

import assert from "node:assert/strict";
import { login } from "../login.ts";
import { LoginDeniedError } from "../src/login/errors.ts";
import { EXIT } from "../src/cli/io.ts";
import { tempDir } from "./helpers.ts";
import { authorizeInBrowser, HAS_CHROMIUM, launchBrowser } from "./support/browser.ts";
import { cancelEndToEnd, loginWorld as setup, runLogin, signInEndToEnd, userinfo } from "./support/login_cli.ts";
import { CONFIDENTIAL_CLIENT, PUBLIC_CLIENT } from "./support/oidc_provider.ts";

if (!HAS_CHROMIUM) console.warn("Skipping the login tests that need a browser: chromium is not installed");
const test = HAS_CHROMIUM ? Deno.test : Deno.test.ignore;

test("client.ts login prints the token response once a person signs in with Chromium, and the token works", async () => {
  await using world = await setup();
  await using browser = await launchBrowser();
  const { link, tokens, stderr } = await signInEndToEnd(world, browser);
  assert.match(link.searchParams.get("request_uri")!, /^urn:ietf:params:oauth:request_uri:/);
  assert.equal(typeof tokens.id_token, "string");
  // The link stood alone on its line.
  assert.ok(stderr.split("\n").includes(link.href.replaceAll("%3A", ":")));
});

test("client.ts login --out writes the tokens with mode 0600 and nothing on stdout", async () => {
  await using world = await setup();
  await using browser = await launchBrowser();
  await using tmp = await tempDir();
  const out = `${tmp.path}/tokens.json`;
  await using cli = runLogin(
    ["--issuer", world.provider.issuer, "--client-id", PUBLIC_CLIENT, "--out", out],
    world.env,
  );
  await authorizeInBrowser(browser, await cli.link);
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.CODE, stderr);
  assert.equal(stdout, "");
  assert.match(stderr, /tokens written to .*tokens\.json \(mode 0600\)/);
  assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);
  const tokens = JSON.parse(await Deno.readTextFile(out));
  assert.equal((await userinfo(world.provider.issuer, tokens.access_token)).sub, "alice");
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((entry) => entry.name), ["tokens.json"], "no temporary left");
});

test("login() returns the tokens and the ID token's validated claims, nonce included", async () => {
  await using world = await setup();
  await using browser = await launchBrowser();
  const links: string[] = [];
  let person: Promise<unknown> | undefined;
  const result = await login({
    issuer: world.provider.issuer,
    clientId: PUBLIC_CLIENT,
    scope: "openid email",
    redirectUri: `${world.relay.url}/oauth/callback`,
    settings: world.relay.client,
    timeout: 60,
    onLink: (link) => {
      links.push(link.url);
      assert.equal(link.pushed, true);
      assert.ok(link.expiresIn! > 0);
      person = authorizeInBrowser(browser, link.url, "consent", "bob");
    },
  });
  await person;
  assert.equal(links.length, 1);
  assert.equal(result.issuer, world.provider.issuer);
  assert.equal(result.claims?.sub, "bob");
  assert.equal(result.claims?.iss, world.provider.issuer);
  assert.equal(result.claims?.aud, PUBLIC_CLIENT);
  assert.equal(typeof result.claims?.nonce, "string");
  assert.ok(result.claims!.nonce!.length >= 43, "a 256-bit nonce");
  assert.equal((await userinfo(world.provider.issuer, result.tokens.access_token)).email, "bob@example.test");
});

test("without PAR the link carries the request itself: PKCE S256, a 256-bit state, a nonce", async () => {
  await using world = await setup(false);
  await using browser = await launchBrowser();
  await using cli = runLogin(["--issuer", world.provider.issuer, "--client-id", PUBLIC_CLIENT], world.env);
  const link = new URL(await cli.link);
  const params = link.searchParams;
  assert.equal(params.get("request_uri"), null);
  assert.equal(params.get("code_challenge_method"), "S256");
  assert.match(params.get("code_challenge")!, /^[A-Za-z0-9_-]{43}$/);
  assert.match(params.get("state")!, /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
  assert.match(params.get("nonce")!, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(params.get("redirect_uri"), `${world.relay.url}/oauth/callback`);
  assert.equal(params.get("scope"), "openid", "no preset: openid alone");
  await authorizeInBrowser(browser, link.href);
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.CODE, stderr);
  assert.equal(JSON.parse(stdout).token_type, "bearer");
});

test("a person who cancels at the provider: exit 6 with the provider's error and description", async () => {
  await using world = await setup();
  await using browser = await launchBrowser();
  await cancelEndToEnd(world, browser);
});

test("login() rejects with LoginDeniedError carrying the provider's error when the person cancels", async () => {
  await using world = await setup();
  await using browser = await launchBrowser();
  let person: Promise<unknown> | undefined;
  await assert.rejects(
    login({
      issuer: world.provider.issuer,
      clientId: PUBLIC_CLIENT,
      redirectUri: `${world.relay.url}/oauth/callback`,
      settings: world.relay.client,
      timeout: 60,
      onLink: (link) => person = authorizeInBrowser(browser, link.url, "cancel"),
    }),
    (error: unknown) => {
      assert.ok(error instanceof LoginDeniedError);
      assert.equal(error.code, "denied");
      assert.equal(error.error, "access_denied");
      assert.equal(error.errorDescription, "End-User aborted interaction");
      return true;
    },
  );
  await person;
});

test("the provider refuses the exchange of a client with the wrong secret: exit 7 and its error", async () => {
  await using world = await setup(false);
  await using browser = await launchBrowser();
  await using cli = runLogin(["--issuer", world.provider.issuer, "--client-id", CONFIDENTIAL_CLIENT.id], {
    ...world.env,
    OAUTH_CLIENT_SECRET: "not-the-secret",
  });
  await authorizeInBrowser(browser, await cli.link);
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.EXCHANGE_REFUSED, stderr);
  assert.equal(stdout, "");
  assert.match(stderr, /\noauth-relay: The provider refused to exchange the code: invalid_client \(.+\)\n$/);
});

test("the same client with the right secret from OAUTH_CLIENT_SECRET gets its tokens", async () => {
  await using world = await setup(false);
  await using browser = await launchBrowser();
  await using cli = runLogin(["--issuer", world.provider.issuer, "--client-id", CONFIDENTIAL_CLIENT.id], {
    ...world.env,
    OAUTH_CLIENT_SECRET: CONFIDENTIAL_CLIENT.secret,
  });
  await authorizeInBrowser(browser, await cli.link);
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.CODE, stderr);
  assert.equal(typeof JSON.parse(stdout).access_token, "string");
  assert.doesNotMatch(stderr, new RegExp(CONFIDENTIAL_CLIENT.secret));
});
