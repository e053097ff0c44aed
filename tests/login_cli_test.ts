/**
 * `client.ts login` without a person at the provider: bad usage, the QR
 * switch, a GitHub-style provider given by its endpoints, and each way it
 * can fail, with its exit code and one line on stderr. Against real relays
 * and real servers (`oidc-provider`, `oauth2-mock-server`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Events, type MutableRedirectUri, type MutableResponse, OAuth2Server } from "oauth2-mock-server";
import { main } from "../src/cli/main.ts";
import { EXIT } from "../src/cli/io.ts";
import { startTestRelay, tempDir } from "./helpers.ts";
import { authorize, runLogin } from "./support/login_cli.ts";
import { CONFIDENTIAL_CLIENT, PUBLIC_CLIENT, startOidcProvider } from "./support/oidc_provider.ts";

/** Runs `main(["login", ...args])` in-process with `env` as the whole environment. */
async function loginMain(args: string[], env: Record<string, string> = {}) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(["login", ...args], {
    stdout: (text) => stdout.push(text),
    stderr: (text) => stderr.push(text),
    env,
  });
  return { code, stdout, stderr };
}

const PUBLIC = { OAUTH_PUBLIC_URL: "https://relay.example" };

Deno.test("login: bad usage exits 2 with one line on stderr, before anything is contacted", async (t) => {
  const cases: [string[], RegExp, Record<string, string>?][] = [
    [[], /--client-id is required/],
    [["--client-id", "c"], /no provider: give --issuer URL, --provider NAME, or --authorization-endpoint/],
    [["--client-id", "c", "--provider", "yahoo"], /--provider must be one of github, google, microsoft, gitlab/],
    [["--client-id", "c", "--authorization-endpoint", "https://p.example/a"], /go together/],
    [["--client-id", "c", "--issuer", "https://p.example", "--client-secret", "s"], /Unknown option '--client-secret'/],
    [
      ["--client-id", "c", "--issuer", "http://p.example"],
      /issuer must use https:\/\/ \(http:\/\/ only on a loopback host\)/,
      PUBLIC,
    ],
    [["--client-id", "c", "--issuer", "not a url"], /issuer must be a URL/, PUBLIC],
    [["--client-id", "c", "--issuer", "https://p.example"], /No redirect URI: set OAUTH_PUBLIC_URL/],
    [["--client-id", "c", "--issuer", "https://p.example"], /OAUTH_PUBLIC_URL must use https:\/\//, {
      OAUTH_PUBLIC_URL: "http://relay.example",
    }],
    [
      ["--client-id", "c", "--issuer", "https://p.example", "--redirect-uri", "http://relay.example/cb"],
      /redirect URI must use https/,
    ],
    [
      ["--client-id", "c", "--provider", "github", "--scope", "openid"],
      /asks for openid, but no issuer is known/,
      PUBLIC,
    ],
    [["--client-id", "c", "--provider", "google", "--scope", " "], /--scope must not be empty/],
    [["--client-id", "c", "--provider", "google", "--param", "prompt"], /--param must be name=value/],
    [
      ["--client-id", "c", "--provider", "google", "--param", "state=mine"],
      /parameter state is set by the login itself/,
      PUBLIC,
    ],
    [["--client-id", "c", "--provider", "google", "--timeout", "soon"], /--timeout must be a positive number/],
    [["--client-id", "c", "--provider", "google", "--relay", "http://relay.example"], /--relay must use https:\/\//],
    [
      ["--client-id", "c", "--provider", "google", "--out", "/tmp/oauth-relay-absent/tokens.json"],
      /--out: Cannot write \/tmp\/oauth-relay-absent\/tokens\.json: no such file or directory/,
    ],
    [["--client-id", "c", "--provider", "google", "--out", "/tmp"], /--out: Cannot write \/tmp: it is a directory/],
    [["--client-id", "c", "--provider", "google", "extra"], /Unexpected argument 'extra'/],
  ];
  for (const [args, message, env] of cases) {
    await t.step(args.join(" ") || "(no arguments)", async () => {
      const { code, stdout, stderr } = await loginMain(args, env);
      assert.equal(code, EXIT.USAGE, stderr.join("\n"));
      assert.deepEqual(stdout, []);
      assert.equal(stderr.length, 1, stderr.join("\n"));
      assert.match(stderr[0], message);
      assert.match(stderr[0], /^oauth-relay: .*; see --help$/);
    });
  }
});

