/**
 * No flood, on either port, ends the relay or locks out real clients
 * (docs/security.md, "A connection flood on the HTTP port or the coordinator
 * ends the process"): the caps come from the file limit, connections that
 * send no request head or sit idle are closed, and the relay hands its
 * memory back when the flood stops.
 */
import assert from "node:assert/strict";
import { ERROR_CODES } from "../src/protocol/mod.ts";
import { OAuthRelayError } from "../src/client/errors.ts";
import { DEFAULT_SETTINGS } from "../src/client/settings.ts";
import { createLogger } from "../src/relay/log.ts";
import { startRelay } from "../src/relay/relay.ts";
import { describePlan, planDescriptors, RESERVED_DESCRIPTORS } from "../src/relay/fd_budget.ts";
import { parseUlimit, readFileLimit } from "../src/relay/fd_limit.ts";
import { startTestRelay, wait } from "./helpers.ts";
import { RelayProcess } from "./support/relay_process.ts";
import { connectionFlood } from "./support/scenarios/flood.ts";

const MiB = 2 ** 20;
const seed = Math.floor(Math.random() * 2 ** 31);

Deno.test({
  name: `a relay under ulimit -n 256 survives 2,000 idle connections, 500 slowloris requests and 2,000 silent ` +
    `coordinator connections, delivers real callbacks during and after, and its memory comes back (seed ${seed})`,
  // bash for `ulimit -n`, ps for the memory, glibc for MALLOC_MMAP_THRESHOLD_.
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using relay = await RelayProcess.start({
      useTcp: false,
      maxWaiters: 10_000,
      registerTimeoutMs: 3_000,
      fileLimit: 256,
      // Shorter than the relay's defaults (5 s, 10 s, 10 s), so that the flood turns over within the test.
      headerTimeoutMs: 2_000,
      idleTimeoutMs: 3_000,
      bodyTimeoutMs: 4_000,
      reclaimAfterMs: 1_000,
      // As docs/deploy.md advises: the 64 KiB buffers Deno reads request bodies into go back to the system when freed.
      env: { MALLOC_MMAP_THRESHOLD_: "65536" },
    });
    const { caps } = relay;
    assert.deepEqual(caps.fileLimit, { limit: 256, source: "sh" }, "the relay read its own limit");
    assert.ok(caps.http + caps.coordinator + RESERVED_DESCRIPTORS <= 256, JSON.stringify(caps));

    // The flood processes hold up to 500 sockets each, under this process's limit.
    const ownLimit = (await readFileLimit()).limit;
    const f = await connectionFlood(relay, {
      flood: { idle: 2_000, slowHead: 250, slowBody: 250, silent: 2_000 },
      warmup: { idle: 400, slowHead: 50, slowBody: 50, silent: 400, flows: 10, holdMs: 3_000 },
      perProcess: Math.max(50, Math.min(500, ownLimit - 100)),
      byteEveryMs: 200,
      reconnectMs: 1_000,
      flowsDuring: 30,
      flowsAfter: 20,
      flowConcurrency: 4,
      holdMs: 5_000,
      reclaimWithinMs: 5_000,
      seed,
    });
    const summary = JSON.stringify({
      ...f,
      rssBefore: f.rssBefore / MiB,
      rssPeak: f.rssPeak / MiB,
      rssAfter: f.rssAfter / MiB,
    });

    assert.ok(f.relayAlive, `the relay died: ${relay.crashed}`);
    assert.equal(f.relayErrors, 0, `the relay logged errors (EMFILE?): ${f.relayErrorSample}`);
    assert.equal(f.http.acceptErrors, 0, summary);
    // The flood was there: every socket opened, the HTTP side full, and the relay shedding.
    assert.ok(f.connects >= 4_500, summary);
    assert.ok(f.httpOpenPeak >= caps.http * 0.75, summary);
    assert.ok(f.http.evicted + f.http.evictedBusy + f.http.shed > 1_000, summary);
    // Real clients got through while it held (a dropped attempt is reloaded, as a person would), and after.
    assert.equal(f.during.delivered, f.during.flows, `during the flood: ${f.during.failure}; ${summary}`);
    assert.equal(f.after.delivered, f.after.flows, `after the flood: ${f.after.failure}; ${summary}`);
    assert.equal(f.after.firstTry, f.after.flows, summary);
    // It let go of every flood connection by itself, and gave its memory back.
    assert.notEqual(f.drainMs, null, summary);
    assert.ok(f.handedBack, summary);
    assert.ok(f.rssBefore > 0 && f.rssAfter > 0, summary);
    assert.ok(
      f.rssAfter <= f.rssBefore * 1.2,
      `RSS ${(f.rssBefore / MiB).toFixed(1)} → ${(f.rssAfter / MiB).toFixed(1)} MiB: ${summary}`,
    );
  },
});

