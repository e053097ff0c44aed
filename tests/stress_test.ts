/**
 * The figures of docs/reliability.md, small enough for `deno task test`:
 * the scenarios of `deno task stress` (tests/support/scenarios/) against an
 * in-process relay.
 *
 * @module
 */

import assert from "node:assert/strict";
import { missingSecurityHeaders } from "./support/generators.ts";
import { connectTo, readAll, type Target } from "./support/load.ts";
import { RelayProcess } from "./support/relay_process.ts";
import { parallelIdentical } from "./support/scenarios/duplicates.ts";
import { fuzzFrames } from "./support/scenarios/fuzz_frames.ts";
import { fuzzWire } from "./support/scenarios/fuzz_wire.ts";
import { slowConnections } from "./support/scenarios/slow.ts";
import { manyWaiters } from "./support/scenarios/waiters.ts";
import { waitForCode } from "../src/client/wait.ts";
import { DEFAULT_SETTINGS } from "../src/client/settings.ts";
import { createHandler, type HttpLimits } from "../src/relay/http/handler.ts";
import { createLogger } from "../src/relay/log.ts";
import { MemoryRegistry } from "../src/relay/registry/memory.ts";
import { body, startTestRelay, type TestRelay } from "./helpers.ts";

function targetOf(relay: TestRelay): Target {
  return {
    url: relay.url,
    callbackPath: "/oauth/callback",
    client: relay.client,
    coordinator: relay.relay.coordinator!,
    waiting: () => relay.relay.registry.count(),
    errors: () => Promise.resolve(relay.logs.filter((line) => / ERROR - /.test(line))),
  };
}

const seed = Math.floor(Math.random() * 2 ** 31);

Deno.test(`1,000 concurrent waiters each get their own code when callbacks and decoys arrive in random order (seed ${seed})`, async () => {
  await using relay = await startTestRelay({ relay: { maxWaiters: 20_000 } });
  const f = await manyWaiters(targetOf(relay), {
    waiters: 1_000,
    decoys: 200,
    concurrency: 50,
    registerConcurrency: 100,
    seed,
    deadlineMs: 30_000,
  });
  assert.equal(f.waitingAtPeak, 1_000);
  assert.deepEqual(
    { delivered: f.delivered, lost: f.lost, misrouted: f.misrouted, not200: f.callbacksNot200, decoys404: f.decoys404 },
    { delivered: 1_000, lost: 0, misrouted: 0, not200: 0, decoys404: 200 },
  );
  assert.equal(f.httpErrors, 0);
  assert.equal(f.waitingAfter, 0);
  assert.equal(f.relayErrors, 0);
});

Deno.test(`20 parallel identical callbacks for each of 50 states deliver exactly once; the others get 404 (seed ${seed})`, async () => {
  await using relay = await startTestRelay({ relay: { maxWaiters: 20_000 } });
  const f = await parallelIdentical(targetOf(relay), {
    states: 50,
    parallel: 20,
    registerConcurrency: 50,
    seed,
    deadlineMs: 30_000,
  });
  assert.equal(f.ok200, 50);
  assert.equal(f.statesNotExactlyOnce, 0);
  assert.equal(f.duplicateDeliveries, 0);
  assert.equal(f.already404 + f.noClient404, 50 * 19);
  assert.equal(f.otherAnswers + f.httpErrors, 0);
  assert.deepEqual({ delivered: f.delivered, lost: f.lost, misrouted: f.misrouted }, {
    delivered: 50,
    lost: 0,
    misrouted: 0,
  });
  assert.equal(f.waitingAfter, 0);
  assert.equal(f.relayErrors, 0);
});

Deno.test(`50 slow connections dribbling headers, bodies and protocol bytes do not hold up 40 real callbacks (seed ${seed})`, async () => {
  await using relay = await startTestRelay({ relay: { registerTimeoutMs: 600 } });
  const f = await slowConnections(targetOf(relay), {
    http: 26,
    coordinator: 24,
    dribbleMs: 2_000,
    byteEveryMs: [100, 300],
    flows: 40,
    flowConcurrency: 10,
    seed,
  });
  assert.equal(f.connectErrors, 0);
  assert.equal(f.flowsOk, f.flows, `a real flow failed: ${f.flowFailure}`);
  // Silent past registerTimeoutMs: every coordinator dribbler is told "idle" and cut.
  assert.equal(f.coordinatorCut, 24);
  assert.equal(f.waitingAfter, 0);
  assert.equal(f.relayErrors, 0, `relay logged: ${f.relayErrorSample}`);
});

