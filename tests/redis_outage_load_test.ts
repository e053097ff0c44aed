/**
 * Redis dies (SIGKILL) in the middle of a run of three relays behind nginx,
 * with 1,000 remote and 300 socket waiters and callbacks in random order,
 * and comes back empty (no persistence). Every callback sent during the
 * outage gets 503 "reload in a moment", never 404 or a page that says
 * complete; once Redis is back the relays re-assert their waiters without a
 * restart, and every flow still waiting completes when its callback is sent
 * again: exactly one "complete" page and one delivery per flow, each with its
 * own code.
 */

import assert from "node:assert/strict";
import { waitForCode } from "../src/client/wait.ts";
import { pool, random, shuffle } from "./support/load.ts";
import { ignoreWithoutNginx, startNginx } from "./support/nginx.ts";
import { type ClusterRelay, ignoreWithoutRedis, startRedis, startRelays } from "./support/redis.ts";

const TOKEN = "outage-load-client-token-0123456789abcdef";
const SEED = Number(Deno.env.get("SEED") ?? Date.now() % 100_000);
const REMOTE_FLOWS = 1_000;
const SOCKET_FLOWS_PER_RELAY = 100;
/** Identical callbacks per flow (a person reloading, a provider retrying). */
const DUPLICATES = 5;
const PARALLEL_SENDS = 50;

/** Asks every 50 ms until `check` holds (no event says when /health turns), or fails after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const healthIs = (relays: ClusterRelay[], status: number) => async () =>
  (await Promise.all(relays.map((relay) => relay.health()))).every((health) => health.status === status);

Deno.test({
  name:
    `Redis killed mid-run and back empty under load behind nginx: 503 during the outage, then every flow completes once (seed ${SEED})`,
  ignore: ignoreWithoutRedis() || ignoreWithoutNginx(),
  async fn() {
    const next = random(SEED);
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 3, {
      OAUTH_CLIENT_TOKENS: TOKEN,
      OAUTH_MAX_WAITERS_PER_TOKEN: String(REMOTE_FLOWS),
      // Every remote waiter holds a connection to one relay, plus the callbacks in flight.
      OAUTH_MAX_HTTP_CONNECTIONS: String(2 * REMOTE_FLOWS),
      // The relays size their caps to the file limit they read with `sh -c "ulimit -n"`, which needs a PATH.
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    });
    const { relays } = cluster;
    await using proxy = await startNginx({ upstreams: relays.map((relay) => new URL(relay.url).host) });

    type Flow = { state: string; result: Promise<{ code: string | null }> };
    const flows: Flow[] = [];
    const registrations: Promise<void>[] = [];
    const start = (state: string, settings: Record<string, unknown>) => {
      // A registration the relay refuses fails the test with the relay's reason instead of hanging it.
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const result = waitForCode({ state, timeout: 300, settings, onRegistered: () => resolve() });
      result.catch((error) => reject(new Error(`${state} did not register: ${error}`)));
      flows.push({ state, result });
      registrations.push(promise);
    };
    for (let i = 0; i < REMOTE_FLOWS; i++) start(`remote-${i}`, { relayUrl: proxy.url, clientToken: TOKEN });
    for (const relay of relays) {
      for (let i = 0; i < SOCKET_FLOWS_PER_RELAY; i++) {
        start(`socket-${relay.name}-${i}`, { socketPath: relay.socketPath });
      }
    }
    await Promise.all(registrations);
    assert.equal((await relays[0].health()).body.waiting, flows.length, "every flow waits, cluster-wide");

    // A third of the flows complete before the outage, a third are sent during it, a third only after.
    const states = shuffle(flows.map(({ state }) => state), next);
    const early = states.slice(0, Math.floor(states.length / 3));
    const middle = states.slice(early.length, 2 * early.length);
    const late = states.slice(2 * early.length);
    const copies = (group: string[], count: number) =>
      shuffle(group.flatMap((state) => Array(count).fill(state)), next);
    const completes = new Map<string, number>();
    const send = async (state: string) => {
      const response = await fetch(
        `${proxy.url}/oauth/callback?${new URLSearchParams({ code: `code-${state}`, state })}`,
      );
      await response.body?.cancel();
      if (response.status === 200) completes.set(state, (completes.get(state) ?? 0) + 1);
      return response;
    };

    await pool(copies(early, DUPLICATES), PARALLEL_SENDS, async (state) => void await send(state));
    assert.equal(completes.size, early.length, "the early flows completed before the outage");
    const beforeOutage = completes.size;

    // Redis dies: the relays say so, and every callback meanwhile gets "reload in a moment".
    await redis.kill();
    await until("every relay reports the outage", healthIs(relays, 503));
    const outage = new Map<number, number>();
    // A callback for a waiting flow, and a duplicate of a delivered one: the relay can tell neither now.
    const duringOutage = copies([...early, ...middle], 1);
    await pool(duringOutage, PARALLEL_SENDS, async (state) => {
      const response = await send(state);
      outage.set(response.status, (outage.get(response.status) ?? 0) + 1);
      assert.ok(Number(response.headers.get("retry-after")) > 0, `a ${response.status} without Retry-After`);
    });
    assert.deepEqual(
      [...outage],
      [[503, duringOutage.length]],
      "every callback during the outage: 503, never 404 nor complete",
    );
    assert.equal(completes.size, beforeOutage, "nothing completed while Redis was away");

    // Back, empty: every relay re-asserts its waiters, without a restart.
    await redis.start();
    await Promise.all(relays.map((relay) => relay.logged(/Re-asserted the \d+ registration\(s\)/)));
    await until("every relay is healthy again", healthIs(relays, 200));
    assert.equal(
      (await relays[0].health()).body.waiting,
      flows.length - beforeOutage,
      "the flows still waiting are all registered again",
    );

    // The rest of the callbacks (an early duplicate now finds the replay memory gone with Redis: 404, not complete);
    // then the person reloads every page that did not say complete.
    await pool(
      shuffle([...copies([...middle, ...late], DUPLICATES), ...early], next),
      PARALLEL_SENDS,
      async (state) => {
        await send(state);
      },
    );
    const reloads = flows.filter(({ state }) => !completes.has(state));
    await pool(reloads, PARALLEL_SENDS, async ({ state }) => {
      const response = await send(state);
      assert.equal(response.status, 200, `${state}: the reload after the outage`);
    });

    for (const { state, result } of flows) {
      assert.equal((await result).code, `code-${state}`, state);
      assert.equal(completes.get(state), 1, `${state}: one "complete" page`);
    }
    await until("no waiter is left anywhere", async () => (await relays[0].health()).body.waiting === 0);
    for (const relay of relays) {
      const { body } = await relay.health();
      assert.equal((body.instance as { waiting: number }).waiting, 0, `relay ${relay.name} holds nothing`);
    }
  },
});