Deno.test("login --help documents the flags, the secret's source and the exit codes; the top help lists login", async () => {
  const { code, stdout } = await loginMain(["--help"]);
  assert.equal(code, EXIT.CODE);
  for (
    const flag of [
      "--issuer",
      "--authorization-endpoint",
      "--token-endpoint",
      "--provider",
      "--client-id",
      "--scope",
      "--redirect-uri",
      "--out",
      "--qr, --no-qr",
      "--relay",
      "OAUTH_CLIENT_SECRET",
      "OAUTH_PUBLIC_URL",
      "Exit codes",
    ]
  ) {
    assert.ok(stdout[0].includes(flag), flag);
  }
  assert.match(stdout[0], /^Usage: .*client\.ts login \[options\]/);
  const top = await main(["--help"], { stdout: (text) => stdout.push(text), stderr: () => {} });
  assert.equal(top, EXIT.CODE);
  assert.match(stdout.at(-1)!, /\n {2}login +Sign in at a provider through the relay and print the tokens/);
});

Deno.test("login exits 3 with one line when nobody authorizes before the timeout", async () => {
  await using relay = await startTestRelay();
  await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
  await using cli = runLogin(["--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT, "--timeout", "1"], {
    OAUTH_PUBLIC_URL: relay.url,
    OAUTH_SOCKET_PATH: relay.client.socketPath!,
  });
  await cli.link;
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.TIMEOUT);
  assert.equal(stdout, "");
  assert.match(
    stderr,
    /\noauth-relay: No callback for this state within 1 second \(relay at .*\); start again or raise the timeout\n$/,
  );
});

Deno.test("login exits 4 with one line when the relay is not running, and shows no link", async () => {
  await using tmp = await tempDir();
  await using relay = await startTestRelay();
  await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
  await using cli = runLogin(["--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT], {
    OAUTH_PUBLIC_URL: relay.url,
    OAUTH_SOCKET_PATH: `${tmp.path}/absent.sock`,
  });
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.UNREACHABLE);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    `oauth-relay: Cannot connect to relay at ${tmp.path}/absent.sock: no such socket; is the relay running?\n`,
  );
});

