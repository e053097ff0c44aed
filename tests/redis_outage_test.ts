/**
 * Redis goes away under a cluster of relays: callbacks get the "reload in a
 * moment" page (never 404), new registrations `unavailable`, `/health` 503
 * with the reason, and waiting clients keep waiting. Redis comes back empty:
 * the relays re-assert their registrations and the flows complete, without
 * a restart. A frozen Redis (SIGSTOP) does not hang a callback, and nothing
 * is delivered twice once it goes on.
 */

import assert from "node:assert/strict";
import { OAuthRelayError } from "../src/client/errors.ts";
import { createClient } from "redis";
import { waitForCode } from "../src/client/wait.ts";
import { SCRIPTS } from "../src/relay/registry/redis_scripts.ts";
import { startTestRelay } from "./helpers.ts";
import { type ClusterRelay, ignoreWithoutRedis, type RedisServer, startRedis, startRelays } from "./support/redis.ts";
import { until } from "./support/timing.ts";

const TOKEN = "outage-client-token-0123456789abcdef";
const ignore = ignoreWithoutRedis();

function callback(url: string, query: Record<string, string>): Promise<Response> {
  return fetch(`${url}/oauth/callback?${new URLSearchParams(query)}`);
}

/** A waitForCode that says when it is registered and whether it has settled. */
function waitAt(settings: Record<string, unknown>, state: string) {
  const { promise: registered, resolve } = Promise.withResolvers<void>();
  let settled = false;
  const result = waitForCode({ state, timeout: 60, settings, onRegistered: () => resolve() });
  result.then(() => settled = true, () => settled = true);
  return { result, registered, settled: () => settled };
}

const healthIs = (relay: ClusterRelay, status: number) => async () => (await relay.health()).status === status;

Deno.test({
  name:
    "Redis stops: 503 pages, 'unavailable' registrations, /health 503, waiters keep waiting; back empty, the relays re-assert and the flows complete",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 2, { OAUTH_CLIENT_TOKENS: TOKEN });
    const [a, b] = cluster.relays;
    const socketWaiter = waitAt({ socketPath: a.socketPath }, "socket");
    const remoteWaiter = waitAt({ relayUrl: b.url, clientToken: TOKEN }, "remote");
    await Promise.all([socketWaiter.registered, remoteWaiter.registered]);

    await redis.stop();
    await until("relay A reports the outage", healthIs(a, 503));
    await until("relay B reports the outage", healthIs(b, 503));
    const { body } = await a.health();
    assert.equal(body.status, "unavailable");
    assert.match(String(body.reason), /^Redis at unix:\/\/\S+ is unreachable/);
    assert.deepEqual([body.waiting, (body.instance as { waiting: number }).waiting, body.redis], [
      null,
      1,
      "unreachable",
    ]);

    const page = await callback(b.url, { code: "TOO-EARLY", state: "socket" });
    assert.equal(page.status, 503, "not 404: nothing says nobody waits");
    assert.ok(Number(page.headers.get("retry-after")) > 0);
    assert.match(await page.text(), /Reload this page in a moment/);
    await assert.rejects(
      waitForCode({ state: "new", timeout: 5, settings: { socketPath: a.socketPath } }),
      (error: unknown) => error instanceof OAuthRelayError && error.code === "unavailable",
    );
    const refused = await fetch(`${b.url}/v1/wait`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "new-remote" }),
    });
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get("retry-after")) > 0);
    assert.equal((await refused.json()).code, "unavailable");
    assert.deepEqual([socketWaiter.settled(), remoteWaiter.settled()], [false, false], "both still waiting");

    await redis.start(); // empty: no persistence
    await Promise.all([
      a.logged(/Re-asserted the 1 registration\(s\)/),
      b.logged(/Re-asserted the 1 registration\(s\)/),
    ]);
    await until("relay A is healthy again", healthIs(a, 200));
    assert.equal((await b.health()).body.waiting, 2);

    // The person reloads: the callback now reaches the waiter, at whichever relay.
    const reload = await callback(b.url, { code: "SOCKET-CODE", state: "socket" });
    assert.equal(reload.status, 200);
    await reload.text();
    const remotePage = await callback(a.url, { code: "REMOTE-CODE", state: "remote" });
    assert.equal(remotePage.status, 200);
    await remotePage.text();
    assert.equal((await socketWaiter.result).code, "SOCKET-CODE");
    assert.equal((await remoteWaiter.result).code, "REMOTE-CODE");
  },
});

