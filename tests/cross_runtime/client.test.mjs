/**
 * The client as a Node, Bun or Deno program uses it: the built package
 * (`@org/oauth-relay` from `dist/npm`, installed next to a copy of this file
 * by `run.ts`), against real relays this file starts as subprocesses
 * (`deno run server.ts`, port 0, a temp socket; `support.mjs`), over the Unix socket,
 * loopback TCP with the coordinator token, and HTTPS. Plain ESM on
 * `node:test` and `node:assert`, which `deno test`, `node --test` and
 * `bun test` all run.
 *
 * Run by `deno task test:cross-runtime` (`run.ts`), which passes what
 * `support.mjs` reads and, with openssl, `CROSS_RUNTIME_TLS` (a directory with
 * `server.crt`/`server.key` signed by a CA this runtime was told to trust, and
 * `untrusted.crt`/`untrusted.key` signed by one it was not).
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { ERROR_CODES, OAuthConnectionError, OAuthRelayError, OAuthTimeoutError, waitForCode } from "@org/oauth-relay";
import { startRelay } from "./support.mjs";

const TLS = process.env.CROSS_RUNTIME_TLS;
const COORDINATOR_TOKEN = "cross-runtime-coordinator-token-0123";
const CLIENT_TOKEN = "cross-runtime-client-token-0123456789abcdef";
const isRoot = process.getuid?.() === 0;

/** GETs the callback of `relay` with `query`; resolves with the status once the page is read. */
async function callback(relay, query) {
  const response = await fetch(`${relay.url}/oauth/callback?${new URLSearchParams(query)}`);
  await response.text();
  return response.status;
}

/** Starts `waitForCode`; `registered` resolves once the relay holds the registration (or rejects with the wait). */
function wait(options) {
  let registered;
  const once = new Promise((resolve) => registered = resolve);
  const result = waitForCode({ timeout: 30, ...options, onRegistered: registered });
  result.catch(() => {});
  return { result, registered: Promise.race([once, result.then(() => {})]) };
}

/** A loopback port nothing listens on (just released by the system). */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let dir;
/** @type {Record<string, Awaited<ReturnType<typeof startRelay>>>} */
const relays = {};
let unix, tcp, https;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "oauth-relay-cross-"));
  const starting = {
    unix: startRelay({ OAUTH_SOCKET_PATH: join(dir, "relay.sock") }),
    tcp: startRelay({
      OAUTH_USE_TCP: "true",
      OAUTH_TCP_FALLBACK_PORT: "0",
      OAUTH_COORDINATOR_TOKEN: COORDINATOR_TOKEN,
    }),
  };
  if (TLS) {
    for (const name of ["server", "untrusted"]) {
      starting[name] = startRelay({
        OAUTH_SOCKET_PATH: join(dir, `${name}.sock`),
        OAUTH_TLS_CERT_FILE: join(TLS, `${name}.crt`),
        OAUTH_TLS_KEY_FILE: join(TLS, `${name}.key`),
        OAUTH_CLIENT_TOKENS: CLIENT_TOKEN,
      });
    }
  }
  // Every relay is stopped in after(), also when another failed to start.
  const settled = await Promise.allSettled(Object.values(starting));
  Object.keys(starting).forEach((name, i) => {
    if (settled[i].status === "fulfilled") relays[name] = settled[i].value;
  });
  const failure = settled.find((outcome) => outcome.status === "rejected");
  if (failure) throw failure.reason;
  unix = { useTcp: false, socketPath: relays.unix.coordinator };
  const [hostname, port] = relays.tcp.coordinator.split(/:(?=\d+$)/);
  tcp = { useTcp: true, tcpHost: hostname, tcpFallbackPort: Number(port), token: COORDINATOR_TOKEN };
  if (TLS) https = { relayUrl: relays.server.url, clientToken: CLIENT_TOKEN };
});

