/**
 * Several relays, one Redis: three `server.ts` processes (started as `deno
 * task serve` starts them) on a real redis-server. Any relay receives a
 * callback, exactly one delivery happens, and the waiter gets it at
 * whichever relay it waits.
 */

import assert from "node:assert/strict";
import { OAuthRelayError } from "../src/client/errors.ts";
import { waitForCode } from "../src/client/wait.ts";
import { readEvents } from "./support/events.ts";
import { ignoreWithoutRedis, startRedis, startRelays } from "./support/redis.ts";
import { within } from "./support/timing.ts";

const TOKEN = "cluster-client-token-0123456789abcdef";
const ignore = ignoreWithoutRedis();

function callback(url: string, query: Record<string, string>): Promise<Response> {
  return fetch(`${url}/oauth/callback?${new URLSearchParams(query)}`);
}

/** A waitForCode whose `registered` resolves on the relay's acknowledgement. */
function waitAt(settings: Record<string, unknown>, state: string, timeout = 30) {
  const { promise: registered, resolve } = Promise.withResolvers<void>();
  const result = waitForCode({ state, timeout, settings, onRegistered: () => resolve() });
  result.catch(() => {});
  return { result, registered: Promise.race([registered, result.then(() => {})]) };
}

function postWait(url: string, body: Record<string, unknown>, token = TOKEN): Promise<Response> {
  return fetch(`${url}/v1/wait`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test({
  name: "three relays on one Redis: 100 parallel identical callbacks spread over them deliver exactly once",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 3);
    const [a] = cluster.relays;
    const waiter = waitAt({ socketPath: a.socketPath }, "race");
    await waiter.registered;
    const responses = await Promise.all(
      Array.from({ length: 100 }, (_, i) => callback(cluster.relays[i % 3].url, { code: "RACE-CODE", state: "race" })),
    );
    const pages = await Promise.all(responses.map((response) => response.text()));
    const statuses = responses.map((response) => response.status);
    assert.equal(statuses.filter((status) => status === 200).length, 1, `statuses: ${statuses}`);
    assert.equal(statuses.filter((status) => status === 404).length, 99, "the others: nobody waits, or already done");
    assert.ok(pages.some((page) => page.includes("Authorization Complete")));
    assert.equal((await waiter.result).code, "RACE-CODE");
    await cluster[Symbol.asyncDispose]();
    for (const relay of cluster.relays) assert.ok(!(await relay.log).includes("RACE-CODE"), "no code in any log");
  },
});

Deno.test({
  name: "a waiter at relay A gets the callback sent to relay B, over its socket and over HTTPS",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 3, { OAUTH_CLIENT_TOKENS: TOKEN });
    const [a, b, c] = cluster.relays;
    const socketWaiter = waitAt({ socketPath: a.socketPath }, "over-socket");
    const remoteWaiter = waitAt({ relayUrl: b.url, clientToken: TOKEN }, "over-https");
    await Promise.all([socketWaiter.registered, remoteWaiter.registered]);
    const first = await callback(b.url, { code: "SOCKET-CODE", state: "over-socket" });
    assert.equal(first.status, 200);
    assert.match(await first.text(), /Authorization Complete/);
    const second = await callback(c.url, { code: "HTTPS-CODE", state: "over-https", iss: "https://issuer.example" });
    assert.equal(second.status, 200);
    await second.text();
    assert.equal((await socketWaiter.result).code, "SOCKET-CODE");
    assert.deepEqual((await remoteWaiter.result).raw, {
      code: "HTTPS-CODE",
      state: "over-https",
      iss: "https://issuer.example",
    });
    const replay = await callback(a.url, { code: "SOCKET-CODE", state: "over-socket" });
    assert.equal(replay.status, 404);
    assert.match(await replay.text(), /Already Completed/);
  },
});

