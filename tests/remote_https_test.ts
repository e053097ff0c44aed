/**
 * Remote waiting over real HTTPS, with real parts only: certificates made by
 * `openssl` (./support/tls.ts), a relay that serves TLS itself, a real nginx
 * terminating TLS in front of a relay on loopback (./support/nginx.ts), and
 * `waitForCode` with its HTTPS transport on Deno's own `fetch`. Then many
 * remote and socket waiters on one relay at once, their callbacks in random
 * order, each waiter getting exactly its own code.
 */

import assert from "node:assert/strict";
import { OAuthConnectionError } from "../src/client/errors.ts";
import { httpsTransport } from "../src/client/transport/https.ts";
import { waitForCode } from "../src/client/wait.ts";
import type { OAuthCallbackResult } from "../src/protocol/mod.ts";
import { DEFAULT_MAX_PENDING } from "../src/relay/coordinator/serve.ts";
import { RESERVED_DESCRIPTORS } from "../src/relay/fd_budget.ts";
import { readFileLimit } from "../src/relay/fd_limit.ts";
import { body, type PendingWait, startTestRelay, type TestRelay, wait } from "./helpers.ts";
import { ignoreWithoutNginx, startNginx } from "./support/nginx.ts";
import { httpClientTrusting, makeCertificates } from "./support/tls.ts";
import { within } from "./support/timing.ts";

const TOKEN = "https-client-token-0123456789abcdef";
const CALLBACK_PATH = "/oauth/callback";

/** A `fetch` that trusts the test CA, for `httpsTransport` and for callbacks. */
function trustingFetch(client: Deno.HttpClient): typeof fetch {
  return (input, init) => fetch(input, { ...init, client });
}

/** GET the callback at `base` (the relay, or a proxy in front of it) with `client`. */
async function sendCallback(base: string, query: Record<string, string>, client?: Deno.HttpClient) {
  const response = await fetch(`${base}${CALLBACK_PATH}?${new URLSearchParams(query)}`, client ? { client } : {});
  return { status: response.status, text: await body(response) };
}