Deno.test({
  name:
    "a frozen Redis (SIGSTOP) gets callbacks a 503 instead of a hung page; after SIGCONT nothing is delivered twice",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 2);
    const [a, b] = cluster.relays;
    const waiter = waitAt({ socketPath: a.socketPath }, "frozen");
    await waiter.registered;

    redis.freeze();
    const pages = [
      await callback(b.url, { code: "FROZEN-CODE", state: "frozen" }),
      await callback(a.url, { code: "FROZEN-CODE", state: "frozen" }),
    ];
    assert.deepEqual(pages.map((page) => page.status), [503, 503]);
    for (const page of pages) assert.match(await page.text(), /Reload this page in a moment/);
    await until("relay A reports Redis not answering", healthIs(a, 503));
    assert.match(String((await a.health()).body.reason), /is not answering: Redis did not answer within 1000 ms/);

    redis.thaw();
    await until("relay A is healthy again", healthIs(a, 200));
    await until("relay B is healthy again", healthIs(b, 200));
    // The person reloads until the page says it is done: a claim sent before the freeze may have run since.
    const reload = await callback(b.url, { code: "FROZEN-CODE", state: "frozen" });
    assert.ok([200, 404].includes(reload.status), `reload: ${reload.status}`);
    await reload.text();
    assert.equal((await waiter.result).code, "FROZEN-CODE");
    const replay = await callback(a.url, { code: "FROZEN-CODE", state: "frozen" });
    assert.equal(replay.status, 404);
    assert.match(await replay.text(), /Already Completed/);
    await cluster[Symbol.asyncDispose]();
    const delivered = (await Promise.all(cluster.relays.map((relay) => relay.log))).join("\n")
      .match(/OAuth callback delivered to client for state: 'frozen'/g) ?? [];
    assert.equal(delivered.length, 1, "delivered exactly once");
  },
});

Deno.test({
  name: "a wake-up published while the owner's subscriber was away is taken from its inbox once it resubscribes",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const relayOptions = { clientTokens: [TOKEN], redis: { url: redis.url } };
    await using a = await startTestRelay({ relay: relayOptions });
    await using b = await startTestRelay({ relay: relayOptions });
    const waiter = waitAt({ relayUrl: a.url, clientToken: TOKEN }, "lost-wake");
    await waiter.registered;
    const { id } = (await (await fetch(`${a.url}/health`)).json()).instance;

    // Cut A's subscriber off and keep it off: in one go, so the server has no client slot left for its reconnection.
    using admin = await redis.session();
    const list = String(await admin.command("CLIENT", "LIST", "TYPE", "pubsub"));
    const subscriber = new RegExp(`id=(\\d+) [^\\n]*name=oauth-relay-${id}-subscriber`).exec(list)![1];
    const clients = Number(/connected_clients:(\d+)/.exec(String(await admin.command("INFO", "clients")))![1]);
    await admin.pipeline(
      ["CONFIG", "SET", "maxclients", String(clients - 1)],
      ["CLIENT", "KILL", "ID", subscriber],
    );
    assert.deepEqual(
      await admin.command("PUBSUB", "NUMSUB", `oauth-relay:ch:${id}`),
      [`oauth-relay:ch:${id}`, 0],
      "nobody hears A's channel: the wake-up is lost",
    );
    const page = await callback(b.url, { code: "INBOX-CODE", state: "lost-wake" });
    assert.equal(page.status, 200, "kept for its owner");
    await page.text();
    assert.equal(waiter.settled(), false);

    await admin.command("CONFIG", "SET", "maxclients", "10000");
    await a.logged(/Redis at \S+ answers again/);
    assert.equal((await waiter.result).code, "INBOX-CODE");
  },
});

/** The id of a relay's connection named `oauth-relay-ID-which` in Redis's CLIENT LIST. */
async function connectionId(redis: RedisServer, instance: string, which: "commands" | "subscriber"): Promise<string> {
  const list = String(await redis.command("CLIENT", "LIST"));
  return new RegExp(`id=(\\d+) [^\\n]*name=oauth-relay-${instance}-${which}`).exec(list)![1];
}

Deno.test({
  name: "a re-assertion while Redis kept everything (a dropped connection) keeps the cluster-wide count exact",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using relay = await startTestRelay({ relay: { redis: { url: redis.url } } });
    const states = ["one", "two", "three"];
    const waiters = states.map((state) => waitAt(relay.client, state));
    await Promise.all(waiters.map((waiter) => waiter.registered));
    const health = async () => (await (await fetch(`${relay.url}/health`)).json()).waiting;
    assert.equal(await health(), 3);
    const { id } = (await (await fetch(`${relay.url}/health`)).json()).instance;

    await redis.command("CLIENT", "KILL", "ID", await connectionId(redis, id, "commands"));
    await relay.logged(/Re-asserted the 3 registration\(s\)/);
    // The count is what OAUTH_MAX_WAITERS is checked against at every relay.
    assert.equal(await health(), 3, "each registration counted once");
    for (const state of states) await (await relay.callback({ code: `code-${state}`, state })).text();
    for (const [i, waiter] of waiters.entries()) assert.equal((await waiter.result).code, `code-${states[i]}`);
  },
});