Deno.test("login exits 5 when the relay refuses the wait (no remote waiting there)", async () => {
  await using relay = await startTestRelay();
  await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
  const { code, stderr } = await loginMain(
    ["--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT, "--relay", relay.url],
    { OAUTH_PUBLIC_URL: relay.url },
  );
  assert.equal(code, EXIT.REFUSED);
  assert.deepEqual(stderr, [
    `oauth-relay: ${relay.url}/v1/wait does not offer remote waiting (is OAUTH_CLIENT_TOKENS set at the relay?) (relay at ${relay.url})`,
  ]);
});

Deno.test("login exits 9 when the provider cannot be used: unreachable, or it refuses the pushed request", async (t) => {
  await using relay = await startTestRelay();
  const env = { OAUTH_PUBLIC_URL: relay.url, OAUTH_SOCKET_PATH: relay.client.socketPath! };
  await t.step("nothing listens at the issuer", async () => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const issuer = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
    closed.close();
    const { code, stderr } = await loginMain(["--issuer", issuer, "--client-id", "c"], env);
    assert.equal(code, EXIT.PROVIDER);
    assert.deepEqual(stderr, [`oauth-relay: Cannot reach the provider at ${issuer}: connection refused`]);
  });
  await t.step("a confidential client with the wrong secret, at the PAR endpoint", async () => {
    await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
    const { code, stderr } = await loginMain(["--issuer", provider.issuer, "--client-id", CONFIDENTIAL_CLIENT.id], {
      ...env,
      OAUTH_CLIENT_SECRET: "not-the-secret",
    });
    assert.equal(code, EXIT.PROVIDER);
    assert.equal(stderr.length, 1);
    assert.match(stderr[0], /^oauth-relay: The provider refused the pushed authorization request: invalid_client \(/);
  });
  await t.step("no metadata at the issuer", async () => {
    await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
    const { code, stderr } = await loginMain(["--issuer", `${provider.issuer}/elsewhere`, "--client-id", "c"], env);
    assert.equal(code, EXIT.PROVIDER);
    assert.match(
      stderr[0],
      /^oauth-relay: No metadata for the issuer .*\/elsewhere \(.* answered 404; .* answered 404\): check the issuer/,
    );
  });
});

/** The CLI's flags for the GitHub-like provider: explicit endpoints, a client id and a scope. */
function gitHubLikeArgs(provider: { base: string }): string[] {
  return [
    "--authorization-endpoint",
    `${provider.base}/authorize`,
    "--token-endpoint",
    `${provider.base}/token`,
    "--client-id",
    "github-like",
    "--scope",
    "read:user",
  ];
}

/**
 * oauth2-mock-server as GitHub is: no metadata used, no ID token, and whatever the test records.
 *
 * @param tamper Changes each token response before it is sent.
 */
async function startGitHubLike(tamper: (response: Record<string, unknown>) => void = () => {}) {
  const server = new OAuth2Server();
  await server.issuer.keys.generate("RS256");
  await server.start(0, "127.0.0.1");
  const base = `http://127.0.0.1:${server.address().port}`;
  const authorizeRequests: URL[] = [];
  const tokenRequests: { authorization?: string; body: Record<string, unknown> }[] = [];
  const tokenResponses: Record<string, unknown>[] = [];
  server.service.on(Events.BeforeAuthorizeRedirect, (_redirect: MutableRedirectUri, req: { url?: string }) => {
    authorizeRequests.push(new URL(req.url!, base));
  });
  server.service.on(
    Events.BeforeResponse,
    (response: MutableResponse, req: { headers: Record<string, string>; body: Record<string, unknown> }) => {
      // GitHub answers an OAuth 2.0 token response: no ID token.
      delete (response.body as Record<string, unknown>).id_token;
      tokenResponses.push({ ...response.body as Record<string, unknown> });
      tamper(response.body as Record<string, unknown>);
      tokenRequests.push({ authorization: req.headers.authorization, body: req.body });
    },
  );
  return {
    base,
    authorizeRequests,
    tokenRequests,
    tokenResponses,
    async [Symbol.asyncDispose]() {
      await server.stop();
    },
  };
}

Deno.test("login with explicit endpoints (a provider without metadata, as GitHub) prints the tokens", async () => {
  await using relay = await startTestRelay();
  await using provider = await startGitHubLike();
  await using cli = runLogin(gitHubLikeArgs(provider), {
    OAUTH_PUBLIC_URL: relay.url,
    OAUTH_SOCKET_PATH: relay.client.socketPath!,
    OAUTH_CLIENT_SECRET: "gh-secret",
  });
  const link = new URL(await cli.link);
  assert.equal(link.origin + link.pathname, `${provider.base}/authorize`);
  // The person's browser: the provider redirects at once, to the relay.
  await authorize(link.href);

  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.CODE, stderr);
  const tokens = JSON.parse(stdout);
  assert.equal(tokens.token_type, "bearer");
  assert.equal(tokens.id_token, undefined);
  // PKCE even here, no nonce without openid; the secret went in a Basic header (RFC 6749 §2.3.1), never the link.
  const [authorizeRequest] = provider.authorizeRequests;
  assert.equal(authorizeRequest.searchParams.get("code_challenge_method"), "S256");
  assert.equal(authorizeRequest.searchParams.get("nonce"), null);
  assert.doesNotMatch(authorizeRequest.href, /gh-secret/);
  const [exchange] = provider.tokenRequests;
  const [id, secret] = atob(exchange.authorization!.replace(/^Basic /, "")).split(":").map(decodeURIComponent);
  assert.deepEqual([id, secret], ["github-like", "gh-secret"]);
  assert.match(String(exchange.body.code_verifier), /^[A-Za-z0-9_-]{43}$/);
});

