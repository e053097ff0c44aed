/**
 * Stress scenario 4: slow connections (HTTP and coordinator, one byte every
 * few hundred milliseconds) while real flows register, get their callback and
 * receive their code.
 *
 * @module
 */

import {
  callback,
  codeOf,
  connectTo,
  drained,
  pool,
  random,
  readAll,
  sleep,
  startWaiter,
  type Target,
} from "../load.ts";
import { percentile } from "../stats.ts";

/** Options of {@linkcode slowConnections}. */
export interface SlowOptions {
  /** Raw HTTP connections: half dribble a request's headers, half a POST body. */
  http: number;
  /** Raw coordinator connections: half dribble a register message, half bytes that never end a line. */
  coordinator: number;
  /** How long each slow connection dribbles before it gives up and closes. */
  dribbleMs: number;
  /** Pause between two bytes, drawn from this range. */
  byteEveryMs: [min: number, max: number];
  /** Real waiter + callback pairs run while the slow connections dribble. */
  flows: number;
  flowConcurrency: number;
  seed: number;
}

/** Figures of {@linkcode slowConnections}. */
export interface SlowFigures {
  slowHttp: number;
  slowCoordinator: number;
  connectErrors: number;
  bytesDribbled: number;
  /** Slow connections the relay closed before they gave up, by kind. */
  closedByRelay: { httpHeaders: number; httpBody: number; coordinator: number };
  /** Coordinator dribblers cut: told `idle` (silent past registerTimeoutMs) or `busy` (dropped to make room). */
  coordinatorCut: number;
  flows: number;
  flowsOk: number;
  flowsFailed: number;
  flowFailure: string | null;
  flowLatencyMs: { p50: number; p99: number; max: number };
  waitingAfter: number;
  relayErrors: number;
  relayErrorSample: string | null;
  ms: number;
}

interface Dribbler {
  kind: "httpHeaders" | "httpBody" | "coordinator";
  conn: Deno.Conn;
  bytes: Uint8Array;
  /** Sent after `bytes` runs out, forever. */
  filler: number;
}

/**
 * Opens slow connections that send one byte every few hundred milliseconds,
 * then runs real flows (register, callback, receive) while they dribble. The
 * flows synchronise on events (the registration, the response); only the
 * dribbling and the flows' start times are paced by timers.
 */
