/**
 * Test helpers: a real relay on a temp socket (or loopback TCP) and port 0,
 * a waiter that says when it is registered, and the CLI as a subprocess.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Settings } from "../src/client/settings.ts";
import { waitForCode, type WaitForCodeOptions } from "../src/client/wait.ts";
import { createLogger } from "../src/relay/log.ts";
import type { OAuthCallbackResult } from "../src/protocol/mod.ts";
import { type Relay, type RelayOptions, startRelay } from "../src/relay/relay.ts";

/** Both coordinator transports, to run a test in each. */
export const MODES = ["unix", "tcp"] as const;
export type Mode = typeof MODES[number];

/** A relay started for one test, removed with `await using`. */
export interface TestRelay extends AsyncDisposable {
  relay: Relay;
  /** Base URL of the HTTP side. */
  url: string;
  /** Settings a client needs to reach this relay's coordinator. */
  client: Partial<Settings>;
  /** Every log line, DEBUG included. */
  logs: string[];
  /** Resolves with the first log line (past or future) that matches `pattern`. */
  logged(pattern: RegExp): Promise<string>;
  /** Private temp directory of this relay. */
  dir: string;
  /** GET the callback path with `query` (a string or pairs). */
  callback(query: string | Record<string, string>, init?: RequestInit): Promise<Response>;
}

/** Starts a real relay on a fresh temp socket (or TCP port 0) and HTTP port 0. */
export async function startTestRelay(
  options: { mode?: Mode; settings?: Partial<Settings>; relay?: Partial<RelayOptions> } = {},
): Promise<TestRelay> {
  const dir = await Deno.makeTempDir({ prefix: "oauth-relay-test-" });
  const logs: string[] = [];
  const watchers = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  const onLine = (line: string) => {
    logs.push(line);
    for (const watcher of watchers) {
      if (watcher.pattern.test(line)) {
        watchers.delete(watcher);
        watcher.resolve(line);
      }
    }
  };
  const settings: Settings = {
    enabled: true,
    callbackPath: "/oauth/callback",
    codeKeys: ["code", "authorization_code"],
    socketPath: `${dir}/relay.sock`,
    tcpFallbackPort: 0,
    defaultTimeout: 30,
    logUnmatched: true,
    useTcp: options.mode === "tcp",
    tcpHost: "127.0.0.1",
    ...options.settings,
  };
  const relay = await startRelay({
    settings,
    port: 0,
    logger: createLogger("debug", onLine),
    ...options.relay,
  });
  const address = relay.coordinator;
  const client: Partial<Settings> = address?.transport === "tcp"
    ? { useTcp: true, tcpFallbackPort: address.port }
    : { useTcp: false, socketPath: settings.socketPath };
  return {
    relay,
    url: relay.url,
    client,
    logs,
    logged(pattern) {
      const past = logs.find((line) => pattern.test(line));
      if (past) return Promise.resolve(past);
      const { promise, resolve } = Promise.withResolvers<string>();
      watchers.add({ pattern, resolve });
      return promise;
    },
    dir,
    callback(query, init) {
      const search = typeof query === "string" ? query : new URLSearchParams(query).toString();
      return fetch(`${relay.url}${settings.callbackPath}${search ? `?${search}` : ""}`, init);
    },
    async [Symbol.asyncDispose]() {
      await relay.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A `waitForCode` call and a promise that settles once the relay holds its registration. */
export interface PendingWait {
  result: Promise<OAuthCallbackResult>;
  registered: Promise<void>;
}

/**
 * Starts `waitForCode` against `relay`; `registered` resolves on the relay's
 * acknowledgement (or rejects with the wait's error), so tests never sleep.
 */
export function wait(relay: TestRelay, options: WaitForCodeOptions = {}): PendingWait {
  const { promise: registered, resolve, reject } = Promise.withResolvers<void>();
  const result = waitForCode({
    ...options,
    settings: { ...relay.client, ...options.settings },
    onRegistered: (info) => {
      resolve();
      options.onRegistered?.(info);
    },
  });
  result.catch(reject);
  registered.catch(() => {});
  return { result, registered };
}

/** Reads a response body and returns it, so no body is left open. */
export async function body(response: Response): Promise<string> {
  return await response.text();
}

const CLIENT = new URL("../client.ts", import.meta.url).pathname;

/** The CLI as a running subprocess. */
export interface CliProcess extends AsyncDisposable {
  /** Resolves when the CLI says it is waiting (its registration is in place). */
  waiting: Promise<void>;
  /** Exit code, stdout and stderr once it ends. */
  output: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Runs `client.ts` with `args` as a subprocess with the task's permissions. */
export function runCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "--allow-env",
      "--allow-net",
      "--allow-read=/tmp",
      "--allow-write=/tmp",
      "--allow-sys=uid",
      CLIENT,
      ...args,
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { promise: waiting, resolve, reject } = Promise.withResolvers<void>();
  const decoder = new TextDecoder();
  const stderr = (async () => {
    let text = "";
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes("waiting for the callback")) resolve();
    }
    return text;
  })();
  const output = (async () => {
    const [stdout, status, err] = await Promise.all([
      new Response(child.stdout).text(),
      child.status,
      stderr,
    ]);
    reject(new Error(`CLI exited with ${status.code} before waiting: ${err}`));
    return { code: status.code, stdout, stderr: err };
  })();
  waiting.catch(() => {});
  return {
    waiting,
    output,
    async [Symbol.asyncDispose]() {
      try {
        child.kill();
      } catch { /* already exited */ }
      await output;
    },
  };
}

const ROOT = new URL("..", import.meta.url).pathname;
const SERVE_TASK: string = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.serve;

/** The flags of `deno task serve`, so the tests run the relay exactly as the task does. */
function serveArgs(): string[] {
  const words = SERVE_TASK.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"]);
  assert.equal(words.at(-1), "server.ts");
  return [...words.slice(1, -1), `${ROOT}server.ts`];
}

/** `server.ts` as a subprocess, started the way `deno task serve` starts it. */
export function startServer(env: Record<string, string>, cwd?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(),
    cwd,
    env: { OAUTH_LOG_LEVEL: "info", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { promise: ready, resolve } = Promise.withResolvers<string>();
  const watchers = new Set<{ pattern: RegExp; count: number; resolve: () => void }>();
  let text = "";
  const stderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const match = text.match(/HTTP listening on (\S+)/);
      if (match) resolve(match[1]);
      for (const watcher of watchers) {
        if ((text.match(new RegExp(watcher.pattern, "g")) ?? []).length >= watcher.count) {
          watchers.delete(watcher);
          watcher.resolve();
        }
      }
    }
    return text;
  })();
  const exited = (async () => {
    const [status, err] = await Promise.all([child.status, stderr, child.stdout.cancel()]);
    return { code: status.code, stderr: err };
  })();
  const url = Promise.race([
    ready,
    exited.then((e) => Promise.reject(new Error(`server exited ${e.code}: ${e.stderr}`))),
  ]);
  url.catch(() => {}); // Tests that expect a failed start read `exited` instead.
  return {
    child,
    url,
    exited,
    /** Resolves once stderr has shown `pattern` `count` times. */
    logged(pattern: RegExp, count = 1): Promise<void> {
      if ((text.match(new RegExp(pattern, "g")) ?? []).length >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      watchers.add({ pattern, count, resolve });
      return promise;
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await exited;
    },
  };
}

/** A temporary directory, removed with `await using`. */
export async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "oauth-relay-test-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