Deno.test("login exits 7 with one line, and no token on stderr, when the token response has an unknown token type", async () => {
  await using relay = await startTestRelay();
  await using provider = await startGitHubLike((response) => response.token_type = "mac");
  await using cli = runLogin(gitHubLikeArgs(provider), {
    OAUTH_PUBLIC_URL: relay.url,
    OAUTH_SOCKET_PATH: relay.client.socketPath!,
  });
  await authorize(await cli.link);

  const { code, stdout, stderr } = await cli.output;
  const accessToken = String(provider.tokenResponses[0]?.access_token);
  assert.ok(accessToken.length > 8, "the provider sent a token");
  assert.ok(!stderr.includes(accessToken), stderr);
  assert.equal(stdout, "");
  assert.equal(code, EXIT.EXCHANGE_REFUSED, stderr);
  assert.equal(
    stderr.split("\n").at(-2),
    "oauth-relay: The provider's token response cannot be used: unsupported `token_type` value",
  );
});

Deno.test("login --qr with a link too long for a QR code shows the link, says so, and carries on", async () => {
  await using relay = await startTestRelay();
  await using provider = await startGitHubLike();
  const { code, stdout, stderr } = await loginMain([
    ...gitHubLikeArgs(provider),
    "--param",
    `login_hint=${"x".repeat(3000)}`,
    "--qr",
    "--timeout",
    "1",
  ], { OAUTH_PUBLIC_URL: relay.url, OAUTH_SOCKET_PATH: relay.client.socketPath! });
  assert.equal(code, EXIT.TIMEOUT, stderr.join("\n"));
  assert.deepEqual(stdout, []);
  assert.match(stderr[1], /^http:\/\/127\.0\.0\.1:\d+\/authorize\?.*login_hint=x{3000}/);
  assert.equal(stderr[2], "oauth-relay: no QR code: the link is too long for one; open the link itself");
  assert.match(stderr[3], /^oauth-relay: No callback for this state within 1 second/);
  assert.equal(stderr.length, 4);
});

Deno.test("login --qr draws the QR code under the link even when stderr is not a terminal; --no-qr none", async (t) => {
  await using relay = await startTestRelay();
  await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
  const env = { OAUTH_PUBLIC_URL: relay.url, OAUTH_SOCKET_PATH: relay.client.socketPath! };
  for (const [flag, drawn] of [["--qr", true], ["--no-qr", false]] as const) {
    await t.step(flag, async () => {
      await using cli = runLogin(
        ["--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT, "--timeout", "1", flag],
        env,
      );
      const link = await cli.link;
      const { code, stderr } = await cli.output;
      assert.equal(code, EXIT.TIMEOUT);
      const lines = stderr.split("\n");
      const at = lines.indexOf(link);
      assert.ok(at > 0);
      const qrLines = lines.filter((line) => line.startsWith("\x1b[38;5;231m\x1b[48;5;16m"));
      if (drawn) {
        assert.ok(qrLines.length >= 20 && qrLines.length <= 24, `${qrLines.length} lines`);
        assert.equal(lines[at + 1], qrLines[0], "the code stands right under the link");
      } else {
        assert.deepEqual(qrLines, []);
      }
      assert.doesNotMatch(stderr, /left to authorize/, "no countdown off a terminal");
    });
  }
});

Deno.test("the relay's /health shows OAUTH_PUBLIC_URL and the redirect URI to register", async () => {
  await using relay = await startTestRelay({ settings: { publicUrl: "https://relay.example" } });
  const health = await (await fetch(`${relay.url}/health`)).json();
  assert.equal(health.publicUrl, "https://relay.example");
  assert.equal(health.redirectUri, "https://relay.example/oauth/callback");
});

Deno.test("mod.ts loads no package: oauth4webapi and uqr are for the login entry point only", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../mod.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[] }[];
  };
  const bySpecifier = new Map(graph.modules.map((module) => [module.specifier, module]));
  // What mod.ts loads when imported: its static imports, not the CLI that client.ts loads when run as a program.
  const loaded = new Set<string>();
  const visit = (specifier: string) => {
    if (loaded.has(specifier)) return;
    loaded.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code && !dependency.isDynamic) visit(dependency.code.specifier);
    }
  };
  visit(graph.roots[0]);
  assert.ok(loaded.size > 5);
  assert.deepEqual([...loaded].filter((specifier) => !specifier.startsWith("file:")), []);
  assert.deepEqual([...loaded].filter((specifier) => /\/src\/login\//.test(specifier)), []);
});
