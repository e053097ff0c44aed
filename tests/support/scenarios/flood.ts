/**
 * Stress scenario 5: a connection flood on both ports of a relay child under
 * a low file limit: idle connections and dribbled request heads and bodies
 * on HTTP, silent connections on the coordinator, each opened again when the
 * relay closes it, so the flood holds. Meanwhile real flows register, get
 * their callback and receive their code; then the same after the flood. The
 * relay's memory is taken before, during and after.
 *
 * The flood runs in processes of its own (../flood_client.ts), so that its
 * sockets count against neither the relay's limit nor the caller's.
 *
 * @module
 */

import type { HttpStats } from "../../../src/relay/http/serve.ts";
import { emptyFloodReport, type FloodPlan, type FloodReport } from "../flood_client.ts";
import { textLines } from "../lines.ts";
import { codeOf, pool, random, sleep, startWaiter } from "../load.ts";
import type { RelayProcess } from "../relay_process.ts";
import { percentile } from "../stats.ts";

/** The sockets of one flood. */
export interface FloodSize {
  /** HTTP connections that send nothing. */
  idle: number;
  /** HTTP connections dribbling a request head that never ends. */
  slowHead: number;
  /** HTTP connections dribbling a POST body after a complete head. */
  slowBody: number;
  /** Coordinator connections that send nothing. */
  silent: number;
}

/** Options of {@linkcode connectionFlood}. */
export interface FloodOptions {
  flood: FloodSize;
  /** The warm-up before the memory baseline: the same kinds of socket, fewer, held `holdMs`. */
  warmup: FloodSize & { flows: number; holdMs: number };
  /** Sockets one flood process holds at most (each is a descriptor there). */
  perProcess: number;
  /** Pause between two dribbled bytes. */
  byteEveryMs: number;
  /** Pause before a flood socket the relay closed is opened again. */
  reconnectMs: number;
  /** Real flows while the flood holds, and after it. */
  flowsDuring: number;
  flowsAfter: number;
  /** Real flows run at once. */
  flowConcurrency: number;
  /** The flood holds at least this long, however fast the flows are. */
  holdMs: number;
  /** How long the relay may take to hand memory back once a flood (or the warm-up) is over. */
  reclaimWithinMs: number;
  seed: number;
}

/** What real flows achieved. */
export interface FlowFigures {
  flows: number;
  delivered: number;
  /** Delivered at the first callback attempt; the others needed a reload. */
  firstTry: number;
  /** Callback attempts the relay dropped unanswered, by how (a reset, a close). */
  drops: Record<string, number>;
  failure: string | null;
  latencyMs: { p50: number; max: number };
}

/** Figures of {@linkcode connectionFlood}. */
export interface FloodFigures {
  fileLimit: number;
  caps: { http: number; coordinator: number; waiting: number; pending: number };
  floodProcesses: number;
  /** Flood sockets opened in all, reopenings included, and how many the relay closed. */
  connects: number;
  connectErrors: number;
  closedByRelay: number;
  /** Status codes the dribbled requests were answered with. */
  answers: Record<string, number>;
  /** Flood sockets open at once at the flood processes' peak (summed over the processes). */
  floodOpenPeak: number;
  /** The relay's HTTP connections at their peak (sampled every 200 ms). */
  httpOpenPeak: number;
  /** The relay's HTTP counters over the flood. */
  http: HttpStats;
  during: FlowFigures;
  after: FlowFigures;
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  /** Whether the relay said it handed memory back after the flood. */
  handedBack: boolean;
  /** Milliseconds from the end of the flood until the relay held no flood connection; `null` if it never did. */
  drainMs: number | null;
  relayAlive: boolean;
  relayErrors: number;
  relayErrorSample: string | null;
  floodMs: number;
}

const CLIENT = new URL("../flood_client.ts", import.meta.url).pathname;
/** Callback attempts per real flow before it counts as failed, and the pause of a person reloading. */
const ATTEMPTS = 5;
const RELOAD_MS = 200;

/** The resident memory of process `pid` in bytes, from `ps` (Deno reads /proc of another process only with -A). */
export async function rssOf(pid: number): Promise<number> {
  const { stdout, success } = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)], stderr: "null" })
    .output();
  const kib = Number(new TextDecoder().decode(stdout).trim());
  return success && kib > 0 ? kib * 1024 : 0;
}

