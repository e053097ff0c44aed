/**
 * One process of a connection flood, for tests/flood_test.ts and the stress
 * flood scenario: opens many sockets to a relay and holds them, in a process
 * of its own so that its descriptors do not count against the relay's limit
 * or the test's. Started as
 * `deno run --allow-net --allow-read=/tmp --allow-write=/tmp tests/support/flood_client.ts '<FloodPlan as JSON>'`.
 *
 * Kinds of socket: `idle` (HTTP, connects and sends nothing), `slowHead`
 * (HTTP, a request head one byte at a time, never finished), `slowBody`
 * (HTTP, a complete POST head declaring a 60,000-byte body, then the body one
 * byte at a time) and `silent` (coordinator, connects and sends nothing).
 * With `reconnectMs`, a socket the relay closes is opened again after that
 * pause, so the flood holds for as long as it runs.
 *
 * Prints JSON lines on stdout: `{"holding":true,…}` once every socket has
 * connected once, then `{"done":true,…}` after stdin closes (or says `stop`),
 * when every socket is closed; the process then exits.
 *
 * @module
 */

import type { CoordinatorAddress } from "../../src/client/settings.ts";
import { textLines } from "./lines.ts";

/** What one flood process opens. */
export interface FloodPlan {
  /** The relay's HTTP side, e.g. `http://127.0.0.1:8000`. */
  url: string;
  callbackPath: string;
  coordinator: CoordinatorAddress;
  idle: number;
  slowHead: number;
  slowBody: number;
  silent: number;
  /** Pause between two dribbled bytes. */
  byteEveryMs: number;
  /** Pause before opening a socket the relay closed again; `null` opens each socket once. */
  reconnectMs: number | null;
}

/** What one flood process reports. */
export interface FloodReport {
  /** Sockets opened, reopenings included. */
  connects: number;
  connectErrors: number;
  /** Sockets the relay closed (or reset). */
  closedByRelay: number;
  /** Sockets open now. */
  open: number;
  maxOpen: number;
  bytesSent: number;
  /** Status codes the relay answered dribbled requests with, and how often. */
  answers: Record<string, number>;
}

type Kind = "idle" | "slowHead" | "slowBody" | "silent";

const encoder = new TextEncoder();

function sleep(ms: number, stop: Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([new Promise<void>((resolve) => timer = setTimeout(resolve, ms)), stop]).finally(() =>
    clearTimeout(timer)
  );
}

/** A report with every count at zero, to add to. */
export function emptyFloodReport(): FloodReport {
  return { connects: 0, connectErrors: 0, closedByRelay: 0, open: 0, maxOpen: 0, bytesSent: 0, answers: {} };
}

async function flood(plan: FloodPlan): Promise<void> {
  const http = new URL(plan.url);
  const { promise: stopped, resolve: stop } = Promise.withResolvers<void>();
  let stopping = false;
  const report = emptyFloodReport();
  const live = new Set<Deno.Conn>();
  const connect = (kind: Kind): Promise<Deno.Conn> => {
    if (kind !== "silent") return Deno.connect({ hostname: http.hostname, port: Number(http.port) });
    const address = plan.coordinator;
    if (address.transport === "unix") return Deno.connect({ transport: "unix", path: address.path });
    if (address.transport === "tcp") return Deno.connect({ hostname: address.hostname, port: address.port });
    throw new TypeError(`No raw connection to an ${address.transport} coordinator`);
  };
  const head = (kind: Kind, i: number) =>
    kind === "slowHead"
      ? `GET ${plan.callbackPath}?code=flood&state=flood-h${i} HTTP/1.1\r\nHost: ${http.host}\r\nX-Pad: `
      : `POST ${plan.callbackPath} HTTP/1.1\r\nHost: ${http.host}\r\n` +
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n";

  /** One socket for as long as the flood runs; resolves after its first connection attempt too. */
  const socket = async (kind: Kind, i: number, first: () => void) => {
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await connect(kind);
      } catch {
        report.connectErrors++;
        first();
        if (plan.reconnectMs === null) return;
        await sleep(Math.max(50, plan.reconnectMs), stopped);
        continue;
      }
      report.connects++;
      report.maxOpen = Math.max(report.maxOpen, ++report.open);
      live.add(conn);
      first();
      let closed = false;
      const reading = (async () => {
        const buffer = new Uint8Array(1024);
        let text = "";
        try {
          for (let n; (n = await conn.read(buffer)) !== null;) {
            if (text.length < 64) text += new TextDecoder().decode(buffer.subarray(0, n));
          }
        } catch { /* reset, or closed by us */ }
        const status = text.match(/^HTTP\/1\.1 (\d{3})/)?.[1];
        if (status) report.answers[status] = (report.answers[status] ?? 0) + 1;
        closed = true;
      })();
      try {
        if (kind === "slowHead" || kind === "slowBody") {
          const bytes = encoder.encode(head(kind, i));
          // A POST sends its head at once and dribbles the body; a slow head dribbles from the first byte.
          let offset = kind === "slowBody" ? bytes.length : 0;
          if (offset > 0) {
            await conn.write(bytes);
            report.bytesSent += bytes.length;
          }
          while (!closed && !stopping) {
            await conn.write(offset < bytes.length ? bytes.subarray(offset, ++offset) : Uint8Array.of(0x61));
            report.bytesSent++;
            await sleep(plan.byteEveryMs, Promise.race([stopped, reading]));
          }
        }
      } catch { /* the relay closed it while we wrote */ }
      await Promise.race([reading, stopped]);
      if (!stopping) report.closedByRelay++;
      live.delete(conn);
      report.open--;
      try {
        conn.close();
      } catch { /* closed */ }
      await reading;
      if (plan.reconnectMs === null) return;
      await sleep(plan.reconnectMs, stopped);
    }
  };

  const kinds: Kind[] = [
    ...Array<Kind>(plan.idle).fill("idle"),
    ...Array<Kind>(plan.slowHead).fill("slowHead"),
    ...Array<Kind>(plan.slowBody).fill("slowBody"),
    ...Array<Kind>(plan.silent).fill("silent"),
  ];
  // Open in batches, so that the relay's accept queue never overflows: a real client must still get in.
  const sockets: Promise<void>[] = [];
  for (let start = 0; start < kinds.length; start += 50) {
    const batch = kinds.slice(start, start + 50).map((kind, j) => {
      const { promise, resolve } = Promise.withResolvers<void>();
      sockets.push(socket(kind, start + j, resolve));
      return promise;
    });
    await Promise.all(batch);
  }
  console.log(JSON.stringify({ holding: true, ...report }));

  for await (const line of textLines(Deno.stdin.readable)) if (line === "stop") break;
  stopping = true;
  stop();
  for (const conn of live) {
    try {
      conn.close();
    } catch { /* closed */ }
  }
  await Promise.all(sockets);
  console.log(JSON.stringify({ done: true, ...report }));
}

if (import.meta.main) {
  await flood(JSON.parse(Deno.args[0]));
  Deno.exit(0);
}
