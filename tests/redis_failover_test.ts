/**
 * A relay dies (SIGKILL) in a cluster on one Redis: its remote waiters resume
 * at another relay through a real nginx and get their callback, one that
 * came in the gap included; its socket waiters learn that their relay is
 * gone; its registrations stop blocking their states, and no code stays in
 * Redis beyond the grace period.
 */

import assert from "node:assert/strict";
import { OAuthConnectionError } from "../src/client/errors.ts";
import { waitForCode } from "../src/client/wait.ts";
import { readEvents } from "./support/events.ts";
import { random, shuffle } from "./support/load.ts";
import { ignoreWithoutNginx, startNginx } from "./support/nginx.ts";
import {
  type ClusterRelay,
  ignoreWithoutRedis,
  LOAD_RUN,
  LOAD_SEED,
  loadRunEnv,
  type RedisServer,
  startRedis,
  startRelays,
} from "./support/redis.ts";
import { until } from "./support/timing.ts";

const TOKEN = "failover-client-token-0123456789abcdef";

function callback(url: string, query: Record<string, string>): Promise<Response> {
  return fetch(`${url}/oauth/callback?${new URLSearchParams(query)}`);
}

function postWait(url: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}/v1/wait`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** A raw wait stream, read event by event. */
async function openStream(url: string, request: Record<string, unknown>) {
  const response = await postWait(url, request);
  assert.equal(response.status, 200, `POST /v1/wait at ${url}: ${response.status}`);
  return readEvents(response.body!);
}

/** Every key and value Redis holds, as text. */
async function everything(redis: RedisServer): Promise<string> {
  const keys = await redis.command("KEYS", "*") as string[];
  const parts: string[] = [];
  for (const key of keys) {
    const type = await redis.command("TYPE", key);
    const value = type === "string"
      ? await redis.command("GET", key)
      : type === "hash"
      ? await redis.command("HGETALL", key)
      : type === "set"
      ? await redis.command("SMEMBERS", key)
      : type;
    parts.push(`${key} ${JSON.stringify(value)}`);
  }
  return parts.join("\n");
}

/** The relay that holds the registration: its own count on /health. */
async function holder(relays: ClusterRelay[]): Promise<ClusterRelay> {
  for (const relay of relays) {
    const { body } = await relay.health();
    if ((body.instance as { waiting: number }).waiting > 0) return relay;
  }
  throw new Error("no relay holds a registration");
}

Deno.test({
  name:
    "a relay killed with SIGKILL: its remote waiters resume at another relay behind nginx, with a callback that came in the gap; its socket waiters get OAuthConnectionError",
  ignore: ignoreWithoutRedis() || ignoreWithoutNginx(),
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 3, loadRunEnv(TOKEN));
    await using proxy = await startNginx({ upstreams: cluster.relays.map((relay) => new URL(relay.url).host) });

    // A waitForCode over the balancer, which resumes by itself wherever the balancer sends it.
    const { promise: registered, resolve } = Promise.withResolvers<void>();
    let announced = 0;
    const natural = waitForCode({
      state: "natural",
      timeout: 60,
      settings: { relayUrl: proxy.url, clientToken: TOKEN },
      onRegistered: () => (announced++, resolve()),
    });
    natural.catch(() => {});
    await registered;
    const doomed = await holder(cluster.relays);
    const live = cluster.relays.filter((relay) => relay !== doomed);

    // On the same relay: a raw stream the test resumes by hand, and a socket waiter.
    const gap = await openStream(doomed.url, { state: "gap", timeout: 60 });
    const first = (await gap.next())!;
    assert.equal(first.event, "registered");
    const { promise: socketRegistered, resolve: socketResolve } = Promise.withResolvers<void>();
    const socketWaiter = waitForCode({
      state: "socket",
      timeout: 4,
      settings: { socketPath: doomed.socketPath },
      onRegistered: () => socketResolve(),
    });
    socketWaiter.catch(() => {});
    await socketRegistered;

    await doomed.kill();
    await gap.close();

    // The callback comes while nobody is connected for "gap": kept in Redis for its client.
    const page = await callback(live[0].url, { code: "GAP-CODE", state: "gap" });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Authorization Complete/);
    const back = await openStream(proxy.url, { state: "gap", resume: first.data.resume });
    const again = (await back.next())!;
    assert.deepEqual(
      [again.event, again.data.resume, again.data.expires_at],
      ["registered", first.data.resume, first.data.expires_at],
      "the same registration, taken over",
    );
    const kept = (await back.next())!;
    assert.deepEqual([kept.event, kept.data.code], ["callback", "GAP-CODE"]);
    assert.equal(await back.next(), null);

    // The other client resumed by itself at a live relay; its callback reaches it there.
    await Promise.race(live.map((relay) => relay.logged(/Client took over its wait for state: 'natural'/)));
    const later = await callback(live[1].url, { code: "NATURAL-CODE", state: "natural" });
    assert.equal(later.status, 200);
    await later.text();
    assert.equal((await natural).code, "NATURAL-CODE");
    assert.equal(announced, 1, "a resumed wait is not announced again");

    // A socket waiter's relay is gone with its connection: a connection error, never a code.
    await assert.rejects(socketWaiter, OAuthConnectionError);
  },
});

Deno.test({
  name:
    "a dead relay's registrations stop blocking their states after the grace period, and its kept callback leaves Redis",
  ignore: ignoreWithoutRedis(),
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 2, { OAUTH_CLIENT_TOKENS: TOKEN, OAUTH_RESUME_GRACE: "1" });
    const [a, b] = cluster.relays;
    const { promise: socketRegistered, resolve } = Promise.withResolvers<void>();
    const socketWaiter = waitForCode({
      state: "socket",
      timeout: 3,
      settings: { socketPath: a.socketPath },
      onRegistered: () => resolve(),
    });
    socketWaiter.catch(() => {});
    await socketRegistered;
    const streams = [await openStream(a.url, { state: "remote" }), await openStream(a.url, { state: "kept" })];
    for (const stream of streams) assert.equal((await stream.next())?.event, "registered");

    await a.kill();
    for (const stream of streams) await stream.close();
    // Just killed: its heartbeat is fresh, so its states are still held.
    for (const state of ["socket", "remote"]) {
      const refused = await postWait(b.url, { state });
      assert.equal(refused.status, 409, state);
      await refused.body?.cancel();
    }
    const page = await callback(b.url, { code: "KEPT-CODE", state: "kept" });
    assert.equal(page.status, 200);
    await page.text();

    await until("the dead relay's waiters no longer count", async () => (await b.health()).body.waiting === 0);
    for (const state of ["socket", "remote"]) {
      const stream = await openStream(b.url, { state });
      assert.equal((await stream.next())?.event, "registered", state);
      await (await callback(b.url, { code: `NEW-${state}`, state })).text();
      const delivered = (await stream.next())!;
      assert.deepEqual([delivered.event, delivered.data.code], ["callback", `NEW-${state}`]);
    }
    const used = await postWait(b.url, { state: "kept" });
    assert.equal(used.status, 410, "its callback came: the state is used");
    await used.body?.cancel();
    // A remote waiter's callback is kept for the grace period (a resume elsewhere takes it), then no longer.
    await until("no code is left in Redis", async () => !/KEPT-CODE|NEW-/.test(await everything(redis)));
    await assert.rejects(socketWaiter, OAuthConnectionError);
  },
});

const SEED = LOAD_SEED;
const { remoteFlows: REMOTE_FLOWS, socketFlowsPerRelay: SOCKET_FLOWS_PER_RELAY, duplicates: DUPLICATES } = LOAD_RUN;
/** Socket waiters of the killed relay whose callbacks come only after it died. */
const LATE_FLOWS = 10;
const PARALLEL_SENDS = LOAD_RUN.parallelSends;
/** Seconds the killed relay's socket waiters wait: past the run, so that they report the relay gone. */
const DOOMED_TIMEOUT_S = 40;

Deno.test({
  name:
    `under load behind nginx, a relay killed midway loses no remote flow and delivers no code twice or to another waiter (seed ${SEED})`,
  ignore: ignoreWithoutRedis() || ignoreWithoutNginx(),
  async fn() {
    const next = random(SEED);
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 3, loadRunEnv(TOKEN));
    await using proxy = await startNginx({ upstreams: cluster.relays.map((relay) => new URL(relay.url).host) });
    const [, , doomed] = cluster.relays;

    type Flow = { state: string; relay?: ClusterRelay; result: Promise<{ code: string | null }> };
    const flows: Flow[] = [];
    const registrations: Promise<void>[] = [];
    const start = (state: string, settings: Record<string, unknown>, relay?: ClusterRelay) => {
      // A registration the relay refuses fails the test with the relay's reason instead of hanging it.
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      // A socket waiter of the killed relay reconnects until its deadline, then reports the relay gone.
      const timeout = relay === doomed ? DOOMED_TIMEOUT_S : 300;
      const result = waitForCode({ state, timeout, settings, onRegistered: () => resolve() });
      result.catch((error) => reject(new Error(`${state} did not register: ${error}`)));
      flows.push({ state, relay, result });
      registrations.push(promise);
    };
    for (let i = 0; i < REMOTE_FLOWS; i++) start(`remote-${i}`, { relayUrl: proxy.url, clientToken: TOKEN });
    for (const relay of cluster.relays) {
      for (let i = 0; i < SOCKET_FLOWS_PER_RELAY; i++) {
        start(`socket-${relay.name}-${i}`, { socketPath: relay.socketPath }, relay);
      }
    }
    await Promise.all(registrations);

    // Identical callbacks per flow, in random order, through the balancer; those of a few of the doomed
    // relay's socket waiters only after it died, so that some of them are still waiting then.
    const late = new Set(flows.filter(({ relay }) => relay === doomed).slice(0, LATE_FLOWS).map(({ state }) => state));
    const copies = (state: string) => Array.from({ length: DUPLICATES }, () => state);
    const sends = shuffle(flows.filter(({ state }) => !late.has(state)).flatMap(({ state }) => copies(state)), next);
    sends.push(...[...late].flatMap(copies));
    const completes = new Map<string, number>();
    const send = async (state: string) => {
      const response = await callback(proxy.url, { code: `code-${state}`, state });
      await response.body?.cancel();
      if (response.status === 200) completes.set(state, (completes.get(state) ?? 0) + 1);
    };
    const half = Math.floor((sends.length - late.size * DUPLICATES) / 2);
    for (let i = 0; i < sends.length; i += PARALLEL_SENDS) {
      if (i >= half && i - PARALLEL_SENDS < half) await doomed.kill();
      await Promise.all(sends.slice(i, i + PARALLEL_SENDS).map(send));
    }
    // The person reloads a page that did not say "complete" (e.g. a 502 while the relay died).
    for (const { state, relay } of flows) {
      if (!completes.has(state) && relay !== doomed) await send(state);
    }

    for (const { state, relay, result } of flows) {
      if (relay === doomed) continue;
      assert.equal((await result).code, `code-${state}`, state);
      assert.equal(completes.get(state), 1, `${state}: one "complete" page`);
    }
    let gone = 0;
    for (const { state, relay, result } of flows) {
      if (relay !== doomed) continue;
      // Its relay died with its connection: its own code if it came first, else the relay reported gone.
      const outcome = await result.then((got) => got.code, (error) => error);
      if (typeof outcome === "string") assert.equal(outcome, `code-${state}`);
      else {
        assert.ok(outcome instanceof OAuthConnectionError, `${state}: ${outcome}`);
        gone++;
      }
      if (late.has(state)) {
        assert.ok(outcome instanceof OAuthConnectionError, `${state}: got ${outcome} after its relay died`);
      }
    }
    assert.ok(gone >= LATE_FLOWS, `${gone} socket waiters of the killed relay reported it gone`);
  },
});