/** A flood of `size` sockets split over processes; resolves once every socket has connected once. */
async function startFlood(relay: RelayProcess, size: FloodSize, options: FloodOptions) {
  const plans: FloodPlan[] = [];
  const left = { ...size };
  while (left.idle + left.slowHead + left.slowBody + left.silent > 0) {
    let room = options.perProcess;
    const take = (kind: keyof FloodSize) => {
      const n = Math.min(room, left[kind]);
      left[kind] -= n;
      room -= n;
      return n;
    };
    plans.push({
      url: relay.url,
      callbackPath: relay.callbackPath,
      coordinator: relay.coordinator,
      byteEveryMs: options.byteEveryMs,
      reconnectMs: options.reconnectMs,
      slowBody: take("slowBody"),
      slowHead: take("slowHead"),
      idle: take("idle"),
      silent: take("silent"),
    });
  }
  const processes = plans.map((plan) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read=/tmp", "--allow-write=/tmp", CLIENT, JSON.stringify(plan)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = textLines(child.stdout);
    const next = async (): Promise<FloodReport> => {
      const { value, done } = await lines.next();
      if (done) throw new Error(`A flood process ended early (exit code ${(await child.status).code})`);
      return JSON.parse(value);
    };
    return { child, next, stdin: child.stdin.getWriter() };
  });
  await Promise.all(processes.map((p) => p.next()));
  return {
    processes: processes.length,
    /** Stops every flood process; resolves with their reports summed. */
    async stop(): Promise<FloodReport> {
      const reports = await Promise.all(processes.map(async (p) => {
        await p.stdin.write(new TextEncoder().encode("stop\n")).catch(() => {});
        await p.stdin.close().catch(() => {});
        const report = await p.next();
        await p.child.status;
        return report;
      }));
      const sum = emptyFloodReport();
      for (const report of reports) {
        sum.connects += report.connects;
        sum.connectErrors += report.connectErrors;
        sum.closedByRelay += report.closedByRelay;
        sum.maxOpen += report.maxOpen;
        sum.bytesSent += report.bytesSent;
        for (const [status, n] of Object.entries(report.answers)) sum.answers[status] = (sum.answers[status] ?? 0) + n;
      }
      return sum;
    },
  };
}

/**
 * A GET callback on a fresh connection, as a browser sends it. Returns the
 * answer, or how the relay dropped the connection unanswered.
 */
