/**
 * Redis killed (SIGKILL) in the middle of a load run behind nginx, then
 * started again empty: callbacks during the outage get the 503 "reload in a
 * moment" page, and once the relays have re-asserted their registrations
 * every waiter still waiting completes when its callback is sent again (the
 * person reloads), each with its own code, exactly once.
 */

import assert from "node:assert/strict";
import { waitForCode } from "../src/client/wait.ts";
import { random, shuffle } from "./support/load.ts";
import { ignoreWithoutNginx, startNginx } from "./support/nginx.ts";
import {
  type ClusterRelay,
  ignoreWithoutRedis,
  LOAD_RUN,
  LOAD_SEED,
  loadRunEnv,
  startRedis,
  startRelays,
} from "./support/redis.ts";
import { until, within } from "./support/timing.ts";

const TOKEN = "restart-load-client-token-0123456789ab";
const SEED = LOAD_SEED;
const { remoteFlows: REMOTE_FLOWS, socketFlowsPerRelay: SOCKET_FLOWS_PER_RELAY, duplicates: DUPLICATES } = LOAD_RUN;
const PARALLEL_SENDS = LOAD_RUN.parallelSends;
/** Callbacks sent while Redis is down. */
const OUTAGE_SENDS = 500;
/** Seconds each waiter waits: well past the run, so that none ends by its own timeout. */
const WAIT_TIMEOUT_S = 180;
/** How long a phase that waits for the relays (re-assertion, the last deliveries) may take before the test fails. */
const PHASE_MS = 30_000;
/** How often the person reloads a page that did not say "complete" once Redis is back. */
const RELOADS = 3;

function callback(url: string, query: Record<string, string>): Promise<Response> {
  return fetch(`${url}/oauth/callback?${new URLSearchParams(query)}`);
}

/** Runs `task` over `items` in batches of `size`, each batch in parallel. */
async function inBatches<T>(items: T[], size: number, task: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(task));
}

const healthIs = (relay: ClusterRelay, status: number) => async () => (await relay.health()).status === status;