after(async () => {
  await Promise.all(Object.values(relays).map((relay) => relay.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

const noTls = TLS ? false : "no openssl: no certificates for HTTPS";

test("waitForCode() gets the code over the Unix socket", async () => {
  const { result, registered } = wait({ state: "unix-1", settings: unix });
  await registered;
  assert.equal(await callback(relays.unix, { code: "UNIX_CODE", state: "unix-1" }), 200);
  assert.deepEqual(await result, {
    success: true,
    code: "UNIX_CODE",
    state: "unix-1",
    raw: { code: "UNIX_CODE", state: "unix-1" },
  });
});

test("waitForCode() reads OAUTH_* settings from the environment", async () => {
  const saved = { OAUTH_SOCKET_PATH: process.env.OAUTH_SOCKET_PATH, OAUTH_USE_TCP: process.env.OAUTH_USE_TCP };
  process.env.OAUTH_SOCKET_PATH = relays.unix.coordinator;
  process.env.OAUTH_USE_TCP = "false";
  try {
    const { result, registered } = wait({ state: "from-env" });
    await registered;
    await callback(relays.unix, { code: "ENV_CODE", state: "from-env" });
    assert.equal((await result).code, "ENV_CODE");
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});

test("waitForCode() gets the code over loopback TCP after the coordinator token handshake", async () => {
  const { result, registered } = wait({ state: "tcp-1", settings: tcp });
  await registered;
  await callback(relays.tcp, { code: "TCP_CODE", state: "tcp-1" });
  assert.equal((await result).code, "TCP_CODE");
});

test("waitForCode() refuses a TCP relay that cannot prove it knows the coordinator token", async () => {
  await assert.rejects(
    waitForCode({ state: "tcp-wrong", settings: { ...tcp, token: "not-the-relay-token-0123456789" } }),
    (error) => {
      assert.ok(error instanceof OAuthConnectionError, String(error));
      assert.match(error.message, /did not prove it knows the coordinator token \(wrong proof\)/);
      return true;
    },
  );
});

test("waitForCode() gets the code over HTTPS with a client token", { skip: noTls }, async () => {
  const { result, registered } = wait({ state: "https-1", settings: https });
  await registered;
  assert.equal(await callback(relays.server, { code: "TLS_CODE", state: "https-1" }), 200);
  assert.deepEqual(await result, {
    success: true,
    code: "TLS_CODE",
    state: "https-1",
    raw: { code: "TLS_CODE", state: "https-1" },
  });
});

test("waitForCode() refuses an HTTPS relay whose certificate it does not trust", { skip: noTls }, async () => {
  await assert.rejects(
    waitForCode({ state: "untrusted", settings: { relayUrl: relays.untrusted.url, clientToken: CLIENT_TOKEN } }),
    (error) => {
      assert.ok(error instanceof OAuthConnectionError, String(error));
      assert.match(error.message, /^Cannot connect to relay at https:\/\/127\.0\.0\.1:\d+: TLS failed: /);
      return true;
    },
  );
});

test("waitForCode() rejects with OAuthTimeoutError when no callback comes in time", async () => {
  await assert.rejects(waitForCode({ state: "slow", timeout: 0.3, settings: unix }), (error) => {
    assert.ok(error instanceof OAuthTimeoutError, String(error));
    assert.ok(error instanceof OAuthRelayError);
    assert.equal(error.name, "OAuthTimeoutError");
    assert.equal(error.code, ERROR_CODES.TIMEOUT);
    assert.equal(
      error.message,
      `No callback for this state within 0.3 seconds (relay at ${unix.socketPath}); start again or raise the timeout`,
    );
    return true;
  });
});

test("waitForCode() reports a relay that is not running at once: connection refused, no such socket", async () => {
  const port = await freePort();
  await assert.rejects(
    waitForCode({ state: "s", settings: { useTcp: true, tcpHost: "127.0.0.1", tcpFallbackPort: port } }),
    (error) => {
      assert.ok(error instanceof OAuthConnectionError, String(error));
      assert.equal(error.name, "OAuthConnectionError");
      assert.equal(error.code, ERROR_CODES.CONNECTION);
      assert.equal(
        error.message,
        `Cannot connect to relay at 127.0.0.1:${port}: connection refused; is the relay running?`,
      );
      return true;
    },
  );
  const missing = join(dir, "missing.sock");
  await assert.rejects(waitForCode({ state: "s", settings: { useTcp: false, socketPath: missing } }), (error) => {
    assert.ok(error instanceof OAuthConnectionError, String(error));
    assert.equal(error.message, `Cannot connect to relay at ${missing}: no such socket; is the relay running?`);
    return true;
  });
});

test("waitForCode() refuses a path that is not a socket", async () => {
  const path = join(dir, "plain-file.sock");
  await writeFile(path, "not a relay");
  await assert.rejects(waitForCode({ state: "s", settings: { useTcp: false, socketPath: path } }), (error) => {
    assert.ok(error instanceof OAuthConnectionError, String(error));
    assert.equal(error.message, `Cannot connect to relay at ${path}: ${path} is not a socket; refusing it`);
    return true;
  });
});

test("waitForCode() refuses a socket another user owns, and never connects to it", {
  skip: isRoot ? false : "changing a socket's owner needs root",
}, async () => {
  const path = join(dir, "squatted.sock");
  let connections = 0;
  const squatter = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise((resolve) => squatter.listen(path, resolve));
  try {
    await chown(path, 4242, 4242);
    await assert.rejects(waitForCode({ state: "s", settings: { useTcp: false, socketPath: path } }), (error) => {
      assert.ok(error instanceof OAuthConnectionError, String(error));
      assert.equal(
        error.message,
        `Cannot connect to relay at ${path}: the socket is owned by uid 4242, not by this user (uid 0) or root; ` +
          "refusing it (set OAUTH_RELAY_UID=4242 if that account runs the relay)",
      );
      return true;
    });
  } finally {
    await new Promise((resolve) => squatter.close(resolve));
  }
  assert.equal(connections, 0);
});

test("a newer single-slot waiter supersedes the older one, which rejects with code superseded", async () => {
  const first = wait({ settings: unix });
  await first.registered;
  const second = wait({ settings: unix });
  await assert.rejects(first.result, (error) => {
    assert.ok(error instanceof OAuthRelayError, String(error));
    assert.equal(error.code, ERROR_CODES.SUPERSEDED);
    return true;
  });
  await second.registered;
  await callback(relays.unix, { code: "SLOT_CODE" });
  assert.deepEqual(await second.result, { success: true, code: "SLOT_CODE", state: null, raw: { code: "SLOT_CODE" } });
});

test("a second waiter for a state already waited for is refused with state_taken; the first gets the code", async () => {
  const first = wait({ state: "taken", settings: unix });
  await first.registered;
  await assert.rejects(waitForCode({ state: "taken", settings: unix }), (error) => {
    assert.ok(error instanceof OAuthRelayError, String(error));
    assert.equal(error.code, ERROR_CODES.STATE_TAKEN);
    return true;
  });
  await callback(relays.unix, { code: "FIRST_CODE", state: "taken" });
  assert.equal((await first.result).code, "FIRST_CODE");
});

test("an AbortSignal cancels the wait with its reason, and the relay frees the state", async () => {
  const already = AbortSignal.abort(new Error("never started"));
  await assert.rejects(waitForCode({ state: "cancel", settings: unix, signal: already }), /never started/);

  const controller = new AbortController();
  const reason = new Error("cancelled by the test");
  const cancelled = wait({ state: "cancel", settings: unix, signal: controller.signal });
  await cancelled.registered;
  controller.abort(reason);
  await assert.rejects(cancelled.result, (error) => error === reason);
  await relays.unix.logged(/Client for state 'cancel' disconnected before its callback/);

  const again = wait({ state: "cancel", settings: unix });
  await again.registered;
  await callback(relays.unix, { code: "AFTER_CANCEL", state: "cancel" });
  assert.equal((await again.result).code, "AFTER_CANCEL");
});

test("an AbortSignal cancels a wait over HTTPS, and the relay frees the state at once", { skip: noTls }, async () => {
  const controller = new AbortController();
  const reason = new Error("cancelled over HTTPS");
  const cancelled = wait({ state: "cancel-https", settings: https, signal: controller.signal });
  await cancelled.registered;
  controller.abort(reason);
  await assert.rejects(cancelled.result, (error) => error === reason);
  await relays.server.logged(/Client cancelled its wait for state: 'cancel-https'/);

  const again = wait({ state: "cancel-https", settings: https });
  await again.registered;
  await callback(relays.server, { code: "HTTPS_AGAIN", state: "cancel-https" });
  assert.equal((await again.result).code, "HTTPS_AGAIN");
});

test("200 waits at once in one process, over every transport: each gets its own code", async () => {
  const transports = [["unix", unix, relays.unix], ["tcp", tcp, relays.tcp]];
  if (TLS) transports.push(["https", https, relays.server]);
  const flows = Array.from({ length: 200 }, (_, i) => {
    const [name, settings, relay] = transports[i % transports.length];
    const state = `many-${name}-${i}`;
    return { state, code: `CODE-${state}`, relay, pending: wait({ state, settings, timeout: 60 }) };
  });
  await Promise.all(flows.map((flow) => flow.pending.registered));
  // Callbacks 20 at a time, in reverse order of registration.
  const queue = [...flows].reverse();
  await Promise.all(Array.from({ length: 20 }, async () => {
    for (let flow; (flow = queue.shift());) {
      assert.equal(await callback(flow.relay, { code: flow.code, state: flow.state }), 200);
    }
  }));
  const results = await Promise.all(flows.map((flow) => flow.pending.result));
  assert.deepEqual(results.map((result) => `${result.state}=${result.code}`), flows.map((f) => `${f.state}=${f.code}`));
});

test("require() loads both entries as well: no module of the package has a top-level await", () => {
  // Node 20.19+ and Deno refuse require() of an ES module graph with a top-level await (ERR_REQUIRE_ASYNC_MODULE).
  const require = createRequire(import.meta.url);
  assert.equal(require("@org/oauth-relay").waitForCode, waitForCode, "the same module as import");
  assert.equal(typeof require("@org/oauth-relay/login").login, "function");
});
