import assert from "node:assert/strict";
import { waitForCode } from "../src/client/wait.ts";
import { OAuthConnectionError, OAuthRelayError, OAuthTimeoutError } from "../src/client/errors.ts";
import { body, MODES, startTestRelay, tempDir, wait } from "./helpers.ts";

for (const mode of MODES) {
  Deno.test(`[${mode}] waitForCode() receives the code of a GET callback for its state`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay, { state: "flow-1" });
    await registered;
    const response = await relay.callback({ code: "AUTH_CODE_XYZ", state: "flow-1", other_param: "value" });
    assert.equal(response.status, 200);
    assert.match(await body(response), /Authorization Complete/);
    assert.deepEqual(await result, {
      success: true,
      code: "AUTH_CODE_XYZ",
      state: "flow-1",
      raw: { code: "AUTH_CODE_XYZ", state: "flow-1", other_param: "value" },
    });
  });

  Deno.test(`[${mode}] waitForCode() receives a POST callback with a JSON body`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay, { state: "json-flow" });
    await registered;
    const response = await relay.callback("", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: "JSON_CODE", state: "json-flow", other: "data" }),
    });
    assert.equal(response.status, 200);
    await body(response);
    const received = await result;
    assert.equal(received.code, "JSON_CODE");
    assert.deepEqual(received.raw, { code: "JSON_CODE", state: "json-flow", other: "data" });
  });

  Deno.test(`[${mode}] waitForCode() receives a form_post callback, query and body both counting`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay, { state: "form-flow" });
    await registered;
    const response = await relay.callback("extra=from-query", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "code=FORM_CODE&state=form-flow&other=data",
    });
    assert.equal(response.status, 200);
    await body(response);
    const received = await result;
    assert.equal(received.code, "FORM_CODE");
    assert.equal(received.state, "form-flow");
    assert.equal(received.raw.extra, "from-query");
  });

  Deno.test(`[${mode}] single-slot mode delivers a callback without state to the waiter without state`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay);
    await registered;
    const response = await relay.callback({ code: "NO_STATE_CODE" });
    assert.equal(response.status, 200);
    await body(response);
    const received = await result;
    assert.equal(received.code, "NO_STATE_CODE");
    assert.equal(received.state, null);
  });

  Deno.test(`[${mode}] single-slot mode: the newest waiter wins and the previous one is told it was superseded`, async () => {
    await using relay = await startTestRelay({ mode });
    const first = wait(relay);
    await first.registered;
    const second = wait(relay);
    await second.registered;
    await assert.rejects(first.result, (error: unknown) => {
      assert.ok(error instanceof OAuthRelayError);
      assert.equal(error.code, "superseded");
      assert.match(error.message, /Superseded/);
      return true;
    });
    const response = await relay.callback({ code: "LAST" });
    await body(response);
    assert.equal((await second.result).code, "LAST");
  });

  Deno.test(`[${mode}] a stateful callback never reaches the single-slot waiter, nor the reverse`, async () => {
    await using relay = await startTestRelay({ mode });
    const single = wait(relay);
    const stateful = wait(relay, { state: "S" });
    await Promise.all([single.registered, stateful.registered]);
    const toUnknown = await relay.callback({ code: "C1", state: "other" });
    assert.equal(toUnknown.status, 404);
    await body(toUnknown);
    const toStateful = await relay.callback({ code: "C2", state: "S" });
    await body(toStateful);
    const toSingle = await relay.callback({ code: "C3" });
    await body(toSingle);
    assert.equal((await stateful.result).code, "C2");
    assert.equal((await single.result).code, "C3");
  });

  Deno.test(`[${mode}] states are matched case-sensitively`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay, { state: "MyFlow" });
    await registered;
    const wrongCase = await relay.callback({ code: "C", state: "myflow" });
    assert.equal(wrongCase.status, 404);
    await body(wrongCase);
    const right = await relay.callback({ code: "C", state: "MyFlow" });
    assert.equal(right.status, 200);
    await body(right);
    assert.equal((await result).code, "C");
  });

  Deno.test(`[${mode}] three concurrent flows with different states are independent`, async () => {
    await using relay = await startTestRelay({ mode });
    const states = ["user1-auth", "user2-auth", "user3-auth"];
    const waits = states.map((state) => wait(relay, { state }));
    await Promise.all(waits.map((w) => w.registered));
    for (const state of [...states].reverse()) await body(await relay.callback({ code: `code-${state}`, state }));
    const results = await Promise.all(waits.map((w) => w.result));
    assert.deepEqual(results.map((r) => r.code), states.map((state) => `code-${state}`));
  });

  Deno.test(`[${mode}] a thousand concurrent waiters in one process each get their own code`, async () => {
    await using relay = await startTestRelay({ mode });
    const states = Array.from({ length: 1000 }, (_, i) => `state-${i}-${crypto.randomUUID()}`);
    const waits = states.map((state) => wait(relay, { state }));
    await Promise.all(waits.map((w) => w.registered));
    assert.equal(await relay.relay.registry.count(), 1000);
    const order = [...states].sort(() => Math.random() - 0.5);
    for (let i = 0; i < order.length; i += 50) {
      await Promise.all(
        order.slice(i, i + 50).map(async (state) => {
          const response = await relay.callback({ code: `code:${state}`, state });
          assert.equal(response.status, 200);
          await body(response);
        }),
      );
    }
    const results = await Promise.all(waits.map((w) => w.result));
    results.forEach((result, i) => assert.equal(result.code, `code:${states[i]}`));
    assert.equal(await relay.relay.registry.count(), 0);
  });

  Deno.test(`[${mode}] a callback with no client waiting gets a 404 page and is logged`, async () => {
    await using relay = await startTestRelay({ mode });
    const response = await relay.callback({ code: "SECRET_CODE_1", state: "unmatched" });
    assert.equal(response.status, 404);
    assert.match(await body(response), /Authorization Failed – No client waiting/);
    await relay.logged(/No client waiting for state 'unmatched' - dropping callback/);
    assert.ok(!relay.logs.some((line) => line.includes("SECRET_CODE_1")), "the code must never be logged");
  });

  Deno.test(`[${mode}] a replayed callback for a delivered state gets 404 (replay protection)`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay, { state: "X" });
    await registered;
    await body(await relay.callback({ code: "C1", state: "X" }));
    assert.equal((await result).code, "C1");
    const replay = await relay.callback({ code: "C1", state: "X" });
    assert.equal(replay.status, 404);
    assert.match(await body(replay), /Already Completed/);
  });

  Deno.test(`[${mode}] an error callback is delivered with success false and the payload in raw`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay, { state: "denied" });
    await registered;
    const response = await relay.callback({
      error: "access_denied",
      error_description: "The user <b>denied</b> access",
      state: "denied",
    });
    assert.equal(response.status, 200);
    const page = await body(response);
    assert.match(page, /Authorization Not Granted/);
    assert.doesNotMatch(page, /Authorization Complete/);
    assert.match(page, /access_denied/);
    assert.match(page, /The user &lt;b&gt;denied&lt;\/b&gt; access/);
    const received = await result;
    assert.equal(received.success, false);
    assert.equal(received.code, null);
    assert.deepEqual(received.raw, {
      error: "access_denied",
      error_description: "The user <b>denied</b> access",
      state: "denied",
    });
  });

  Deno.test(`[${mode}] waitForCode() rejects with OAuthTimeoutError after the timeout`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result } = wait(relay, { state: "slow", timeout: 0.2 });
    await assert.rejects(result, OAuthTimeoutError);
    // The relay forgets the waiter: a late callback finds no one.
    const late = await relay.callback({ code: "LATE", state: "slow" });
    assert.equal(late.status, 404);
    assert.match(await body(late), /No client waiting/);
  });

  Deno.test(`[${mode}] an aborted wait rejects with the signal's reason and the relay forgets it at once`, async () => {
    await using relay = await startTestRelay({ mode });
    const controller = new AbortController();
    const { result, registered } = wait(relay, { state: "cancel-me", signal: controller.signal });
    await registered;
    assert.equal(await relay.relay.registry.count(), 1);
    const reason = new Error("user cancelled");
    controller.abort(reason);
    await assert.rejects(result, (error) => error === reason);
    await relay.logged(/Client for state 'cancel-me' disconnected before its callback/);
    assert.equal(await relay.relay.registry.count(), 0);
    const late = await relay.callback({ code: "C", state: "cancel-me" });
    assert.equal(late.status, 404);
    await body(late);
  });

  Deno.test(`[${mode}] a second client for a state that already has a waiter is refused; the first keeps it`, async () => {
    await using relay = await startTestRelay({ mode });
    const first = wait(relay, { state: "dup" });
    await first.registered;
    const second = wait(relay, { state: "dup" });
    await assert.rejects(second.result, (error: unknown) => {
      assert.ok(error instanceof OAuthRelayError);
      assert.equal(error.code, "state_taken");
      return true;
    });
    await body(await relay.callback({ code: "MINE", state: "dup" }));
    assert.equal((await first.result).code, "MINE");
  });

  Deno.test(`[${mode}] /health reports the transport, address and number of waiting clients`, async () => {
    await using relay = await startTestRelay({ mode });
    const { result, registered } = wait(relay, { state: "h" });
    await registered;
    const health = await (await fetch(`${relay.url}/health`)).json();
    assert.equal(health.status, "ok");
    assert.equal(health.enabled, true);
    assert.equal(health.waiting, 1);
    assert.equal(health.coordinator.transport, mode);
    if (mode === "unix") assert.equal(health.coordinator.path, relay.client.socketPath);
    else {assert.deepEqual(health.coordinator, {
        transport: "tcp",
        hostname: "127.0.0.1",
        port: relay.client.tcpFallbackPort,
      });}
    await body(await relay.callback({ code: "C", state: "h" }));
    await result;
  });
}

