/**
 * Remote waiting over HTTP(S): POST /v1/wait with a bearer token, server-sent
 * events, and resume after a dropped stream — against a real relay, with
 * `waitForCode` over its HTTPS transport and with raw `fetch` where the test
 * must cut the stream at a chosen moment.
 */

import assert from "node:assert/strict";
import { OAuthRelayError } from "../src/client/errors.ts";
import { waitForCode } from "../src/client/wait.ts";
import { body, startTestRelay, type TestRelay, wait } from "./helpers.ts";
import { readEvents } from "./support/events.ts";

const TOKEN = "remote-client-token-0123456789abcdef";
const OTHER = "another-client-token-0123456789abcdef";

function remote(relay: TestRelay, token = TOKEN) {
  return { relayUrl: relay.url, clientToken: token };
}

/** A raw wait stream, read event by event, that the test can cut at any moment. */
async function openStream(relay: TestRelay, request: Record<string, unknown>, token = TOKEN) {
  const aborter = new AbortController();
  const response = await fetch(`${relay.url}/v1/wait`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(request),
    signal: aborter.signal,
  });
  const events = readEvents(response.body!);
  return {
    response,
    next: events.next,
    chunk: events.chunk,
    cut() {
      aborter.abort();
      events.close();
    },
  };
}

function startRemoteRelay(extra: Record<string, unknown> = {}) {
  return startTestRelay({ relay: { clientTokens: [TOKEN, OTHER], resumeGraceMs: 2_000, ...extra } });
}

Deno.test("without client tokens the relay has no /v1/wait", async () => {
  await using relay = await startTestRelay();
  const response = await fetch(`${relay.url}/v1/wait`, { method: "POST", body: "{}" });
  assert.equal(response.status, 404);
  await body(response);
});

Deno.test("a remote waitForCode gets its code over HTTP on loopback, announced once", async () => {
  await using relay = await startRemoteRelay();
  let announced = 0;
  const { result, registered } = wait(relay, {
    state: "remote-1",
    settings: remote(relay),
    onRegistered: () => announced++,
  });
  await registered;
  const page = await relay.callback({ code: "REMOTE_CODE", state: "remote-1", iss: "https://issuer.example" });
  assert.equal(page.status, 200);
  assert.match(await body(page), /Authorization Complete/);
  const got = await result;
  assert.deepEqual(got, {
    success: true,
    code: "REMOTE_CODE",
    state: "remote-1",
    raw: { code: "REMOTE_CODE", state: "remote-1", iss: "https://issuer.example" },
  });
  assert.equal(announced, 1);
  assert.ok(
    !relay.logs.some((line) => line.includes("REMOTE_CODE") || line.includes(TOKEN)),
    "no code or token logged",
  );
});

Deno.test("authentication: no token, a wrong one, one of another length are 401 with a Bearer challenge", async (t) => {
  await using relay = await startRemoteRelay();
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ["no token", {}, /^Bearer realm="oauth-relay"$/],
    ["a wrong token", { authorization: `Bearer ${TOKEN.replace("0", "1")}` }, /error="invalid_token"/],
    ["a token of another length", { authorization: "Bearer short" }, /error="invalid_token"/],
    ["another scheme", { authorization: `Basic ${btoa(`x:${TOKEN}`)}` }, /^Bearer realm="oauth-relay"$/],
  ];
  for (const [name, headers, challenge] of cases) {
    await t.step(name, async () => {
      const response = await fetch(`${relay.url}/v1/wait`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ state: "auth" }),
      });
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate")!, challenge);
      assert.equal((await response.json()).code, "unauthorized");
    });
  }
  await assert.rejects(
    wait(relay, { state: "auth", settings: remote(relay, "not-a-valid-token-for-this-relay-0000") }).result,
    (error: unknown) => error instanceof OAuthRelayError && error.code === "unauthorized",
  );
  assert.equal(await relay.relay.registry.count(), 0);
});

Deno.test("a token removed at restart (revoked) is refused by the new relay", async () => {
  await using first = await startRemoteRelay();
  const ok = await openStream(first, { state: "before" }, OTHER);
  assert.equal((await ok.next())?.event, "registered");
  ok.cut();
  await using second = await startTestRelay({ relay: { clientTokens: [TOKEN] } });
  const refused = await fetch(`${second.url}/v1/wait`, {
    method: "POST",
    headers: { authorization: `Bearer ${OTHER}`, "content-type": "application/json" },
    body: JSON.stringify({ state: "after" }),
  });
  assert.equal(refused.status, 401);
  await body(refused);
});

