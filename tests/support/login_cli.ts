/**
 * `client.ts login` as a subprocess, as a person runs it: the test reads the
 * authorize link from its stderr, and its exit code, stdout and stderr at the end.
 * Another program may stand in for `client.ts` (the npm package's command under Node).
 *
 * @module
 */

import assert from "node:assert/strict";
import { startTestRelay } from "../helpers.ts";
import { startOidcProvider } from "./oidc_provider.ts";

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