Deno.test("waitForCode() rejects with OAuthConnectionError when no relay listens on the socket", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const path = `${dir}/none.sock`;
  await assert.rejects(
    waitForCode({ state: "s", settings: { socketPath: path, useTcp: false } }),
    (error: unknown) => {
      assert.ok(error instanceof OAuthConnectionError);
      assert.equal(error.message, `Cannot connect to relay at ${path}: no such socket; is the relay running?`);
      return true;
    },
  );
});

Deno.test("waitForCode() rejects with OAuthConnectionError when no relay listens on the TCP port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    waitForCode({ state: "s", settings: { useTcp: true, tcpFallbackPort: port } }),
    OAuthConnectionError,
  );
});

Deno.test("waitForCode() validates its options with errors naming the option", async () => {
  await assert.rejects(waitForCode({ timeout: -1 }), { name: "RangeError", message: /"options.timeout"/ });
  await assert.rejects(waitForCode({ timeout: 30 * 86400 }), { name: "RangeError", message: /at most 2147483/ });
  await assert.rejects(waitForCode({ state: "" }), { name: "TypeError", message: /"options.state"/ });
});

Deno.test("a disabled relay serves no callback route and no coordinator, and health says so", async () => {
  await using relay = await startTestRelay({ settings: { enabled: false } });
  const response = await relay.callback({ code: "C", state: "s" });
  assert.equal(response.status, 404);
  await body(response);
  const health = await (await fetch(`${relay.url}/health`)).json();
  assert.deepEqual(health, { status: "ok", enabled: false, coordinator: null, waiting: 0 });
  await assert.rejects(Deno.lstat(relay.client.socketPath!), Deno.errors.NotFound);
});

Deno.test("a relay with single-slot mode off refuses a stateless waiter with single_slot_disabled", async () => {
  await using relay = await startTestRelay({ relay: { singleSlot: false } });
  await assert.rejects(wait(relay).result, (error: unknown) => {
    assert.ok(error instanceof OAuthRelayError);
    assert.equal(error.code, "single_slot_disabled");
    return true;
  });
  const stateless = await relay.callback({ code: "NO_STATE" });
  assert.equal(stateless.status, 404);
  await body(stateless);
});

Deno.test("the relay caps a registration at its maximum and the client learns it", async () => {
  await using relay = await startTestRelay({ relay: { maxTimeout: 1 } });
  let info: { timeout?: number; capped: boolean } | undefined;
  const { result, registered } = wait(relay, { state: "capped", timeout: 600, onRegistered: (i) => info = i });
  await registered;
  assert.deepEqual(info, { timeout: 1, capped: true });
  await assert.rejects(result, OAuthTimeoutError);
});
