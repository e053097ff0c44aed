/**
 * The load generator on Node: the same commands and replies as `loadgen.ts`
 * (see there), over `node:net` keep-alive sockets with Nagle off, the send
 * time taken just before the write. `bench.ts` measures both senders against
 * a bare server and keeps the lighter one for every column of the run, so
 * that the sender is not what the figures measure.
 *
 * Plain JavaScript: Node runs it as it is (`node bench/loadgen_node.mjs`).
 *
 * @module
 */

import { connect as connectTcp } from "node:net";
import { connect as connectTls } from "node:tls";
import { createInterface } from "node:readline";

const CALLBACK_PATH = "/oauth/callback";
/** A response this late means something is broken: fail with what arrived instead of hanging. */
const STUCK_MS = 10_000;

/** The same clock as `common.ts`'s `now()`: wall-clock milliseconds with sub-millisecond precision. */
const now = () => performance.timeOrigin + performance.now();
/** `common.ts`'s state, code and path rules, repeated because Node cannot import TypeScript. */
const stateOf = (prefix, i) => `${prefix}.${i}`.padEnd(32, "s");
const codeOf = (state) => `code.${state}`.padEnd(64, "c");
const callbackPath = (state) => `${CALLBACK_PATH}?code=${codeOf(state)}&state=${state}`;

function reply(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

/** One keep-alive HTTP/1.1 connection that sends one request at a time. */
class HttpConnection {
  #socket;
  #host;
  #port;
  #caCert;
  #chunks = [];
  #received = 0;
  /** The request in flight: its path, send time and how its response settles. */
  #pending;

  static async open(port, caCert) {
    const connection = new HttpConnection();
    connection.#host = `127.0.0.1:${port}`;
    connection.#port = port;
    connection.#caCert = caCert;
    await connection.#connect();
    return connection;
  }

  #connect() {
    return new Promise((resolve, reject) => {
      const options = { host: "127.0.0.1", port: this.#port, noDelay: true };
      const socket = this.#caCert === undefined
        ? connectTcp(options, () => resolve())
        : connectTls({ ...options, ca: [this.#caCert], servername: "localhost", ALPNProtocols: ["http/1.1"] }, () =>
          resolve());
      socket.setNoDelay(true);
      socket.on("error", (error) => {
        reject(error);
        this.#fail(error);
      });
      socket.on("close", () => this.#fail(new Error("The server closed the connection")));
      socket.on("data", (chunk) => this.#onData(chunk));
      this.#socket = socket;
    });
  }

  /**
   * Sends `GET path` and reads the whole response; resolves its status and when it was sent and
   * answered. A kept-alive connection the server closed while idle is opened again and the request
   * sent once more, but only when not one byte of a response came.
   */
  async get(path) {
    try {
      return await this.#get(path);
    } catch (error) {
      if (this.#received !== 0 || error.stuck) throw error;
      this.close();
      await this.#connect();
      return await this.#get(path);
    }
  }

  #get(path) {
    return new Promise((resolve, reject) => {
      if (this.#socket.destroyed) return reject(new Error("The server closed the connection"));
      this.#chunks = [];
      this.#received = 0;
      const sentAt = now();
      this.#pending = { path, since: sentAt, resolve: (status) => resolve({ status, sentAt, doneAt: now() }), reject };
      this.#socket.write(`GET ${path} HTTP/1.1\r\nhost: ${this.#host}\r\n\r\n`);
    });
  }

  #onData(chunk) {
    if (!this.#pending) return;
    this.#chunks.push(chunk);
    this.#received += chunk.length;
    const status = completeResponse(this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks));
    if (status === undefined) return;
    const pending = this.#pending;
    this.#pending = undefined;
    pending.resolve(status);
  }

  #fail(error) {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(error);
  }

  /** Fails a request that has waited longer than `ms` for its response, saying what arrived. */
  abortIfStuck(ms) {
    if (!this.#pending || now() - this.#pending.since < ms) return;
    const head = Buffer.concat(this.#chunks).subarray(0, 200).toString();
    const error = new Error(
      `No complete response to GET ${this.#pending.path} within ${ms / 1000} s; ${this.#received} bytes came: ${
        JSON.stringify(head)
      }`,
    );
    error.stuck = true;
    this.#fail(error);
    this.close();
  }

  close() {
    this.#socket?.destroy();
  }
}

/** The status of the complete response in `bytes`, or `undefined` while more is to come. */
function completeResponse(bytes) {
  const headerEnd = bytes.indexOf("\r\n\r\n");
  if (headerEnd === -1) return undefined;
  const head = bytes.subarray(0, headerEnd).toString("latin1").toLowerCase();
  const status = Number(head.slice(9, 12));
  const body = headerEnd + 4;
  const declared = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (declared) {
    const end = body + Number(declared[1]);
    if (bytes.length > end) throw new Error("More bytes than one response");
    return bytes.length === end ? status : undefined;
  }
  if (!/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    throw new Error(`Response without a length: ${head.split("\r\n")[0]}`);
  }
  // Chunked: complete once the zero-length chunk and its blank line have come.
  let at = body;
  for (;;) {
    const lineEnd = bytes.indexOf("\r\n", at);
    if (lineEnd === -1) return undefined;
    const size = parseInt(bytes.subarray(at, lineEnd).toString("latin1"), 16);
    if (size === 0) return bytes.length >= lineEnd + 4 ? status : undefined;
    at = lineEnd + 2 + size + 2;
    if (at > bytes.length) return undefined;
  }
}

function paths(target) {
  if (target.kind === "fixed") return { count: target.count, pathOf: () => target.path };
  return { count: target.to - target.from, pathOf: (i) => callbackPath(stateOf(target.prefix, target.from + i)) };
}

let pool = [];
const watchdog = setInterval(() => pool.forEach((connection) => connection.abortIfStuck(STUCK_MS)), 1000);

async function handle(command) {
  switch (command.op) {
    case "connect": {
      for (const connection of pool) connection.close();
      pool = await Promise.all(
        Array.from({ length: command.connections }, () => HttpConnection.open(command.port, command.caCert)),
      );
      reply({ id: command.id, ev: "done" });
      return;
    }
    case "run": {
      const { count, pathOf } = paths(command.target);
      const concurrency = Math.min(command.concurrency, pool.length);
      const statuses = {};
      let bad = 0;
      let next = 0;
      const start = now();
      await Promise.all(
        pool.slice(0, concurrency).map(async (connection) => {
          for (let i = next++; i < count; i = next++) {
            const { status } = await connection.get(pathOf(i));
            if (status !== command.expectStatus) {
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
      const result = await pool[0].get(command.path);
      reply({ id: command.id, ev: "done", ...result, bad: result.status === command.expectStatus ? 0 : 1 });
      return;
    }
    default:
      throw new Error(`Unknown command ${command.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.op === "exit") break;
  Promise.resolve()
    .then(() => handle(command))
    .catch((error) => reply({ id: command.id, ev: "error", message: String(error?.stack ?? error) }));
}
clearInterval(watchdog);
for (const connection of pool) connection.close();