Deno.test({
  name:
    "state_taken, state_used, the per-token cap and the waiting count hold across relays; /health shows both counts",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 3, {
      OAUTH_CLIENT_TOKENS: TOKEN,
      OAUTH_MAX_WAITERS_PER_TOKEN: "1",
    });
    const [a, b, c] = cluster.relays;
    const held = waitAt({ socketPath: a.socketPath }, "held");
    await held.registered;
    const taken = await postWait(b.url, { state: "held" });
    assert.equal(taken.status, 409);
    assert.equal((await taken.json()).code, "state_taken");
    await assert.rejects(
      waitForCode({ state: "held", timeout: 5, settings: { socketPath: c.socketPath } }),
      (error: unknown) => error instanceof OAuthRelayError && error.code === "state_taken",
    );

    const remote = waitAt({ relayUrl: b.url, clientToken: TOKEN }, "token-1");
    await remote.registered;
    const capped = await postWait(c.url, { state: "token-2" });
    assert.equal(capped.status, 429, "one token's registrations at every relay count");
    assert.equal((await capped.json()).code, "too_many_waiters");

    const [healthA, healthC] = [await a.health(), await c.health()];
    assert.equal(healthA.status, 200);
    assert.deepEqual([healthA.body.status, healthA.body.waiting, healthC.body.waiting], ["ok", 2, 2]);
    assert.deepEqual(
      [(healthA.body.instance as { waiting: number }).waiting, (healthC.body.instance as { waiting: number }).waiting],
      [1, 0],
    );
    assert.equal(healthA.body.redis, "ready");
    assert.notEqual((healthA.body.instance as { id: string }).id, (healthC.body.instance as { id: string }).id);

    await (await callback(c.url, { code: "HELD", state: "held" })).text();
    assert.equal((await held.result).code, "HELD");
    const used = await postWait(c.url, { state: "held" });
    assert.equal(used.status, 410);
    assert.equal((await used.json()).code, "state_used");
    await (await callback(a.url, { code: "T1", state: "token-1" })).text();
    assert.equal((await remote.result).code, "T1");
    assert.equal((await b.health()).body.waiting, 0);
  },
});

Deno.test({
  name: "a callback for a socket waiter at another relay hears the owner's word even when it overtakes the claim",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 2);
    const [a, b] = cluster.relays;
    for (let i = 0; i < 300; i++) {
      const state = `race-${i}`;
      const wait = waitAt({ socketPath: b.socketPath }, state);
      await wait.registered;
      // B's word travels on A's subscriber connection and can overtake the claim script's reply; a lost
      // word would hold the page for the acknowledgement timeout (2 s) and more.
      const response = await within(`callback ${i}`, callback(a.url, { code: `code-${i}`, state }), 1_900);
      assert.equal(response.status, 200);
      await response.body?.cancel();
      assert.equal((await wait.result).code, `code-${i}`);
    }
  },
});

Deno.test({
  name:
    "a cancel (DELETE /v1/wait) sent to another relay than the one holding the stream frees the registration at once",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 2, { OAUTH_CLIENT_TOKENS: TOKEN });
    const [a, b] = cluster.relays;
    const opened = await postWait(a.url, { state: "cancelled", timeout: 600 });
    assert.equal(opened.status, 200);
    const stream = readEvents(opened.body!);
    const registered = (await stream.next())!;
    assert.equal(registered.event, "registered");
    const cancel = (resume: string) =>
      fetch(`${b.url}/v1/wait`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ state: "cancelled", resume }),
      });

    // A wrong secret, at the other relay: the same answer, and nothing moves.
    const wrong = await cancel("not-the-secret-".padEnd(43, "x"));
    assert.equal(wrong.status, 204);
    await wrong.body?.cancel();
    assert.equal(((await a.health()).body.instance as { waiting: number }).waiting, 1, "A still holds it");
    const taken = await postWait(b.url, { state: "cancelled" });
    assert.equal(taken.status, 409, "still taken");
    await taken.body?.cancel();

    const right = await cancel(String(registered.data.resume));
    assert.equal(right.status, 204);
    await right.body?.cancel();
    // Gone at once, cluster-wide: A's stream ends, and the state can be waited for again.
    assert.equal(await within("A ends the cancelled stream", stream.next()), null);
    assert.equal((await a.health()).body.waiting, 0);
    const again = await postWait(b.url, { state: "cancelled" });
    assert.equal(again.status, 200, "the state is free again");
    await again.body?.cancel();
  },
});

Deno.test({
  name: "a cancel at another relay after the callback was kept for a broken stream hands the code to nobody there",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 2, { OAUTH_CLIENT_TOKENS: TOKEN });
    const [a, b] = cluster.relays;
    const opened = await postWait(a.url, { state: "kept-then-cancelled", timeout: 600 });
    const stream = readEvents(opened.body!);
    const { resume } = (await stream.next())!.data;
    // The stream breaks; the callback comes in the gap and is kept for the client.
    await opened.body!.cancel().catch(() => {});
    const page = await callback(a.url, { code: "KEPT-CODE", state: "kept-then-cancelled" });
    assert.equal(page.status, 200, "kept for its client");
    await page.text();

    const cancelled = await fetch(`${b.url}/v1/wait`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "kept-then-cancelled", resume }),
    });
    assert.equal(cancelled.status, 204);
    await cancelled.body?.cancel();
    // B took the registration only to let it go: the code is written to no stream there, and no line says so.
    await cluster[Symbol.asyncDispose]();
    const log = await b.log;
    assert.match(log, /Client cancelled its wait for state: 'kept-then-cancelled' \(held elsewhere\)/);
    assert.doesNotMatch(log, /delivered to client for state: 'kept-then-cancelled'/, "B delivered nothing");
  },
});
