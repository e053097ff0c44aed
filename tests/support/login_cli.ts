/**
 * `client.ts login` as a subprocess, as a person runs it: the test reads the
 * authorize link from its stderr, and its exit code, stdout and stderr at the end.
 * Another program may stand in for `client.ts` (the npm package's command under Node).
 *
 * @module
 */

import assert from "node:assert/strict";
import { body, startTestRelay } from "../helpers.ts";
import { authorizeInBrowser, type TestBrowser } from "./browser.ts";
import { PUBLIC_CLIENT, startOidcProvider } from "./oidc_provider.ts";
import { EXIT } from "../../src/cli/io.ts";

const CLIENT = new URL("../../client.ts", import.meta.url).pathname;

/** The permissions of the `login` task. */
export const LOGIN_PERMISSIONS = [
  "--allow-env",
  "--allow-net",
  "--allow-read=/tmp",
  "--allow-write=/tmp",
  "--allow-sys=uid",
];

/** A running `client.ts login`. */
export interface LoginProcess extends AsyncDisposable {
  /** Resolves with the authorize link, once the CLI shows it; rejects if it exits first. */
  link: Promise<string>;
  /** Exit code, stdout and stderr once it ends. */
  output: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** `client.ts` run by Deno with the `login` task's permissions: the program {@linkcode runLogin} runs by default. */
export const DENO_CLIENT: readonly string[] = [Deno.execPath(), "run", "-q", ...LOGIN_PERMISSIONS, CLIENT];

/**
 * Runs `PROGRAM login ARGS` with `env` added to the environment.
 *
 * @param program The command and its first arguments, e.g. `["node", "…/bin.js"]`. Default: `client.ts` on Deno.
 */
export function runLogin(
  args: string[],
  env: Record<string, string> = {},
  program: readonly string[] = DENO_CLIENT,
): LoginProcess {
  const child = new Deno.Command(program[0], {
    args: [...program.slice(1), "login", ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { promise: link, resolve, reject } = Promise.withResolvers<string>();
  link.catch(() => {});
  const stderr = (async () => {
    let text = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      // The link stands alone on its line.
      const line = text.split("\n").slice(0, -1).find((line) => /^https?:\/\/\S+$/.test(line));
      if (line) resolve(line);
    }
    return text;
  })();
  const output = (async () => {
    const [stdout, status, err] = await Promise.all([new Response(child.stdout).text(), child.status, stderr]);
    reject(new Error(`login exited with ${status.code} before showing a link: ${err}`));
    return { code: status.code, stdout, stderr: err };
  })();
  return {
    link,
    output,
    async [Symbol.asyncDispose]() {
      try {
        child.kill();
      } catch { /* exited */ }
      await output;
    },
  };
}

/**
 * A relay, a provider whose clients redirect to it, and the CLI's environment to use both.
 *
 * @param par Whether the provider offers pushed authorization requests.
 */
export async function loginWorld(par = true) {
  const relay = await startTestRelay();
  const provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`], par });
  return {
    relay,
    provider,
    /** The relay's public URL is its redirect URI's base; the socket is the coordinator's. */
    env: { OAUTH_PUBLIC_URL: relay.url, OAUTH_SOCKET_PATH: relay.client.socketPath! },
    async [Symbol.asyncDispose]() {
      await provider[Symbol.asyncDispose]();
      await relay[Symbol.asyncDispose]();
    },
  };
}

/** The provider's userinfo for `accessToken`: the token is real. */
export async function userinfo(issuer: string, accessToken: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body;
}

/** The person: opens the link, and their browser follows the provider's redirect to the relay. */
export async function authorize(link: string): Promise<void> {
  const answer = await fetch(link, { redirect: "manual" });
  await body(answer);
  assert.equal(answer.status, 302);
  await body(await fetch(answer.headers.get("location")!));
}

/**
 * The sign-in every runtime's end-to-end test checks: `login --scope "openid email"` run by `program`, its link a
 * pushed request (RFC 9126 §4), `user` signing in with Chromium, the page complete at the relay, one line of JSON on
 * stdout whose access token the provider's userinfo takes for `user`, and on stderr the link's lifetime, no terminal
 * colours and no token.
 *
 * @returns The link, the tokens and stderr, for the caller's own checks.
 */
export async function signInEndToEnd(
  world: Awaited<ReturnType<typeof loginWorld>>,
  browser: TestBrowser,
  user = "alice",
  program: readonly string[] = DENO_CLIENT,
): Promise<{ link: URL; tokens: Record<string, string>; stderr: string }> {
  await using cli = runLogin(
    ["--issuer", world.provider.issuer, "--client-id", PUBLIC_CLIENT, "--scope", "openid email"],
    world.env,
    program,
  );
  const link = new URL(await cli.link);
  // PAR: the link names the pushed request, nothing of it (RFC 9126 §4).
  assert.deepEqual([...link.searchParams.keys()], ["client_id", "request_uri"]);
  const page = await authorizeInBrowser(browser, link.href, "consent", user);
  assert.match(page.text, /Authorization Complete/);
  assert.equal(new URL(page.url).origin, world.relay.url);

  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.CODE, stderr);
  assert.equal(stdout.split("\n").length, 2, "one line of JSON");
  const tokens = JSON.parse(stdout);
  assert.equal(tokens.token_type, "bearer");
  assert.equal(tokens.scope, "openid email");
  assert.deepEqual(await userinfo(world.provider.issuer, tokens.access_token), {
    sub: user,
    email: `${user}@example.test`,
    email_verified: true,
  });
  // The provider's pushed request lasts 60 seconds, less than the wait: the person is told.
  assert.match(stderr, /\noauth-relay: open it within 60 seconds \(the provider's limit\)\n/);
  // No QR code and no countdown when stderr is not a terminal.
  // deno-lint-ignore no-control-regex -- ESC starts every terminal colour
  assert.doesNotMatch(stderr, /\x1b\[/);
  assert.doesNotMatch(stderr, new RegExp(tokens.access_token), "no token on stderr");
  return { link, tokens, stderr };
}

/**
 * The person cancels at the provider, as every runtime's end-to-end test checks: the relay's page says not granted,
 * `login` run by `program` exits 6 with nothing on stdout and the provider's error and description on stderr.
 */
export async function cancelEndToEnd(
  world: Awaited<ReturnType<typeof loginWorld>>,
  browser: TestBrowser,
  program: readonly string[] = DENO_CLIENT,
): Promise<void> {
  await using cli = runLogin(["--issuer", world.provider.issuer, "--client-id", PUBLIC_CLIENT], world.env, program);
  const page = await authorizeInBrowser(browser, await cli.link, "cancel");
  assert.match(page.text, /Authorization Not Granted/);
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.DENIED);
  assert.equal(stdout, "");
  assert.match(
    stderr,
    /\noauth-relay: The authorization was not granted: access_denied \(End-User aborted interaction\)\n$/,
  );
}