export async function slowConnections(target: Target, options: SlowOptions): Promise<SlowFigures> {
  const next = random(options.seed);
  const errorsBefore = (await target.errors()).length;
  const encoder = new TextEncoder();
  const started = performance.now();
  const httpPort = Number(new URL(target.url).port);
  const httpHost = new URL(target.url).hostname;

  type Plan = Omit<Dribbler, "conn"> & { connect: () => Promise<Deno.Conn> };
  const plans: Plan[] = [];
  for (let i = 0; i < options.http; i++) {
    const connect = () => Deno.connect({ hostname: httpHost, port: httpPort });
    if (i % 2 === 0) {
      plans.push({
        kind: "httpHeaders",
        connect,
        bytes: encoder.encode(
          `GET ${target.callbackPath}?code=slow&state=slow-h${i} HTTP/1.1\r\nHost: ${httpHost}\r\nX-Slow: `,
        ),
        filler: 0x61,
      });
    } else {
      plans.push({
        kind: "httpBody",
        connect,
        bytes: encoder.encode(
          `POST ${target.callbackPath} HTTP/1.1\r\nHost: ${httpHost}\r\n` +
            `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n` +
            `state=slow-b${i}&code=slow&pad=`,
        ),
        filler: 0x61,
      });
    }
  }
  for (let i = 0; i < options.coordinator; i++) {
    plans.push({
      kind: "coordinator",
      connect: () => connectTo(target.coordinator),
      bytes: encoder.encode(
        i % 2 === 0 ? `{"v":2,"type":"register","state":"slow-c${i}"}\n` : `{"v":2,"type":"register","state":"`,
      ),
      filler: 0x78,
    });
  }

  // Open every slow connection first; the POST bodies' headers go at once, everything else byte by byte.
  const dribblers: Dribbler[] = [];
  let connectErrors = 0;
  await pool(plans, 100, async (plan) => {
    try {
      dribblers.push({ ...plan, conn: await plan.connect() });
    } catch {
      connectErrors++;
    }
  });

  let bytesDribbled = 0;
  const closedByRelay = { httpHeaders: 0, httpBody: 0, coordinator: 0 };
  let coordinatorCut = 0;
  const until = Date.now() + options.dribbleMs;
  const [minDelay, maxDelay] = options.byteEveryMs;
  const dribbling = dribblers.map(async (d) => {
    let peerClosed = false;
    const reading = readAll(d.conn, options.dribbleMs + 5_000).then(({ text, closed }) => {
      peerClosed = closed;
      if (d.kind === "coordinator" && /"code":"(idle|busy)"/.test(text)) coordinatorCut++;
    });
    let offset = 0;
    // A slow POST sends its headers at once and dribbles the body.
    if (d.kind === "httpBody") offset = new TextDecoder().decode(d.bytes).indexOf("\r\n\r\n") + 4;
    try {
      if (offset > 0) await d.conn.write(d.bytes.subarray(0, offset));
      while (Date.now() < until && !peerClosed) {
        const byte = offset < d.bytes.length ? d.bytes[offset++] : d.filler;
        await d.conn.write(Uint8Array.of(byte));
        bytesDribbled++;
        await sleep(Math.min(until - Date.now(), minDelay + next() * (maxDelay - minDelay)));
      }
    } catch {
      peerClosed = true; // the relay closed (or reset) the connection while we wrote
    }
    if (peerClosed) closedByRelay[d.kind]++;
    try {
      d.conn.close();
    } catch { /* closed by readAll's timer or by the relay */ }
    await reading;
  });

  // Real flows, their starts spread over the first 80 % of the dribbling.
  const latencies: number[] = [];
  let flowsOk = 0, flowFailure: string | null = null;
  const spacing = (options.dribbleMs * 0.8) / Math.max(1, options.flows);
  const flowStart = performance.now();
  await pool(Array.from({ length: options.flows }, (_, i) => i), options.flowConcurrency, async (i) => {
    await sleep(flowStart + i * spacing - performance.now());
    const state = `flow${i}.${Math.floor(next() * 2 ** 52).toString(36)}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("Flow took longer than 30 s")), 30_000);
    try {
      const begun = performance.now();
      const waiter = startWaiter(target, state, controller.signal, 60);
      if (!await waiter.registered) throw await waiter.outcome;
      const { status, page } = await callback(target, { code: codeOf(state), state });
      const outcome = await waiter.outcome;
      if (outcome instanceof Error) throw outcome;
      if (status !== 200 || page !== "complete") throw new Error(`Callback answered ${status} ${page}`);
      if (outcome.code !== codeOf(state) || outcome.state !== state) throw new Error("Misrouted callback");
      latencies.push(performance.now() - begun);
      flowsOk++;
    } catch (error) {
      flowFailure ??= error instanceof Error ? error.message : String(error);
    } finally {
      clearTimeout(timer);
    }
  });
  await Promise.all(dribbling);

  latencies.sort((a, b) => a - b);
  const relayErrors = (await target.errors()).slice(errorsBefore);
  return {
    slowHttp: plans.filter((plan) => plan.kind !== "coordinator").length,
    slowCoordinator: options.coordinator,
    connectErrors,
    bytesDribbled,
    closedByRelay,
    coordinatorCut,
    flows: options.flows,
    flowsOk,
    flowsFailed: options.flows - flowsOk,
    flowFailure,
    flowLatencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) ?? 0 },
    waitingAfter: await drained(target),
    relayErrors: relayErrors.length,
    relayErrorSample: relayErrors[0] ?? null,
    ms: performance.now() - started,
  };
}