Deno.test("HTTP connections that send no complete request head, or sit idle after a request, are closed", async () => {
  await using relay = await startTestRelay({ relay: { headerTimeoutMs: 300, idleTimeoutMs: 600 } });
  const url = new URL(relay.url);
  const open = () => Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  /** Milliseconds until the relay closes `conn`, and what it sent before. */
  const closedAfter = async (conn: Deno.Conn) => {
    const started = performance.now();
    const text = await new Response(conn.readable).text();
    return { ms: performance.now() - started, text };
  };
  const silent = await open();
  const partial = await open();
  await partial.write(new TextEncoder().encode("GET /health HTTP/1.1\r\nHost: relay\r\n"));
  const kept = await open();
  await kept.write(new TextEncoder().encode("GET /health HTTP/1.1\r\nHost: relay\r\n\r\n"));
  const [a, b, c] = await Promise.all([closedAfter(silent), closedAfter(partial), closedAfter(kept)]);
  assert.equal(a.text, "");
  assert.equal(b.text, "");
  assert.ok(a.ms >= 250 && b.ms >= 250, `closed after ${a.ms} and ${b.ms} ms`);
  assert.match(c.text, /^HTTP\/1\.1 200 /, "the kept-alive connection was answered first");
  assert.ok(c.ms >= 550, `the idle connection was closed after ${c.ms} ms`);
  const stats = relay.relay.httpStats();
  assert.equal(stats.headerTimeouts, 2);
  assert.equal(stats.idleTimeouts, 1);
  assert.equal(stats.open, 0);
  await relay.logged(/HTTP closed a connection that sent no complete request head within 0.3 s/);
});

Deno.test("the caps come from the file limit: one INFO line says so, and the waiter beyond them is refused", async () => {
  await using relay = await startTestRelay({ relay: { fileLimit: 256, maxWaiters: 10_000 } });
  assert.match(
    await relay.logged(/File limit/),
    / INFO - File limit 256 \(given\): up to 96 HTTP connections, 96 coordinator connections \(57 waiting, 39 not yet registered\); OAUTH_MAX_WAITERS 10000 needs a file limit of 10384$/,
  );
  assert.equal(relay.logs.filter((line) => /File limit/.test(line)).length, 1);
  const { caps } = relay.relay;
  assert.deepEqual({ http: caps.http, waiting: caps.waiting, pending: caps.pending }, {
    http: 96,
    waiting: 57,
    pending: 39,
  });
  const controller = new AbortController();
  const waits = Array.from(
    { length: caps.waiting },
    (_, i) => wait(relay, { state: `s${i}`, signal: controller.signal }),
  );
  await Promise.all(waits.map((w) => w.registered));
  const extra = wait(relay, { state: "one-too-many" });
  await assert.rejects(extra.result, (error: unknown) => {
    assert.ok(error instanceof OAuthRelayError);
    assert.equal(error.code, ERROR_CODES.TOO_MANY_WAITERS);
    return true;
  });
  controller.abort();
  await Promise.allSettled(waits.map((w) => w.result));
});

Deno.test("planDescriptors() keeps both sides within the limit and gives each what it wants when it can", () => {
  const wants = { http: 256, waiting: 10_000, pending: 64 };
  for (const limit of [32, 64, 128, 256, 1_024, 4_096, 10_384, 65_536]) {
    const plan = planDescriptors({ limit, source: "given" }, wants);
    assert.equal(plan.coordinator, plan.waiting + plan.pending);
    assert.ok(plan.http >= 8 && plan.waiting >= 2 && plan.pending >= 2, `${limit}: ${JSON.stringify(plan)}`);
    if (limit >= 128) {
      assert.ok(plan.http + plan.coordinator + plan.reserved <= limit, `${limit}: ${JSON.stringify(plan)}`);
    }
    assert.equal(plan.reduced, limit < 10_384);
    if (!plan.reduced) assert.deepEqual([plan.http, plan.waiting, plan.pending], [256, 10_000, 64]);
  }
  // The benchmark's relay: 19,000 waiting clients under a limit of 20,000.
  const bench = planDescriptors({ limit: 20_000, source: "sh" }, { http: 256, waiting: 29_000, pending: 64 });
  assert.ok(bench.waiting >= 19_000, JSON.stringify(bench));
  const none = planDescriptors({ limit: Infinity, source: "none" }, wants);
  assert.equal(
    describePlan(none, wants, true),
    "No file limit: up to 256 HTTP connections, 10,064 coordinator connections (10,000 waiting, 64 not yet registered)",
  );
  const assumed = planDescriptors(
    { limit: 1_024, source: "assumed", why: "run with --allow-run=sh to read it" },
    wants,
  );
  assert.match(
    describePlan(assumed, wants, true),
    /^File limit unknown, assumed 1,024 \(run with --allow-run=sh to read it\): /,
  );
  assert.deepEqual(["1024", "unlimited", "0", "x", ""].map(parseUlimit), [
    1024,
    Infinity,
    undefined,
    undefined,
    undefined,
  ]);
});

Deno.test("a Deno without the internal per-connection HTTP server stops the relay with one clear line", async () => {
  const internal = (Deno as unknown as Record<symbol, Record<string, unknown>>)[
    (Deno as unknown as { internal: symbol }).internal
  ];
  const saved = internal.serveHttpOnConnection;
  internal.serveHttpOnConnection = undefined;
  try {
    await assert.rejects(
      // The HTTP side starts first: nothing is created before the refusal.
      startRelay({ settings: DEFAULT_SETTINGS, port: 0, fileLimit: 1_024, logger: createLogger("silent") }),
      /^Error: Deno \S+ lacks the internal serveHttpOnConnection the relay's HTTP server is built on; run the Deno version this relay is tested with \(2\.9\.6\)$/,
    );
  } finally {
    internal.serveHttpOnConnection = saved;
  }
});