Deno.test("the whole flow over real HTTPS", async (t) => {
  await using certs = await makeCertificates();
  await using relay = await startTestRelay({
    relay: { clientTokens: [TOKEN], tls: { cert: certs.cert, key: certs.key } },
  });
  assert.match(relay.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  using client = httpClientTrusting(certs.caCert);

  await t.step("a client that trusts the CA registers, and the callback over HTTPS brings its code", async () => {
    let announced = 0;
    const { promise: registered, resolve } = Promise.withResolvers<void>();
    const result = waitForCode({
      state: "over-https",
      timeout: 30,
      settings: { relayUrl: relay.url, clientToken: TOKEN },
      transport: httpsTransport({ fetch: trustingFetch(client) }),
      onRegistered: () => {
        announced++;
        resolve();
      },
    });
    await within("registered over HTTPS", Promise.race([registered, result.then(() => {})]), 10_000);
    const page = await sendCallback(relay.url, { code: "TLS_CODE", state: "over-https" }, client);
    assert.equal(page.status, 200);
    assert.match(page.text, /Authorization Complete/);
    assert.deepEqual(await result, {
      success: true,
      code: "TLS_CODE",
      state: "over-https",
      raw: { code: "TLS_CODE", state: "over-https" },
    });
    assert.equal(announced, 1);
    assert.ok(!relay.logs.some((line) => line.includes("TLS_CODE") || line.includes(TOKEN)), "no code or token logged");
  });

  await t.step("a client that does not trust the CA is refused at once, with TLS named", async () => {
    const started = performance.now();
    // The deadline is far away: a retry loop would show as a wait of 30 s, not an error at once.
    await assert.rejects(
      waitForCode({
        state: "untrusted",
        timeout: 30,
        settings: { relayUrl: relay.url, clientToken: TOKEN },
        transport: httpsTransport(),
      }),
      (error: unknown) => {
        assert.ok(error instanceof OAuthConnectionError, `an OAuthConnectionError, got ${error}`);
        assert.match(error.message, /TLS/);
        assert.match(error.message, /certificate|UnknownIssuer/i);
        return true;
      },
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 5_000, `refused at once, not retried (took ${Math.round(elapsed)} ms)`);
    assert.equal(await relay.relay.registry.count(), 0, "nothing registered");
  });
});

/** A relay serving plain HTTP on loopback behind nginx terminating TLS. */
async function relayBehindNginx(
  certs: { certFile: string; keyFile: string },
  relayOptions: { sseHeartbeatMs?: number },
  readTimeout?: string,
) {
  const relay = await startTestRelay({ relay: { clientTokens: [TOKEN], ...relayOptions } });
  try {
    const nginx = await startNginx({ upstreams: [new URL(relay.url).host], tls: certs, readTimeout });
    return {
      relay,
      nginx,
      async [Symbol.asyncDispose]() {
        await nginx[Symbol.asyncDispose]();
        await relay[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    await relay[Symbol.asyncDispose]();
    throw error;
  }
}

/** `waitForCode` through `base` over HTTPS, with a promise for its registration. */
function waitThrough(base: string, client: Deno.HttpClient, state: string, onRegistered?: () => void): PendingWait {
  const { promise: registered, resolve } = Promise.withResolvers<void>();
  const result = waitForCode({
    state,
    timeout: 60,
    settings: { relayUrl: base, clientToken: TOKEN },
    transport: httpsTransport({ fetch: trustingFetch(client) }),
    onRegistered: () => {
      onRegistered?.();
      resolve();
    },
  });
  // A wait that fails before registering fails `registered` with it.
  return { result, registered: Promise.race([registered, result.then(() => {})]) };
}

Deno.test({
  name: "through nginx: the registration passes unbuffered, and heartbeats keep a quiet stream open",
  ignore: ignoreWithoutNginx(),
  async fn(t) {
    await using certs = await makeCertificates();
    using client = httpClientTrusting(certs.caCert);

    await t.step("onRegistered fires before the callback is sent, then the code arrives", async () => {
      await using stack = await relayBehindNginx(certs, {});
      const { relay, nginx } = stack;
      assert.match(nginx.url, /^https:\/\//);
      const order: string[] = [];
      const { result, registered } = waitThrough(nginx.url, client, "via-nginx", () => order.push("registered"));
      // Were the stream buffered, `registered` would sit in nginx and this would time out.
      await within("registered event through nginx", registered, 10_000);
      order.push("callback sent");
      const page = await sendCallback(nginx.url, { code: "PROXIED", state: "via-nginx" }, client);
      assert.equal(page.status, 200);
      assert.match(page.text, /Authorization Complete/);
      const got = await result;
      assert.equal(got.code, "PROXIED");
      assert.deepEqual(order, ["registered", "callback sent"]);
      const access = await nginx.accessLog();
      assert.match(access, /"POST \/v1\/wait HTTP\/1\.1" 200 upstream=127\.0\.0\.1:\d+/);
      assert.match(access, /"GET \/oauth\/callback\?[^"]*" 200 upstream=127\.0\.0\.1:\d+/);
      assert.ok(!relay.logs.some((line) => line.includes("resumed")), "one stream from start to end");
    });

    // The "quiet minute": a person who takes a while at the provider while a proxy closes
    // streams silent for longer than its read timeout. Scaled down so CI stays fast: nginx closes
    // after 2 s of silence, the relay sends a heartbeat every 500 ms, and the wait stays quiet 5 s.
    await t.step("a stream quiet for longer than nginx's read timeout survives thanks to heartbeats", async () => {
      const QUIET_MS = 5_000;
      await using stack = await relayBehindNginx(certs, { sseHeartbeatMs: 500 }, "2s");
      // The control: the same proxy without heartbeats in time cuts the stream, and the client resumes.
      await using control = await relayBehindNginx(certs, { sseHeartbeatMs: 60_000 }, "2s");
      const { relay, nginx } = stack;
      assert.match(nginx.config, /proxy_read_timeout 2s;/);
      let announced = 0;
      const quiet = waitThrough(nginx.url, client, "quiet", () => announced++);
      const cut = waitThrough(control.nginx.url, client, "cut");
      await within("registered through nginx", Promise.all([quiet.registered, cut.registered]), 10_000);

      // The quiet period itself is what is under test: nothing happens on purpose.
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));

      // nginx did cut the stream without heartbeats (the client came back with its secret) …
      await within("control cut", control.relay.logged(/Client resumed its wait for state: 'cut'/), 1_000);
      assert.match(await control.nginx.errorLog(), /upstream timed out/);
      // … and did not cut the one with heartbeats.
      assert.ok(
        !relay.logs.some((line) => /resumed/.test(line)),
        `the stream never broke:\n${relay.logs.filter((line) => /resum/.test(line)).join("\n")}`,
      );
      assert.doesNotMatch(await nginx.errorLog(), /upstream timed out/);

      const page = await sendCallback(nginx.url, { code: "AFTER_QUIET", state: "quiet" }, client);
      assert.equal(page.status, 200);
      assert.equal((await result(quiet)).code, "AFTER_QUIET");
      assert.equal(announced, 1);
      assert.ok(!relay.logs.some((line) => /resumed/.test(line)), "the code came on the same registration");
      assert.equal((await nginx.accessLog()).match(/POST \/v1\/wait/g)?.length, 1, "one POST /v1/wait in all");

      // The control's client still gets its code, on its resumed registration.
      await sendCallback(control.nginx.url, { code: "AFTER_CUT", state: "cut" }, client);
      assert.equal((await result(cut)).code, "AFTER_CUT");
    });
  },
});

function result(pending: PendingWait): Promise<OAuthCallbackResult> {
  return within("the code", pending.result, 10_000);
}

// ---------------------------------------------------------------------------------------------
// Many waiters at once.

const REMOTE_WAITERS = 1_000;
const SOCKET_WAITERS = 1_000;
const CALLBACK_CONCURRENCY = 50;
const MAX_HTTP_CONNECTIONS = 1_500;
const MAX_WAITERS = 3_000;
/** What the relay is told it may use: every cap in full (nothing cut), and no more. */
const RELAY_FILE_LIMIT = RESERVED_DESCRIPTORS + MAX_HTTP_CONNECTIONS + MAX_WAITERS + DEFAULT_MAX_PENDING;
/**
 * Descriptors this one process holds at the peak: both ends of every waiter's
 * connection (relay and client live here together), the callbacks in flight,
 * and Deno's own.
 */
const PROCESS_NEEDS = 2 * (REMOTE_WAITERS + SOCKET_WAITERS + CALLBACK_CONCURRENCY) + 2 * RESERVED_DESCRIPTORS;
const OWN_LIMIT = (await readFileLimit()).limit;

/**
 * Outside CI a low `ulimit -n` skips the test with a word on stderr; in CI it
 * runs and fails with the message below, so a runner with a low limit is seen.
 */
function ignoreWithoutDescriptors(): boolean {
  const ignore = !Deno.env.get("CI") && OWN_LIMIT < PROCESS_NEEDS;
  if (ignore) {
    console.warn(`Skipping the 2,000-waiter test: ulimit -n is ${OWN_LIMIT}, it needs ${PROCESS_NEEDS}`);
  }
  return ignore;
}

/** A reproducible shuffle (mulberry32), so a failing order can be replayed from the seed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Runs `task` on every item, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]);
  }));
}

Deno.test({
  name: "1,000 remote waiters in one process plus 1,000 on the socket at the same time, callbacks in random order: " +
    "0 lost, 0 misrouted",
  ignore: ignoreWithoutDescriptors(),
  async fn() {
    assert.ok(
      OWN_LIMIT >= PROCESS_NEEDS,
      `ulimit -n is ${OWN_LIMIT}: this test holds about ${PROCESS_NEEDS} descriptors (raise it with ulimit -n)`,
    );
    await using relay: TestRelay = await startTestRelay({
      relay: {
        clientTokens: [TOKEN],
        maxWaitersPerToken: REMOTE_WAITERS,
        maxHttpConnections: MAX_HTTP_CONNECTIONS,
        maxWaiters: MAX_WAITERS,
        fileLimit: RELAY_FILE_LIMIT,
      },
    });
    assert.equal(relay.relay.caps.reduced, false, JSON.stringify(relay.relay.caps));
    assert.equal(relay.relay.caps.http, MAX_HTTP_CONNECTIONS);

    const seed = Number(Deno.env.get("SEED") ?? Date.now() % 2 ** 31);
    const run = seed.toString(36);
    type Flow = { state: string; code: string; pending: PendingWait };
    const flows: Flow[] = [];
    const transport = httpsTransport();
    for (let i = 0; i < REMOTE_WAITERS; i++) {
      const state = `remote-${i}-${run}`;
      flows.push({
        state,
        code: `CODE-${state}`,
        pending: wait(relay, {
          state,
          timeout: 120,
          settings: { relayUrl: relay.url, clientToken: TOKEN },
          transport,
        }),
      });
    }
    for (let i = 0; i < SOCKET_WAITERS; i++) {
      const state = `socket-${i}-${run}`;
      flows.push({ state, code: `CODE-${state}`, pending: wait(relay, { state, timeout: 120 }) });
    }
    await within("2,000 registrations", Promise.all(flows.map((flow) => flow.pending.registered)), 30_000);
    assert.equal(await relay.relay.registry.count(), REMOTE_WAITERS + SOCKET_WAITERS);
    // Each remote waiter holds its own HTTP connection: 1,000 streams from this one process at once.
    assert.ok(relay.relay.httpStats().open >= REMOTE_WAITERS, JSON.stringify(relay.relay.httpStats()));

    const statuses = new Map<number, number>();
    await eachLimited(shuffled(flows, seed), CALLBACK_CONCURRENCY, async (flow) => {
      const page = await sendCallback(relay.url, { code: flow.code, state: flow.state });
      statuses.set(page.status, (statuses.get(page.status) ?? 0) + 1);
    });
    assert.deepEqual(Object.fromEntries(statuses), { 200: flows.length }, `seed ${seed}`);

    const outcomes = await within(
      "2,000 results",
      Promise.allSettled(flows.map((flow) => flow.pending.result)),
      30_000,
    );
    const lost = outcomes.flatMap((outcome, i) =>
      outcome.status === "rejected" ? [`${flows[i].state}: ${outcome.reason}`] : []
    );
    const misrouted = outcomes.flatMap((outcome, i) =>
      outcome.status === "fulfilled" && (outcome.value.code !== flows[i].code || outcome.value.state !== flows[i].state)
        ? [`${flows[i].state} got ${outcome.value.code}`]
        : []
    );
    assert.deepEqual(lost, [], `seed ${seed}: lost`);
    assert.deepEqual(misrouted, [], `seed ${seed}: misrouted`);
    assert.equal(await relay.relay.registry.count(), 0, "every registration ended");
    assert.ok(!relay.logs.some((line) => line.includes("resumed")), "no remote stream broke");
    // Nothing shed, evicted or refused on the way: every waiter got in at its first attempt.
    assert.deepEqual(relay.logs.filter((line) => /\b(WARN|ERROR)\b/.test(line)), []);
    const { shed, evicted, evictedBusy } = relay.relay.httpStats();
    assert.deepEqual({ shed, evicted, evictedBusy }, { shed: 0, evicted: 0, evictedBusy: 0 });
  },
});