Deno.test("refusals before the stream are JSON with the protocol's codes and statuses", async (t) => {
  await using relay = await startRemoteRelay({ maxWaiters: 3, maxWaitersPerToken: 2 });
  const post = (payload: unknown, token = TOKEN, type = "application/json") =>
    fetch(`${relay.url}/v1/wait`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": type },
      body: typeof payload === "string" ? payload : JSON.stringify(payload),
    });
  await t.step("400 for a body without a state, bad JSON or another content type", async () => {
    for (const [payload, type] of [[{ timeout: 5 }, undefined], ["{", undefined], [{ state: "s" }, "text/plain"]]) {
      const response = await post(payload, TOKEN, type as string | undefined);
      assert.equal(response.status, 400);
      assert.equal((await response.json()).code, "protocol");
    }
  });
  const socketWaiter = wait(relay, { state: "held-by-socket" });
  await socketWaiter.registered;
  await t.step("409 state_taken", async () => {
    const response = await post({ state: "held-by-socket" });
    assert.equal(response.status, 409);
    assert.equal((await response.json()).code, "state_taken");
  });
  await body(await relay.callback({ code: "C", state: "held-by-socket" }));
  await socketWaiter.result;
  await t.step("410 state_used", async () => {
    const response = await post({ state: "held-by-socket" });
    assert.equal(response.status, 410);
    assert.equal((await response.json()).code, "state_used");
  });
  const streams = [await openStream(relay, { state: "a" }), await openStream(relay, { state: "b" })];
  for (const stream of streams) assert.equal((await stream.next())?.event, "registered");
  await t.step("429 with Retry-After at the per-token cap", async () => {
    const response = await post({ state: "c" });
    assert.equal(response.status, 429);
    assert.ok(Number(response.headers.get("retry-after")) > 0);
    assert.equal((await response.json()).code, "too_many_waiters");
  });
  const third = await openStream(relay, { state: "c" }, OTHER);
  assert.equal((await third.next())?.event, "registered");
  await t.step("503 with Retry-After when the relay is full", async () => {
    const response = await post({ state: "d" }, OTHER);
    assert.equal(response.status, 503);
    assert.ok(Number(response.headers.get("retry-after")) > 0);
    assert.equal((await response.json()).code, "too_many_waiters");
  });
  for (const stream of [...streams, third]) stream.cut();
});

Deno.test("drop and resume: a callback in the gap is kept and handed over on resume", async () => {
  await using relay = await startRemoteRelay();
  const first = await openStream(relay, { state: "gap", timeout: 60 });
  const registered = await first.next();
  assert.equal(registered?.event, "registered");
  const secret = registered!.data.resume as string;
  assert.match(secret, /^[A-Za-z0-9_-]{43}$/, "a fresh 256-bit secret");
  assert.equal(registered!.data.state, "gap");
  assert.ok(Date.parse(registered!.data.expires_at as string) > Date.now());
  first.cut();
  const page = await relay.callback({ code: "KEPT", state: "gap" });
  assert.equal(page.status, 200, "kept for its owner counts as complete");
  await body(page);
  const back = await openStream(relay, { state: "gap", resume: secret });
  assert.equal((await back.next())?.event, "registered");
  const callback = await back.next();
  assert.deepEqual([callback?.event, (callback?.data as { code: string }).code], ["callback", "KEPT"]);
  assert.equal(await back.next(), null, "the stream ends after the callback");
});

Deno.test("drop and resume: a callback written just before the cut is handed over again on resume", async () => {
  await using relay = await startRemoteRelay();
  const stream = await openStream(relay, { state: "again" });
  const secret = (await stream.next())!.data.resume as string;
  await body(await relay.callback({ code: "TWICE", state: "again" }));
  assert.equal(((await stream.next())!.data as { code: string }).code, "TWICE");
  stream.cut();
  const back = await openStream(relay, { state: "again", resume: secret });
  assert.equal((await back.next())?.event, "registered");
  assert.equal(((await back.next())!.data as { code: string }).code, "TWICE");
});

Deno.test("drop and resume: never resumed, the kept callback expires with the grace period; replays are 404", async () => {
  await using relay = await startRemoteRelay({ resumeGraceMs: 100 });
  const stream = await openStream(relay, { state: "orphan" });
  const secret = (await stream.next())!.data.resume as string;
  stream.cut();
  await body(await relay.callback({ code: "LOST", state: "orphan" }));
  await relay.logged(/Remote registration for state 'orphan' expired/);
  const replay = await relay.callback({ code: "LOST", state: "orphan" });
  assert.equal(replay.status, 404);
  await body(replay);
  // The secret no longer takes anything back: the state was used.
  const late = await fetch(`${relay.url}/v1/wait`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ state: "orphan", resume: secret }),
  });
  assert.equal(late.status, 410);
  await body(late);
});