Deno.test(`the live relay answers 200 generated frames and 200 generated requests and keeps serving (seed ${seed})`, async () => {
  await using relay = await startTestRelay();
  const f = await fuzzWire(targetOf(relay), { frames: 200, requests: 200, concurrency: 20, seed });
  assert.equal(f.unanswered, 0);
  assert.equal(f.coordinatorConnectErrors, 0);
  assert.equal(f.badAnswers, 0, f.badAnswer ?? "");
  assert.equal(f.httpErrors, 0);
  assert.equal(f.waitingAfter, 0);
  assert.equal(f.relayErrors, 0);
  // And a real flow still works afterwards.
  const result = waitForCode({ state: "after-fuzz", timeout: 10, settings: relay.client });
  await relay.logged(/Client registered for state: 'after-fuzz'/);
  await body(await relay.callback({ code: "C", state: "after-fuzz" }));
  assert.equal((await result).code, "C");
});

Deno.test(`the decoder takes 20,000 generated frames with only ProtocolError and bounded memory (seed ${seed})`, () => {
  const f = fuzzFrames({ frames: 20_000, seed, timeBudgetMs: 20_000 });
  assert.equal(f.crashes, 0, f.crash ?? "");
  assert.ok(f.frames >= 20_000);
  assert.ok(f.accepted > 0 && f.refused > 0, "both kinds of frame were generated");
  // Without --expose-gc (deno test has none) the heap is measured with garbage in it: allow for that.
  const slack = (f.gcExposed ? 16 : 64) * 1024 * 1024;
  assert.ok(f.heapAfter - f.heapBefore < slack, `heap grew from ${f.heapBefore} to ${f.heapAfter} bytes`);
});

Deno.test({
  name: "the relay survives a flood of coordinator connections past its file limit",
  // Needs bash for `ulimit -n`.
  ignore: Deno.build.os === "windows",
  async fn() {
    // Any local process may open coordinator connections. The relay caps them (maxWaiters + 64) so it never
    // runs out of descriptors, and its accept loop retries after EMFILE instead of dying of it.
    await using relay = await RelayProcess.start({
      useTcp: false,
      maxWaiters: 20,
      registerTimeoutMs: 300,
      fileLimit: 128,
    });
    const flood: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 200; i++) flood.push(await connectTo(relay.coordinator));
    } catch { /* the backlog is full: the flood has arrived */ }
    // The relay cuts each silent connection as idle after 300 ms (or drops them all when it dies).
    await Promise.all(flood.map((conn) => readAll(conn, 5_000)));
    for (const conn of flood) {
      try {
        conn.close();
      } catch { /* closed by readAll */ }
    }
    const { promise: registered, resolve } = Promise.withResolvers<void>();
    const result = waitForCode({
      state: "after-flood",
      timeout: 10,
      settings: relay.client,
      onRegistered: () => resolve(),
    });
    const first = await Promise.race([
      registered.then(() => "registered"),
      result.then(() => "delivered", (error: Error) => `wait failed: ${error.message}`),
      relay.exited.then(() => "relay exited"),
    ]);
    if (first === "registered") await body(await fetch(`${relay.url}/oauth/callback?code=C&state=after-flood`));
    const alive = await relay.stats().then(() => true, () => false);
    if (!alive) await relay.exited; // so relay.crashed holds the exit code and stderr
    assert.ok(alive, `the relay must survive running out of file descriptors (${first}): ${relay.crashed}`);
    assert.equal((await result).code, "C");
  },
});

Deno.test("a POST body that never finishes is answered 408 at the body deadline (docs/security.md rule 10)", async () => {
  // Deno.serve has no header timeout, so the body is the part the relay can bound.
  const limits: Partial<HttpLimits> = { bodyTimeoutMs: 200 };
  const handler = createHandler({
    settings: { ...DEFAULT_SETTINGS },
    registry: new MemoryRegistry(),
    logger: createLogger("silent"),
    coordinator: () => null,
    limits,
  });
  const stalled = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("code=X&state=s1&pad="));
    },
  });
  const answer = handler(
    new Request(`http://127.0.0.1${DEFAULT_SETTINGS.callbackPath}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: stalled,
    }),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"no answer">((resolve) => timer = setTimeout(() => resolve("no answer"), 1_500));
  const outcome = await Promise.race([answer, late]);
  clearTimeout(timer);
  if (outcome === "no answer") {
    await stalled.cancel().catch(() => {}); // let the handler finish (its reader is locked; cancel fails quietly)
    assert.fail("the handler had not answered a stalled body after 1.5 s");
  }
  await outcome.arrayBuffer();
  assert.ok([400, 408].includes(outcome.status), `status ${outcome.status}`);
  assert.deepEqual(missingSecurityHeaders(outcome.headers), []);
});