Deno.test({
  name:
    `under load behind nginx, Redis killed midway and started again empty: 503 during the outage, then every waiter completes on a reload, once, with its own code (seed ${SEED})`,
  ignore: ignoreWithoutRedis() || ignoreWithoutNginx(),
  async fn() {
    const next = random(SEED);
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 3, loadRunEnv(TOKEN));
    await using proxy = await startNginx({ upstreams: cluster.relays.map((relay) => new URL(relay.url).host) });

    type Flow = { state: string; result: Promise<{ code: string | null }>; settled: boolean };
    const flows: Flow[] = [];
    const registrations: Promise<void>[] = [];
    const start = (state: string, settings: Record<string, unknown>) => {
      // A registration the relay refuses fails the test with the relay's reason instead of hanging it.
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const result = waitForCode({ state, timeout: WAIT_TIMEOUT_S, settings, onRegistered: () => resolve() });
      const flow: Flow = { state, result, settled: false };
      result.then(() => flow.settled = true, (error) => {
        flow.settled = true;
        reject(new Error(`${state} did not register: ${error}`));
      });
      flows.push(flow);
      registrations.push(promise);
    };
    for (let i = 0; i < REMOTE_FLOWS; i++) start(`remote-${i}`, { relayUrl: proxy.url, clientToken: TOKEN });
    for (const relay of cluster.relays) {
      for (let i = 0; i < SOCKET_FLOWS_PER_RELAY; i++) {
        start(`socket-${relay.name}-${i}`, { socketPath: relay.socketPath });
      }
    }
    await within("every waiter registers", Promise.all(registrations), 60_000);
    const byState = new Map(flows.map((flow) => [flow.state, flow]));

    // Identical callbacks per flow, in random order, through the balancer. A third of the flows get theirs before
    // Redis dies, one copy each excepted: a reload after the restart, which must not deliver again. The others get
    // none before: they are still waiting at the kill, get some during the outage and the rest once Redis is back.
    const order = shuffle([...flows], next);
    const early = order.slice(0, Math.floor(flows.length / 3));
    const late = order.slice(early.length);
    const copies = (some: Flow[], count: number) =>
      some.flatMap(({ state }) => Array.from({ length: count }, () => state));
    const before = shuffle(copies(early, DUPLICATES - 1), next);
    const after = shuffle([...copies(late, DUPLICATES), ...copies(early, 1)], next);
    const completes = new Map<string, number>();
    const statuses = new Map<number, number>();
    /** States answered "No client waiting" though their client was waiting or had its code with the replay memory. */
    const nobody: string[] = [];
    let restarted = false;
    const lateStates = new Set(late.map(({ state }) => state));
    const send = async (state: string) => {
      const response = await callback(proxy.url, { code: `code-${state}`, state });
      const page = await response.text();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      if (response.status === 200) completes.set(state, (completes.get(state) ?? 0) + 1);
      // Only a flow completed before the restart may be told that nobody waits: Redis forgot it (docs/redis.md).
      // A late flow is waiting, claimed ("already completed") or delivered (remembered) whenever its callback comes.
      if (/No client waiting/.test(page) && (lateStates.has(state) || !restarted)) nobody.push(state);
    };
    await inBatches(before, PARALLEL_SENDS, send);

    // A callback whose page said "complete" waits in Redis until its owner takes it, which takes a moment for a
    // remote waiter of another relay; a restart without persistence would lose it (docs/redis.md). Kill Redis once
    // those have reached their waiters: what the test then asks is what happens to the waiters still waiting.
    await within(
      "the callbacks answered 'complete' reach their waiters",
      Promise.all([...completes.keys()].map((state) => byState.get(state)!.result)),
      PHASE_MS,
    );
    const waiting = flows.filter((flow) => !flow.settled);
    assert.deepEqual(late.filter((flow) => flow.settled).map(({ state }) => state), [], "no code before its callback");
    assert.ok(waiting.length >= late.length, `${waiting.length} flows still waiting at the kill`);
    const held = new Map<ClusterRelay, number>();
    for (const relay of cluster.relays) {
      const { status, body } = await relay.health();
      assert.equal(status, 200, `relay ${relay.name} before the kill`);
      held.set(relay, (body.instance as { waiting: number }).waiting);
    }
    assert.equal(
      [...held.values()].reduce((a, b) => a + b),
      waiting.length,
      "the relays hold exactly the waiting flows",
    );
    assert.equal((await cluster.relays[0].health()).body.waiting, waiting.length, "and Redis counts them");

    await redis.kill();
    const outage = after.slice(0, OUTAGE_SENDS);
    const answers = new Map<number, number>();
    let withoutRetryAfter = 0, withoutReloadPage = 0;
    await inBatches(outage, PARALLEL_SENDS, async (state) => {
      const response = await callback(proxy.url, { code: `code-${state}`, state });
      const page = await response.text();
      answers.set(response.status, (answers.get(response.status) ?? 0) + 1);
      if (!(Number(response.headers.get("retry-after")) > 0)) withoutRetryAfter++;
      if (!/Reload this page in a moment/.test(page)) withoutReloadPage++;
    });
    assert.deepEqual(Object.fromEntries(answers), { 503: OUTAGE_SENDS }, "every callback during the outage gets 503");
    assert.deepEqual([withoutRetryAfter, withoutReloadPage], [0, 0], "each with Retry-After and the reload page");
    for (const relay of cluster.relays) {
      await until(`relay ${relay.name} reports the outage`, healthIs(relay, 503));
      assert.equal((await relay.health()).body.status, "unavailable");
    }
    assert.deepEqual(waiting.filter((flow) => flow.settled).map(({ state }) => state), [], "nobody stops waiting");

    // Back, empty: each relay re-asserts what it holds, and says so.
    await redis.start();
    await within(
      "every relay re-asserts its registrations",
      Promise.all(
        cluster.relays.map((relay) =>
          relay.logged(new RegExp(`Re-asserted the ${held.get(relay)} registration\\(s\\) this relay holds in Redis`))
        ),
      ),
      PHASE_MS,
    );
    for (const relay of cluster.relays) await until(`relay ${relay.name} is healthy again`, healthIs(relay, 200));
    assert.equal(
      (await cluster.relays[1].health()).body.waiting,
      waiting.length,
      "every waiting flow is in Redis again",
    );

    restarted = true;
    // The rest of the callbacks, then the person reloads every page that did not say "complete".
    await inBatches(after.slice(OUTAGE_SENDS), PARALLEL_SENDS, send);
    for (let round = 0; round < RELOADS; round++) {
      await inBatches(
        flows.filter(({ state }) => !completes.has(state)).map(({ state }) => state),
        PARALLEL_SENDS,
        send,
      );
    }

    const results = await within("every flow completes", Promise.all(flows.map(({ result }) => result)), PHASE_MS);
    const seen = JSON.stringify(Object.fromEntries(statuses));
    for (const [i, { state }] of flows.entries()) {
      assert.equal(results[i].code, `code-${state}`, state);
      assert.equal(completes.get(state), 1, `${state}: one "complete" page (statuses ${seen})`);
    }
    assert.deepEqual(nobody, [], `"No client waiting" while the client waited (statuses ${seen})`);
    assert.equal(statuses.get(200), flows.length, `one "complete" page per flow (statuses ${seen})`);
    assert.deepEqual([...statuses.keys()].filter((status) => ![200, 404, 503].includes(status)), [], seen);
    await until("no waiter counts any more", async () => (await cluster.relays[2].health()).body.waiting === 0);

    // Each relay logs each delivery it writes: one per state at all relays together.
    await cluster[Symbol.asyncDispose]();
    const delivered = new Map<string, number>();
    for (const log of await Promise.all(cluster.relays.map((relay) => relay.log))) {
      for (const [, state] of log.matchAll(/OAuth callback delivered to client for state: '([^']*)'/g)) {
        delivered.set(state, (delivered.get(state) ?? 0) + 1);
      }
    }
    assert.deepEqual(
      flows.filter(({ state }) => delivered.get(state) !== 1).map(({ state }) => [state, delivered.get(state) ?? 0]),
      [],
      "each code delivered exactly once",
    );
  },
});
