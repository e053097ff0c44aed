/**
 * The load generator: HTTP/1.1 keep-alive over raw `Deno.connect`, far
 * lighter than `fetch`, so it measures the server and not itself. The floor
 * and the relay are both measured with it.
 *
 * Commands (JSON lines on stdin, see `common.ts`):
 * - `connect {port, connections, caCert?}`: opens keep-alive connections (closing earlier ones); with
 *   `caCert` (PEM), over TLS to a server whose certificate that CA signed (HTTP/1.1 by ALPN).
 * - `run {target, concurrency, expectStatus}`: sends every request of `target`, `concurrency`
 *   at a time, and replies with the first send time, the last response time and any bad statuses.
 * - `one {path, expectStatus}`: one request on the first connection; replies with its send and
 *   response times.
 *
 * @module
 */

import { callbackPath, type Message, now, reply, serveCommands, stateOf } from "./common.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CR = 13;
/** What a write to, or a read from, a connection the server already closed fails with. */
const STALE = /closed the connection|broken pipe|connection reset|os error 32|os error 104/i;
const LF = 10;

/** One keep-alive HTTP/1.1 connection that sends one request at a time. */
class HttpConnection {
  #conn: Deno.Conn;
  readonly #host: string;
  readonly #port: number;
  readonly #caCert: string | undefined;
  #buffer = new Uint8Array(64 * 1024);

  private constructor(conn: Deno.Conn, port: number, caCert: string | undefined) {
    this.#conn = conn;
    this.#host = `127.0.0.1:${port}`;
    this.#port = port;
    this.#caCert = caCert;
  }

