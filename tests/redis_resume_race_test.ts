/**
 * A stranger with a valid client token and a wrong resume secret disturbs
 * nobody, however many requests it sends at once. Resuming puts the resuming
 * waiter in the relay's map of the states it holds while Redis checks the
 * secret; overlapping resumes of one state (POST, or DELETE /v1/wait at a relay
 * that does not hold the stream) used to put back each other's waiters there,
 * leaving a stranger's waiter in the owner's place: the owner's callback then
 * went nowhere, and after a Redis restart the stranger's secret took the code.
 */

import assert from "node:assert/strict";
import { waitForCode } from "../src/client/wait.ts";
import { ignoreWithoutRedis, startRedis, startRelays } from "./support/redis.ts";

const TOKEN = "review-client-token-0123456789abcdef";
const WRONG = "not-the-secret-".padEnd(43, "x");
const ignore = ignoreWithoutRedis();

/** DELETE /v1/wait with a wrong secret, `count` at once; every answer must be 204. */
async function strangerCancels(url: string, state: string, count: number): Promise<void> {
  const responses = await Promise.all(
    Array.from({ length: count }, () =>
      fetch(`${url}/v1/wait`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ state, resume: WRONG }),
      })),
  );
  for (const response of responses) {
    assert.equal(response.status, 204);
    await response.body?.cancel();
  }
}

/** A `waitForCode` at a relay's socket for `state`, once the relay has registered it. */
async function socketWaiter(socketPath: string, state: string): Promise<{ result: Promise<{ code: string | null }> }> {
  const { promise: registered, resolve } = Promise.withResolvers<void>();
  const result = waitForCode({ state, timeout: 30, settings: { socketPath }, onRegistered: () => resolve() });
  result.catch(() => {});
  await registered;
  return { result };
}

Deno.test({
  name: "overlapping DELETEs with a wrong secret do not take a socket waiter's callback away (404, code lost)",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 1, { OAUTH_CLIENT_TOKENS: TOKEN });
    const [a] = cluster.relays;
    const { result } = await socketWaiter(a.socketPath, "victim");

    await strangerCancels(a.url, "victim", 20);

    const page = await fetch(`${a.url}/oauth/callback?code=VICTIM-CODE&state=victim`);
    await page.text();
    assert.equal(page.status, 200, "the owner still waits: its callback must be delivered");
    assert.equal((await result).code, "VICTIM-CODE");
  },
});

Deno.test({
  name: "overlapping DELETEs with a wrong secret for a state nobody holds leave no phantom registration behind",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 1, { OAUTH_CLIENT_TOKENS: TOKEN });
    const [a] = cluster.relays;

    await strangerCancels(a.url, "phantom", 20);

    const health = await a.health();
    assert.equal((health.body.instance as { waiting: number }).waiting, 0, "nothing is held at A");
    const opened = await fetch(`${a.url}/v1/wait`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "phantom", timeout: 5 }),
    });
    await opened.body?.cancel();
    assert.equal(opened.status, 200, "the state is free: its owner can wait for it");
  },
});

Deno.test({
  name:
    "after overlapping wrong-secret DELETEs and a Redis restart, the stranger's secret must not take the victim's code",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await startRelays(redis.url, 1, { OAUTH_CLIENT_TOKENS: TOKEN });
    const [a] = cluster.relays;
    const { result } = await socketWaiter(a.socketPath, "victim");

    await strangerCancels(a.url, "victim", 20);
    // Redis comes back empty: the relay re-asserts what it holds.
    await redis.kill();
    await redis.start();
    await a.logged(/Re-asserted the 1 registration\(s\)/);

    // The stranger resumes with the very secret the relay refused before.
    const stolen = await fetch(`${a.url}/v1/wait`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ state: "victim", resume: WRONG }),
    });
    await stolen.body?.cancel();
    assert.equal(stolen.status, 409, "a wrong secret takes nothing");
    const page = await fetch(`${a.url}/oauth/callback?code=VICTIM-CODE&state=victim`);
    await page.text();
    assert.equal(page.status, 200);
    assert.equal((await result).code, "VICTIM-CODE", "the owner gets its code");
  },
});