Deno.test("drop and resume: strangers are refused in the gap, and the owner is not disturbed", async () => {
  await using relay = await startRemoteRelay();
  const owner = await openStream(relay, { state: "mine" });
  const secret = (await owner.next())!.data.resume as string;
  owner.cut();
  for (const stranger of [{ state: "mine" }, { state: "mine", resume: "x".repeat(43) }]) {
    for (const token of [TOKEN, OTHER]) {
      const response = await fetch(`${relay.url}/v1/wait`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(stranger),
      });
      assert.equal(response.status, 409);
      assert.equal((await response.json()).code, "state_taken");
    }
  }
  await body(await relay.callback({ code: "OWNERS", state: "mine" }));
  const back = await openStream(relay, { state: "mine", resume: secret });
  await back.next();
  assert.equal(((await back.next())!.data as { code: string }).code, "OWNERS");
  assert.ok(!relay.logs.some((line) => line.includes(secret)), "a resume secret is never logged");
});

Deno.test("a cancelled remote wait is freed at once", async () => {
  await using relay = await startRemoteRelay();
  const controller = new AbortController();
  const { result, registered } = wait(relay, {
    state: "cancel-me",
    settings: remote(relay),
    signal: controller.signal,
  });
  await registered;
  assert.equal(await relay.relay.registry.count(), 1);
  controller.abort(new Error("no longer needed"));
  await assert.rejects(result, /no longer needed/);
  await relay.logged(/Client cancelled its wait for state: 'cancel-me'/);
  assert.equal(await relay.relay.registry.count(), 0);
  // The state is free again at once, not after the grace period.
  const again = wait(relay, { state: "cancel-me" });
  await again.registered;
  await body(await relay.callback({ code: "FREED", state: "cancel-me" }));
  assert.equal((await again.result).code, "FREED");
});

Deno.test("an idle stream carries heartbeats", async () => {
  await using relay = await startRemoteRelay({ sseHeartbeatMs: 50 });
  const stream = await openStream(relay, { state: "quiet" });
  assert.equal((await stream.next())?.event, "registered");
  assert.match(await stream.chunk(), /^: keep-alive\n\n/);
  stream.cut();
});

Deno.test("the stream's headers keep proxies from buffering or caching it", async () => {
  await using relay = await startRemoteRelay();
  const stream = await openStream(relay, { state: "headers" });
  const { headers } = stream.response;
  assert.match(headers.get("content-type")!, /^text\/event-stream/);
  assert.equal(headers.get("cache-control"), "no-store");
  assert.equal(headers.get("x-accel-buffering"), "no");
  stream.cut();
});

/** A TCP proxy in front of the relay whose connections the test can cut, as a proxy or a network would. */
function cuttableProxy(target: string) {
  const { hostname, port } = new URL(target);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname, port: Number(port) });
      open.add(client).add(upstream);
      Promise.all([
        client.readable.pipeTo(upstream.writable).catch(() => {}),
        upstream.readable.pipeTo(client.writable).catch(() => {}),
      ]).finally(() => {
        open.delete(client);
        open.delete(upstream);
      });
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    cutAll() {
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      open.clear();
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      this.cutAll();
      await serving;
    },
  };
}

Deno.test("a remote client reconnects with its secret when the stream breaks, and gets its code", async () => {
  await using relay = await startRemoteRelay();
  await using proxy = cuttableProxy(relay.url);
  let announced = 0;
  const { result, registered } = wait(relay, {
    state: "reconnects",
    settings: { relayUrl: proxy.url, clientToken: TOKEN },
    onRegistered: () => announced++,
  });
  await registered;
  proxy.cutAll();
  await relay.logged(/Client resumed its wait for state: 'reconnects'/);
  await body(await relay.callback({ code: "BACK", state: "reconnects" }));
  assert.equal((await result).code, "BACK");
  assert.equal(announced, 1, "a resumed wait never announces itself twice");
});

Deno.test("http:// is refused for a relay that is not on loopback, so a token never travels in clear", async () => {
  await assert.rejects(
    waitForCode({ state: "s", settings: { relayUrl: "http://relay.example.com", clientToken: TOKEN } }),
    /must use https:\/\/ \(http:\/\/ only for a loopback host\)/,
  );
});

Deno.test("a remote wait body larger than the limit is refused, also when chunked", async () => {
  await using relay = await startRemoteRelay();
  const big = JSON.stringify({ state: "big", pad: "x".repeat(64 * 1024) });
  const chunked = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(big));
      controller.close();
    },
  });
  for (const payload of [big, chunked]) {
    const response = await fetch(`${relay.url}/v1/wait`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: payload,
    });
    assert.equal(response.status, 400);
    assert.match((await response.json()).message, /larger than 16384 bytes/);
  }
  assert.equal(await relay.relay.registry.count(), 0);
});