  static async open(port: number, caCert?: string): Promise<HttpConnection> {
    return new HttpConnection(await HttpConnection.#connect(port, caCert), port, caCert);
  }

  static async #connect(port: number, caCert: string | undefined): Promise<Deno.Conn> {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    tcp.setNoDelay(true);
    if (caCert === undefined) return tcp;
    // Over the same no-delay TCP connection; the handshake happens here, before anything is measured.
    const tls = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [caCert], alpnProtocols: ["http/1.1"] });
    await tls.handshake();
    return tls;
  }

  /**
   * Sends `GET path` and reads the whole response; returns its status and when it was sent and answered.
   * A kept-alive connection the server closed while idle (its idle timeout, or the relay shedding idle
   * connections at its HTTP cap) is opened again and the request sent once more, as browsers do, but
   * only when not one byte of a response came.
   */
  async get(path: string): Promise<{ status: number; sentAt: number; doneAt: number }> {
    try {
      return await this.#get(path);
    } catch (error) {
      if (this.#stuck || this.#received !== 0 || !(error instanceof Error && STALE.test(error.message))) throw error;
      this.close();
      this.#conn = await HttpConnection.#connect(this.#port, this.#caCert);
      return await this.#get(path);
    }
  }

  async #get(path: string): Promise<{ status: number; sentAt: number; doneAt: number }> {
    const request = encoder.encode(`GET ${path} HTTP/1.1\r\nhost: ${this.#host}\r\n\r\n`);
    const sentAt = now();
    this.#pending = { path, since: sentAt };
    this.#received = 0;
    try {
      for (let offset = 0; offset < request.length;) offset += await this.#conn.write(request.subarray(offset));
      const status = await this.#readResponse();
      return { status, sentAt, doneAt: now() };
    } catch (error) {
      throw this.#stuck ?? error;
    } finally {
      this.#pending = undefined;
    }
  }

  /** The request in flight, for the watchdog. */
  #pending: { path: string; since: number } | undefined;
  #received = 0;
  #stuck: Error | undefined;

  /** Fails a request that has waited longer than `ms` for its response, saying what arrived. */
  abortIfStuck(ms: number): void {
    if (!this.#pending || now() - this.#pending.since < ms) return;
    const head = decoder.decode(this.#buffer.subarray(0, Math.min(this.#received, 200)));
    this.#stuck = new Error(
      `No complete response to GET ${this.#pending.path} within ${ms / 1000} s; ${this.#received} bytes came: ${
        JSON.stringify(head)
      }`,
    );
    this.close();
  }

  async #readResponse(): Promise<number> {
    let length = 0;
    let headerEnd = -1;
    let status = 0;
    let contentLength = -1;
    let chunked = false;
    for (;;) {
      if (length === this.#buffer.length) {
        const bigger = new Uint8Array(this.#buffer.length * 2);
        bigger.set(this.#buffer);
        this.#buffer = bigger;
      }
      const n = await this.#conn.read(this.#buffer.subarray(length));
      if (n === null) throw new Error("The server closed the connection");
      length += n;
      this.#received = length;
      if (headerEnd === -1) {
        headerEnd = findHeaderEnd(this.#buffer, length);
        if (headerEnd === -1) continue;
        const head = decoder.decode(this.#buffer.subarray(0, headerEnd)).toLowerCase();
        status = Number(head.slice(9, 12));
        const declared = /\r\ncontent-length:\s*(\d+)/.exec(head);
        if (declared) contentLength = Number(declared[1]);
        else if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) chunked = true;
        else throw new Error(`Response without a length: ${head.split("\r\n")[0]}`);
      }
      const body = headerEnd + 4;
      if (contentLength !== -1) {
        if (length > body + contentLength) throw new Error("More bytes than one response");
        if (length === body + contentLength) return status;
      } else if (chunked && endsChunked(this.#buffer, body, length)) {
        return status;
      }
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

function findHeaderEnd(buffer: Uint8Array, length: number): number {
  for (let i = 0; i + 3 < length; i++) {
    if (buffer[i] === CR && buffer[i + 1] === LF && buffer[i + 2] === CR && buffer[i + 3] === LF) return i;
  }
  return -1;
}

/** Whether a chunked body from `start` to `end` is complete (ends with the zero-length chunk). */
function endsChunked(buffer: Uint8Array, start: number, end: number): boolean {
  let at = start;
  for (;;) {
    let lineEnd = at;
    while (lineEnd + 1 < end && !(buffer[lineEnd] === CR && buffer[lineEnd + 1] === LF)) lineEnd++;
    if (lineEnd + 1 >= end) return false;
    const size = parseInt(decoder.decode(buffer.subarray(at, lineEnd)), 16);
    if (size === 0) return end >= lineEnd + 4;
    at = lineEnd + 2 + size + 2;
    if (at > end) return false;
  }
}

/** What a `run` sends: one fixed path N times, or callbacks for states `from` to `to` of a group. */
type Target =
  | { kind: "fixed"; path: string; count: number }
  | { kind: "callback"; prefix: string; from: number; to: number };

function paths(target: Target): { count: number; pathOf: (i: number) => string } {
  if (target.kind === "fixed") return { count: target.count, pathOf: () => target.path };
  return { count: target.to - target.from, pathOf: (i) => callbackPath(stateOf(target.prefix, target.from + i)) };
}

let pool: HttpConnection[] = [];
/** A response this late means something is broken: fail with what arrived instead of hanging. */
const STUCK_MS = 10_000;
const watchdog = setInterval(() => pool.forEach((connection) => connection.abortIfStuck(STUCK_MS)), 1000);

async function handle(command: Message): Promise<void> {
  switch (command.op) {
    case "connect": {
      for (const connection of pool) connection.close();
      const port = command.port as number;
      const caCert = command.caCert as string | undefined;
      pool = await Promise.all(
        Array.from({ length: command.connections as number }, () => HttpConnection.open(port, caCert)),
      );
      reply({ id: command.id, ev: "done" });
      return;
    }
    case "run": {
      const { count, pathOf } = paths(command.target as Target);
      const concurrency = Math.min(command.concurrency as number, pool.length);
      const expectStatus = command.expectStatus as number;
      const statuses: Record<number, number> = {};
      let bad = 0;
      let next = 0;
      const start = now();
      await Promise.all(
        pool.slice(0, concurrency).map(async (connection) => {
          for (let i = next++; i < count; i = next++) {
            const { status } = await connection.get(pathOf(i));
            if (status !== expectStatus) {
              bad++;
              statuses[status] = (statuses[status] ?? 0) + 1;
            }
          }
        }),
      );
      reply({ id: command.id, ev: "done", count, start, end: now(), bad, statuses });
      return;
    }
    case "one": {
      const result = await pool[0].get(command.path as string);
      reply({ id: command.id, ev: "done", ...result, bad: result.status === command.expectStatus ? 0 : 1 });
      return;
    }
    default:
      throw new Error(`Unknown command ${command.op}`);
  }
}

await serveCommands(handle);
clearInterval(watchdog);
for (const connection of pool) connection.close();
