/**
 * Stress figure 5: a connection flood on both ports of a relay under
 * `ulimit -n 256`: 2,000 idle HTTP connections, 250 dribbled request heads
 * and 250 dribbled bodies, and 2,000 silent coordinator connections (a
 * quarter with `--quick`), each opened again a second after the relay cuts
 * it, while 100 real flows (20) register, get their callback and receive
 * their code; then 50 (10) more after the flood. The relay runs with its
 * default timeouts (5 s for a request head, 10 s idle, 10 s for a body) and
 * `MALLOC_MMAP_THRESHOLD_=65536`, as docs/deploy.md advises.
 *
 * @module
 */

import { connectionFlood, type FlowFigures } from "../../tests/support/scenarios/flood.ts";
import { RelayProcess } from "../../tests/support/relay_process.ts";
import { type Figure, mib, secs, type Section, type StressRun } from "./report.ts";

/** The file limit the relay runs under. */
const FILE_LIMIT = 256;

function flows(f: FlowFigures): string {
  const drops = Object.entries(f.drops).map(([how, n]) => `${n} ${how}`).join(", ");
  return `${f.delivered} / ${f.flows} (first try ${f.firstTry}${drops ? `; dropped attempts: ${drops}` : ""})`;
}

/** Runs {@linkcode connectionFlood} against a fresh relay child under a low file limit. */
export async function runFlood(run: StressRun): Promise<Section> {
  const size = run.quick
    ? { flood: { idle: 500, slowHead: 60, slowBody: 60, silent: 500 }, holdMs: 3_000, during: 20, after: 10 }
    : { flood: { idle: 2_000, slowHead: 250, slowBody: 250, silent: 2_000 }, holdMs: 10_000, during: 100, after: 50 };
  const { idle, slowHead, slowBody, silent } = size.flood;
  const title = `5. A flood under ulimit -n ${FILE_LIMIT}: ${idle.toLocaleString("en")} idle HTTP connections, ` +
    `${slowHead + slowBody} slowloris, ${silent.toLocaleString("en")} silent coordinator connections`;
  const started = performance.now();
  const figures: Figure[] = [];
  await using relay = await RelayProcess.start({
    useTcp: run.useTcp,
    maxWaiters: 10_000,
    registerTimeoutMs: 3_000,
    fileLimit: FILE_LIMIT,
    reclaimAfterMs: 2_000,
    env: { MALLOC_MMAP_THRESHOLD_: "65536" },
  });
  const { caps } = relay;
  figures.push({
    name: "file limit → caps",
    value: `${caps.fileLimit.limit} (${caps.fileLimit.source}) → HTTP ${caps.http}, coordinator ${caps.coordinator} ` +
      `(${caps.waiting} waiting, ${caps.pending} not registered)`,
    ok: caps.fileLimit.source === "sh" && caps.http + caps.coordinator + caps.reserved <= FILE_LIMIT,
  });
  try {
    const f = await connectionFlood(relay, {
      flood: size.flood,
      warmup: {
        idle: idle / 5,
        slowHead: slowHead / 5,
        slowBody: slowBody / 5,
        silent: silent / 5,
        flows: 10,
        holdMs: 3_000,
      },
      perProcess: 500,
      byteEveryMs: 200,
      reconnectMs: 1_000,
      flowsDuring: size.during,
      flowsAfter: size.after,
      flowConcurrency: 4,
      holdMs: size.holdMs,
      reclaimWithinMs: 10_000,
      seed: run.seed + 6,
    });
    const answers = Object.entries(f.answers).sort().map(([status, n]) => `${n.toLocaleString("en")} × ${status}`).join(
      ", ",
    );
    figures.push(
      {
        name: "flood connections opened (again 1 s after a cut)",
        value: `${f.connects.toLocaleString("en")} in ${secs(f.floodMs)} by ${f.floodProcesses} processes` +
          ` (${f.connectErrors.toLocaleString("en")} refused)`,
        ok: f.connects >= idle + slowHead + slowBody + silent,
      },
      { name: "flood sockets open at once (flood side, peak)", value: f.floodOpenPeak.toLocaleString("en") },
      {
        name: "HTTP connections held by the relay (peak / cap)",
        value: `${f.httpOpenPeak} / ${caps.http}`,
        ok: f.httpOpenPeak <= caps.http,
      },
      {
        name: "HTTP evicted / shed at once / slow requests 503",
        value: `${f.http.evicted.toLocaleString("en")} / ${f.http.shed.toLocaleString("en")} / ${
          f.http.evictedBusy.toLocaleString("en")
        }`,
      },
      {
        name: "HTTP closed: no request head in time / idle",
        value: `${f.http.headerTimeouts} / ${f.http.idleTimeouts}`,
      },
      { name: "dribbled requests answered", value: answers || "none" },
      { name: "failed accepts (EMFILE)", value: f.http.acceptErrors, ok: f.http.acceptErrors === 0 },
      {
        name: "real callbacks delivered during the flood",
        value: flows(f.during),
        ok: f.during.delivered === f.during.flows,
      },
      ...(f.during.failure ? [{ name: "  first failure", value: f.during.failure }] : []),
      {
        name: "real flow latency during the flood, p50 / max",
        value: `${f.during.latencyMs.p50.toFixed(0)} / ${f.during.latencyMs.max.toFixed(0)} ms`,
      },
      {
        name: "real callbacks delivered after the flood",
        value: flows(f.after),
        ok: f.after.delivered === f.after.flows && f.after.firstTry === f.after.flows,
      },
      {
        name: "flood connections the relay still held",
        value: f.drainMs === null ? "some, 10 s later" : `none, ${f.drainMs.toFixed(0)} ms after it stopped`,
        ok: f.drainMs !== null,
      },
      {
        name: "relay RSS before / peak during / after",
        value: `${mib(f.rssBefore)} / ${mib(f.rssPeak)} / ${mib(f.rssAfter)} (${
          ((f.rssAfter / f.rssBefore - 1) * 100).toFixed(0)
        } %)`,
        ok: f.rssAfter <= f.rssBefore * 1.2,
      },
      { name: "memory handed back after the flood", value: f.handedBack ? "yes" : "no", ok: f.handedBack },
      { name: "relay crashes", value: f.relayAlive ? 0 : `1 (${relay.crashed?.slice(0, 300)})`, ok: f.relayAlive },
      {
        name: "relay ERROR lines",
        value: `${f.relayErrors}${f.relayErrorSample ? ` (${f.relayErrorSample.slice(0, 100)})` : ""}`,
        ok: f.relayErrors === 0,
      },
    );
  } catch (error) {
    figures.push({ name: "scenario failed", value: error instanceof Error ? error.message : String(error), ok: false });
  }
  figures.push({ name: "wall time", value: secs(performance.now() - started) });
  return { title, figures };
}