Deno.test({
  name:
    "a claim that timed out but ran once Redis went on reaches this relay's own waiter, though no heartbeat failed meanwhile",
  ignore,
  async fn() {
    await using redis = await startRedis();
    // Beats 2 s apart, commands timing out after 200 ms: a short freeze right after a beat fails only the claim.
    const options = { url: redis.url, commandTimeoutMs: 200, heartbeatMs: 2000 };
    await using relay = await startTestRelay({ relay: { redis: options } });
    const { id } = (await (await fetch(`${relay.url}/health`)).json()).instance;
    const waiter = waitForCode({ state: "late", timeout: 15, settings: relay.client });
    waiter.catch(() => {});
    await relay.logged(/Client registered for state: 'late'/);

    // Every beat writes the relay's heartbeat key: Redis says when one happened.
    await redis.command("CONFIG", "SET", "notify-keyspace-events", "K$");
    const watcher = createClient({ url: redis.url });
    await watcher.connect();
    try {
      const { promise: beat, resolve } = Promise.withResolvers<void>();
      await watcher.subscribe(`__keyspace@0__:oauth-relay:i:${id}`, () => resolve());
      await beat;
      redis.freeze();
      try {
        const page = await relay.callback({ code: "LATE-CODE", state: "late" });
        assert.equal(page.status, 503);
        await page.text();
      } finally {
        redis.thaw();
      }
      assert.equal((await waiter).code, "LATE-CODE", "taken from the inbox, not lost");
    } finally {
      await watcher.close();
    }
  },
});

Deno.test({
  name: "a take whose answer was lost while Redis stood still is answered again: the socket waiter still gets its code",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using relay = await startTestRelay({ relay: { redis: { url: redis.url, commandTimeoutMs: 200 } } });
    const waiter = waitForCode({ state: "lost-take", timeout: 15, settings: relay.client });
    waiter.catch(() => {});
    await relay.logged(/Client registered for state: 'lost-take'/);

    // Another relay's claim (the registry's own script), then Redis holds every write for a while: the owner's
    // take, woken by the claim, runs only after the owner stopped waiting for its answer.
    const raw = { code: "LOST-CODE", state: "lost-take" };
    using session = await redis.session();
    const [claimed] = await session.pipeline(
      [
        "EVAL",
        SCRIPTS.oauthClaim.SCRIPT,
        "1",
        "oauth-relay:w:lost-take",
        ...["oauth-relay:", "another-relay", "lost-take", JSON.stringify({ success: true, ...raw, raw })],
        ...["claim-1", "30000", "600000", "3000"],
      ],
      ["CLIENT", "PAUSE", "600", "WRITE"],
    );
    assert.equal((claimed as string[])[0], "sent");
    assert.equal((await waiter).code, "LOST-CODE", "not lost with the take's answer");
  },
});

Deno.test({
  name:
    "Redis back empty while one relay has not re-asserted yet: a callback for its waiter is 'reload', never 'nobody waits'",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 2);
    const [a, b] = cluster.relays;
    const waiter = waitAt({ socketPath: b.socketPath }, "at-b");
    await waiter.registered;

    // B stands still through the restart, so only A re-asserts (nothing: it holds no waiter).
    b.freeze();
    try {
      await redis.kill();
      await redis.start();
      await a.logged(/Re-asserted the 0 registration\(s\)/);
      const early = await callback(a.url, { code: "EARLY", state: "at-b" });
      assert.equal(early.status, 503, "Redis does not know B's waiter yet: not 404");
      assert.ok(Number(early.headers.get("retry-after")) > 0);
      assert.match(await early.text(), /Reload this page in a moment/);
    } finally {
      b.thaw();
    }
    await b.logged(/Re-asserted the 1 registration\(s\)/);
    // The person reloads.
    const reload = await callback(a.url, { code: "AFTER", state: "at-b" });
    assert.equal(reload.status, 200);
    await reload.text();
    assert.equal((await waiter.result).code, "AFTER");
    assert.equal(waiter.settled(), true);
  },
});
