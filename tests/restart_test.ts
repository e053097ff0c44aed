/**
 * Restarts and shutdown lose nothing: waiters come back by themselves, and
 * a client that dies is forgotten at once.
 */
import assert from "node:assert/strict";
import { waitForCode } from "../src/client/wait.ts";
import { OAuthConnectionError } from "../src/client/errors.ts";
import type { OAuthCallbackResult } from "../src/protocol/mod.ts";
import { body, runCli, startServer, startTestRelay, tempDir, type TestRelay, wait } from "./helpers.ts";

/** In-process waiters against a relay at `socket`; `registered` resolves once all are registered. */
function waiters(socket: string, states: string[], timeout = 30) {
  const registrations = states.map(() => Promise.withResolvers<void>());
  const results = states.map((state, i) =>
    waitForCode({
      state,
      timeout,
      settings: { socketPath: socket, useTcp: false },
      onRegistered: () => registrations[i].resolve(),
    })
  );
  return { results, registered: Promise.all(registrations.map((r) => r.promise)) };
}

async function deliverAll(url: string, states: string[], results: Promise<OAuthCallbackResult>[]) {
  for (const state of states) {
    const response = await fetch(`${url}/oauth/callback?code=code-${state}&state=${state}`);
    assert.equal(response.status, 200, `callback for ${state}`);
    await body(response);
  }
  assert.deepEqual((await Promise.all(results)).map((r) => r.code), states.map((state) => `code-${state}`));
}

Deno.test("waiters survive a relay killed with SIGKILL and started again: every callback is delivered", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const socket = `${dir}/relay.sock`;
  const env = { OAUTH_SOCKET_PATH: socket, PORT: "0" };
  const states = ["k1", "k2", "k3"];
  await using first = startServer(env);
  await first.url;
  const { results, registered } = waiters(socket, states);
  await registered;
  first.child.kill("SIGKILL");
  await first.exited;
  assert.ok((await Deno.lstat(socket)).isSocket, "the killed relay left its socket behind");
  await using second = startServer(env);
  const url = await second.url;
  await second.logged(/Client registered for state/, states.length);
  await deliverAll(url, states, results);
});

Deno.test("SIGTERM tells waiting clients, removes the socket and exits 0; the clients wait for the next relay", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const socket = `${dir}/relay.sock`;
  const env = { OAUTH_SOCKET_PATH: socket, PORT: "0" };
  const states = ["t1", "t2"];
  await using first = startServer(env);
  await first.url;
  const { results, registered } = waiters(socket, states);
  await registered;
  first.child.kill("SIGTERM");
  const { code, stderr } = await first.exited;
  assert.equal(code, 0, stderr);
  assert.match(stderr, /OAuth coordinator stopped/);
  await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);

  await using second = startServer(env);
  const url = await second.url;
  await second.logged(/Client registered for state/, states.length);
  await deliverAll(url, states, results);
});

Deno.test("a registered waiter rejects with OAuthConnectionError when the relay does not come back in time", async () => {
  const relay = await startTestRelay();
  const { result, registered } = wait(relay, { state: "orphan", timeout: 1 });
  await registered;
  await relay[Symbol.asyncDispose]();
  await assert.rejects(result, (error: unknown) => {
    assert.ok(error instanceof OAuthConnectionError);
    assert.match(error.message, /went away and did not come back within 1 second;/);
    return true;
  });
});

Deno.test("shutdown sends waiting clients a shutdown message before closing", async () => {
  await using relay = await startTestRelay();
  const conn = await Deno.connect({ transport: "unix", path: relay.client.socketPath! });
  await conn.write(new TextEncoder().encode('{"v":2,"type":"register","state":"raw"}\n'));
  const reading = new Response(conn.readable).text();
  await relay.logged(/Client registered for state: 'raw'/);
  await relay.relay.shutdown();
  const lines = (await reading).trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(lines, [
    { v: 2, type: "registered", state: "raw", timeout: 30 },
    { v: 2, type: "error", code: "shutdown", message: "The relay is shutting down" },
  ]);
});

/** A form POST to the callback whose body arrives in two parts, the second when the test calls `finish`. */
function postInTwoParts(relay: TestRelay, first: string, rest: string) {
  const encoder = new TextEncoder();
  let finish!: () => void;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(first));
      finish = () => {
        controller.enqueue(encoder.encode(rest));
        controller.close();
      };
    },
  });
  const response = fetch(`${relay.url}/oauth/callback`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: stream,
  });
  return { response, finish };
}

Deno.test("shutdown finishes a callback that is already in flight before telling the waiters", async () => {
  await using relay = await startTestRelay();
  const { result, registered } = wait(relay, { state: "inflight" });
  await registered;
  const { response, finish } = postInTwoParts(relay, "code=IN_FLIGHT&", "state=inflight");
  await relay.logged(/Callback request: POST/);
  const stopping = relay.relay.shutdown();
  finish();
  const page = await response;
  assert.equal(page.status, 200, relay.logs.join("\n"));
  await body(page);
  assert.equal((await result).code, "IN_FLIGHT");
  await stopping;
});

Deno.test("a body still unfinished when the shutdown grace ends gets 503 and a reload page, not 400", async () => {
  await using relay = await startTestRelay({ relay: { shutdownGraceMs: 50 } });
  const { result, registered } = wait(relay, { state: "slow-body" });
  await registered;
  // Half a body now, the rest only after the grace period.
  const { response, finish } = postInTwoParts(relay, "code=TOO_LATE&", "state=slow-body");
  await relay.logged(/Callback request: POST/);
  const stopping = relay.relay.shutdown();
  await relay.logged(/still in flight after 50 ms are answered 503/);
  finish();
  const page = await response;
  assert.equal(page.status, 503, relay.logs.join("\n"));
  assert.equal(page.headers.get("retry-after"), "5");
  assert.match(await page.text(), /Reload this page in a moment/);
  await stopping;
  // The waiter was told the relay stops (it would reconnect to the next one); cancel it here.
  result.catch(() => {});
});

Deno.test("a client that dies is forgotten at once; the next client for its state gets the callback", async () => {
  await using relay = await startTestRelay();
  {
    await using cli = runCli(["--state", "mortal", "--socket", relay.client.socketPath!]);
    await cli.waiting;
  } // disposing kills the CLI process
  await relay.logged(/Client for state 'mortal' disconnected before its callback/);
  assert.equal(await relay.relay.registry.count(), 0);
  const orphan = await relay.callback({ code: "FOR_NOBODY", state: "mortal" });
  assert.equal(orphan.status, 404);
  await body(orphan);

  const { result, registered } = wait(relay, { state: "mortal" });
  await registered;
  await body(await relay.callback({ code: "FOR_THE_LIVING", state: "mortal" }));
  assert.equal((await result).code, "FOR_THE_LIVING");
});
