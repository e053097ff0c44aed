/**
 * The npm package's command, `oauth-relay` (its `bin`), run by the runtime that
 * runs this file, as a subprocess: Node and Bun run it as `npx oauth-relay`
 * and `bunx oauth-relay` do, Deno with `deno run` and the permissions of the
 * `login` task. The same commands, output and exit codes as `client.ts` on
 * Deno, against a real relay and a real OpenID provider (`support.mjs`).
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, realpath, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { PUBLIC_CLIENT, signIn, startOidcProvider, startRelay, userinfo } from "./support.mjs";

const PACKAGE = join(process.cwd(), "node_modules", "@org", "oauth-relay");
/** Exit codes of the CLI (`EXIT` in `src/cli/io.ts`). */
const EXIT = { CODE: 0, USAGE: 2, DENIED: 6 };

let dir, relay, provider, bin;

before(async () => {
  // The command as npm installs it: package.json's "bin", linked from node_modules/.bin.
  const { bin: bins } = JSON.parse(await readFile(join(PACKAGE, "package.json"), "utf8"));
  bin = resolve(PACKAGE, bins["oauth-relay"]);
  assert.equal(await realpath(join(process.cwd(), "node_modules", ".bin", "oauth-relay")), await realpath(bin));
  dir = await mkdtemp(join(tmpdir(), "oauth-relay-cross-cli-"));
  relay = await startRelay({ OAUTH_SOCKET_PATH: join(dir, "relay.sock") });
  provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
});

after(async () => {
  await provider?.stop();
  await relay?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** How this runtime runs the command: a file with `#!/usr/bin/env node` for Node, the same file for Bun and Deno. */
function command() {
  if (globalThis.Deno) {
    return [
      process.execPath,
      "run",
      "--quiet",
      "--allow-env",
      "--allow-net",
      "--allow-read",
      "--allow-write=/tmp",
      "--allow-sys=uid",
      bin,
    ];
  }
  return [process.execPath, bin];
}

/**
 * Runs `oauth-relay ARGS` with `env` added to this process's environment. `line(pattern)` resolves
 * with the first stderr line that matches; `output` with the exit code, stdout and stderr at the end.
 */
function run(args, env = {}) {
  const [program, ...rest] = command();
  const child = spawn(program, [...rest, ...args], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const watchers = new Set();
  child.stdout.setEncoding("utf8").on("data", (chunk) => stdout += chunk);
  child.stderr.setEncoding("utf8").on("data", (chunk) => {
    stderr += chunk;
    for (const watcher of watchers) {
      const found = stderr.split("\n").slice(0, -1).find((line) => watcher.pattern.test(line));
      if (found !== undefined) {
        watchers.delete(watcher);
        watcher.resolve(found);
      }
    }
  });
  const output = new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  const line = (pattern) =>
    Promise.race([
      new Promise((resolve) => watchers.add({ pattern, resolve })),
      output.then(({ code }) => Promise.reject(new Error(`exited with ${code} before ${pattern}:\n${stderr}`))),
    ]);
  return { line, output };
}

test("oauth-relay --help names the program and its commands; bad usage is one line and exit 2", async () => {
  const help = await run(["--help"]).output;
  assert.equal(help.code, EXIT.CODE, help.stderr);
  assert.match(help.stdout, /^Usage: oauth-relay \[command\] \[options\]\n/);
  assert.match(help.stdout, /\n {2}login {4}Sign in at a provider through the relay and print the tokens\n/);

  const bad = await run(["login", "--provider", "google"], { OAUTH_PUBLIC_URL: relay.url }).output;
  assert.equal(bad.code, EXIT.USAGE);
  assert.equal(bad.stdout, "");
  assert.equal(bad.stderr, "oauth-relay: --client-id is required; see --help\n");
});

test("oauth-relay --state S waits at the relay over the Unix socket and prints the code", async () => {
  const cli = run(["--state", "cli-state"], { OAUTH_SOCKET_PATH: relay.coordinator });
  await cli.line(/^oauth-relay: waiting for the callback$/);
  const answer = await fetch(`${relay.url}/oauth/callback?code=CLI_CODE&state=cli-state`);
  assert.equal(answer.status, 200);
  await answer.text();
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.CODE, stderr);
  assert.equal(stdout, "CLI_CODE\n");
});

test("oauth-relay login --out: a person signs in, the tokens are written with mode 0600, nothing on stdout", async () => {
  const out = join(dir, "tokens.json");
  const cli = run(["login", "--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT, "--out", out], {
    OAUTH_PUBLIC_URL: relay.url,
    OAUTH_SOCKET_PATH: relay.coordinator,
  });
  // The link stands alone on its line.
  const link = new URL(await cli.line(/^https?:\/\/\S+$/));
  assert.deepEqual([...link.searchParams.keys()], ["client_id", "request_uri"], "a pushed request (RFC 9126)");
  const page = await signIn(link.href, { login: "dave", relay: relay.url });
  assert.match(page.text, /Authorization Complete/);

  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.CODE, stderr);
  assert.equal(stdout, "");
  assert.match(stderr, /\noauth-relay: tokens written to .*tokens\.json \(mode 0600\)\n$/);
  assert.equal((await stat(out)).mode & 0o777, 0o600);
  assert.deepEqual((await readdir(dirname(out))).filter((name) => name.includes("tokens")), ["tokens.json"]);
  const tokens = JSON.parse(await readFile(out, "utf8"));
  assert.equal(tokens.token_type, "bearer");
  assert.equal((await userinfo(provider.issuer, tokens.access_token)).sub, "dave");
  assert.doesNotMatch(stderr, new RegExp(tokens.access_token), "no token on stderr");
});

test("oauth-relay login when the person cancels: exit 6 and the provider's error in one line", async () => {
  const cli = run(["login", "--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT], {
    OAUTH_PUBLIC_URL: relay.url,
    OAUTH_SOCKET_PATH: relay.coordinator,
  });
  const page = await signIn(await cli.line(/^https?:\/\/\S+$/), { decision: "cancel", relay: relay.url });
  assert.match(page.text, /Authorization Not Granted/);
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, EXIT.DENIED, stderr);
  assert.equal(stdout, "");
  assert.match(
    stderr,
    /\noauth-relay: The authorization was not granted: access_denied \(End-User aborted interaction\)\n$/,
  );
});