async function rawCallback(
  relay: RelayProcess,
  params: Record<string, string>,
): Promise<{ answer: string } | { drop: string }> {
  const url = new URL(relay.url);
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => {
    try {
      conn?.close();
    } catch { /* closed */ }
  }, 5_000);
  try {
    conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
    await conn.write(new TextEncoder().encode(
      `GET ${relay.callbackPath}?${new URLSearchParams(params)} HTTP/1.1\r\nHost: ${url.host}\r\n` +
        "Connection: close\r\n\r\n",
    ));
    const answer = await new Response(conn.readable).text();
    conn = undefined; // reading to the end closed it
    return answer ? { answer } : { drop: "closed" };
  } catch (error) {
    return { drop: error instanceof Error ? error.name : "error" };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

/** Real flows: register with `waitForCode`, send the callback (again, when it was dropped), receive the code. */
async function realFlows(
  relay: RelayProcess,
  count: number,
  label: string,
  options: FloodOptions,
  next: () => number,
): Promise<FlowFigures> {
  const results: { ok: boolean; attempts: number; ms: number; failure?: string }[] = [];
  const drops: Record<string, number> = {};
  await pool(Array.from({ length: count }, (_, i) => i), options.flowConcurrency, async (i) => {
    const state = `${label}${i}.${Math.floor(next() * 2 ** 52).toString(36)}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("Flow took longer than 20 s")), 20_000);
    const begun = performance.now();
    let attempts = 0;
    try {
      const waiter = startWaiter(relay, state, controller.signal, 30);
      if (!await waiter.registered) throw await waiter.outcome;
      let answer: string | undefined;
      while (answer === undefined && attempts < ATTEMPTS) {
        if (attempts++ > 0) await sleep(RELOAD_MS);
        const outcome = await rawCallback(relay, { code: codeOf(state), state });
        if ("drop" in outcome) drops[outcome.drop] = (drops[outcome.drop] ?? 0) + 1;
        else answer = outcome.answer;
      }
      if (answer === undefined) throw new Error(`Callback dropped ${ATTEMPTS} times`);
      if (!answer.startsWith("HTTP/1.1 200") || !answer.includes("Authorization Complete")) {
        throw new Error(`Callback answered ${answer.slice(0, 40)}`);
      }
      const outcome = await waiter.outcome;
      if (outcome instanceof Error) throw outcome;
      if (outcome.code !== codeOf(state)) throw new Error("Misrouted callback");
      results.push({ ok: true, attempts, ms: performance.now() - begun });
    } catch (error) {
      results.push({ ok: false, attempts, ms: performance.now() - begun, failure: (error as Error).message });
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  });
  const ok = results.filter((result) => result.ok);
  const latencies = ok.map((result) => result.ms).sort((a, b) => a - b);
  return {
    flows: count,
    delivered: ok.length,
    firstTry: ok.filter((result) => result.attempts === 1).length,
    drops,
    failure: results.find((result) => !result.ok)?.failure ?? null,
    latencyMs: { p50: percentile(latencies, 0.5), max: latencies.at(-1) ?? 0 },
  };
}

/** The counters of `now` less those of `before`; the gauges (open, closing, in flight, cap) as they are now. */
function since(before: HttpStats, now: HttpStats): HttpStats {
  const counters = Object.fromEntries(
    Object.entries(now).map(([key, value]) => [key, value - before[key as keyof HttpStats]]),
  ) as unknown as HttpStats;
  return { ...counters, open: now.open, closing: now.closing, inFlight: now.inFlight, cap: now.cap };
}

/**
 * Polls the relay (without a garbage collection) until `done` holds, for at
 * most `ms`; returns how long it took, or `null` if it never held.
 */
async function until(
  relay: RelayProcess,
  done: (peek: Awaited<ReturnType<RelayProcess["peek"]>>) => boolean,
  ms: number,
): Promise<number | null> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (done(await relay.peek())) return performance.now() - started;
    await sleep(50);
  }
  return null;
}

/**
 * Warms the relay up with a small flood and a few flows, takes its memory,
 * floods it, runs real flows while the flood holds, stops the flood, runs
 * real flows again and takes its memory once more.
 */
export async function connectionFlood(relay: RelayProcess, options: FloodOptions): Promise<FloodFigures> {
  const next = random(options.seed);
  const errorsBefore = (await relay.errors()).length;
  const idle = (peek: { http: HttpStats; waiting: number }) => peek.http.open === 0 && peek.waiting === 0;

  // The baseline is taken after the same paths ran at a small scale: the warm-up fills the
  // caps too, so the allocator's arenas, V8's compiled code and the HTTP engine's buffers
  // exist before the flood as after it. Like the flood, the warm-up ends with the relay
  // handing memory back, so that before and after are taken in the same state.
  const warm = await startFlood(relay, options.warmup, options);
  const warmHold = sleep(options.warmup.holdMs);
  await realFlows(relay, options.warmup.flows, "warm", options, next);
  await warmHold;
  let reclaims = (await relay.peek()).reclaims;
  await warm.stop();
  await until(relay, idle, 10_000);
  await until(relay, (peek) => peek.reclaims > reclaims, options.reclaimWithinMs);
  const rssBefore = await rssOf(relay.pid);
  const httpBefore = (await relay.peek()).http;

  const started = performance.now();
  const flood = await startFlood(relay, options.flood, options);
  let rssPeak = rssBefore, httpOpenPeak = 0, sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssPeak = Math.max(rssPeak, await rssOf(relay.pid));
      const peek = await relay.peek().catch(() => null);
      if (peek) httpOpenPeak = Math.max(httpOpenPeak, peek.http.open);
      await sleep(200);
    }
  })();
  const holding = sleep(options.holdMs);
  const during = await realFlows(relay, options.flowsDuring, "during", options, next);
  await holding;
  sampling = false;
  await sampler;
  reclaims = (await relay.peek()).reclaims;
  const report = await flood.stop();
  const floodMs = performance.now() - started;

  const drainMs = await until(relay, idle, 10_000).catch(() => null);
  const after = await realFlows(relay, options.flowsAfter, "after", options, next);
  const handedBack = await until(relay, (peek) => peek.reclaims > reclaims, options.reclaimWithinMs)
    .then((ms) => ms !== null, () => false);
  const peek = await relay.peek().catch(() => null);
  const rssAfter = await rssOf(relay.pid);
  const errors = peek ? (await relay.errors()).slice(errorsBefore) : [];
  return {
    fileLimit: relay.caps.fileLimit.limit,
    caps: {
      http: relay.caps.http,
      coordinator: relay.caps.coordinator,
      waiting: relay.caps.waiting,
      pending: relay.caps.pending,
    },
    floodProcesses: flood.processes,
    connects: report.connects,
    connectErrors: report.connectErrors,
    closedByRelay: report.closedByRelay,
    answers: report.answers,
    floodOpenPeak: report.maxOpen,
    httpOpenPeak,
    http: peek ? since(httpBefore, peek.http) : httpBefore,
    during,
    after,
    rssBefore,
    rssPeak: Math.max(rssPeak, rssAfter),
    rssAfter,
    handedBack,
    drainMs,
    relayAlive: peek !== null && !relay.crashed,
    relayErrors: errors.length,
    relayErrorSample: errors[0] ?? null,
    floodMs,
  };
}
