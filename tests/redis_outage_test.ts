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
import { waitForCode } from "../src/client/wait.ts";
import { startTestRelay } from "./helpers.ts";
import { type ClusterRelay, ignoreWithoutRedis, startRedis, startRelays } from "./support/redis.ts";

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

/** Asks every 50 ms until `check` holds (no event says when /health turns), or fails after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
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
