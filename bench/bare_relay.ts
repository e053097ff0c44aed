/**
 * The delivery floor: the least a relay of this design can do. A bare
 * `Deno.serve` that, for `GET /?state=S&code=C`, writes `C` to the socket
 * that registered `S`, then answers 200. Clients connect, send their state on
 * one line and get `ok` back; each then keeps one pending read on the relay
 * side, which is how any relay notices a client that goes away, and the
 * client hangs up after its code. Nothing is parsed, checked, logged, timed
 * or rendered. `waiters.ts --bare` plays its clients.
 *
 * For remote waiting (`http`, `https`) the floor is the same idea over server-sent events: `POST /v1/wait`
 * with `{"state": S}` answers an event stream that says `registered` at once; the callback for `S`
 * enqueues one `callback` event and ends that stream. No token, no resume, no heartbeat.
 *
 * With `BARE_WITH=engine,page` in the environment it adds two parts of the relay's design, so that the
 * benchmark can tell what they cost from what the relay's own code costs: `engine` serves HTTP through the
 * relay's flood-guarded engine (`src/relay/http/serve.ts`) instead of `Deno.serve`, and `page` answers a
 * delivering callback with the relay's "complete" page and its security headers instead of `ok`.
 *
 * Usage: `bare_relay.ts HTTP_PORT unix PATH`, `bare_relay.ts HTTP_PORT tcp PORT`, `bare_relay.ts HTTP_PORT http`
 * or `bare_relay.ts HTTP_PORT https CERT_FILE KEY_FILE`.
 * Prints `{"id":0,"ev":"listening"}` once it listens; stops when stdin closes.
 *
 * @module
 */

import { completePage, fixedPage } from "../src/relay/http/pages.ts";
import { serveHttp } from "../src/relay/http/serve.ts";
import { createLogger } from "../src/relay/log.ts";

const [httpPort, transport, where, keyFile] = Deno.args;
const remote = transport === "http" || transport === "https";
const listener = remote
  ? undefined
  : transport === "unix"
  ? Deno.listen({ transport: "unix", path: where })
  : Deno.listen({ transport: "tcp", hostname: "127.0.0.1", port: Number(where) });
const encoder = new TextEncoder();
const OK = encoder.encode("ok\n");
const waiting = new Map<string, Deno.Conn>();
const streams = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
const REGISTERED = encoder.encode("event: registered\ndata: {}\n\n");
const EVENT_STREAM = { "content-type": "text/event-stream", "cache-control": "no-store" };

async function serve(conn: Deno.Conn): Promise<void> {
  let buffer = new Uint8Array(256);
  let length = 0;
  let state: string | undefined;
  try {
    for (;;) {
      const n = await conn.read(buffer.subarray(length));
      if (n === null) break;
      if (state !== undefined) continue;
      length += n;
      const end = buffer.subarray(0, length).indexOf(10);
      if (end === -1) continue;
      state = new TextDecoder().decode(buffer.subarray(0, end));
      waiting.set(state, conn);
      buffer = new Uint8Array(64);
      length = 0;
      await conn.write(OK);
    }
  } catch { /* gone */ }
  if (state !== undefined && waiting.get(state) === conn) waiting.delete(state);
  conn.close();
}

if (listener) {
  (async () => {
    for await (const conn of listener) serve(conn);
  })();
}

/** `POST /v1/wait`: an event stream for the state, `registered` at once. */
async function waitRoute(request: Request): Promise<Response> {
  const { state } = await request.json();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      streams.set(state, controller);
      controller.enqueue(REGISTERED);
    },
    cancel() {
      streams.delete(state);
    },
  });
  return new Response(body, { headers: EVENT_STREAM });
}

const WITH = new Set((Deno.env.get("BARE_WITH") ?? "").split(",").filter(Boolean));
const page = WITH.has("page") ? fixedPage(completePage()) : () => new Response("ok");

const handler = async (request: Request): Promise<Response> => {
  if (request.method === "POST") return await waitRoute(request);
  const state = param(request.url, "state");
  const code = param(request.url, "code");
  if (remote) {
    const stream = streams.get(state);
    if (!stream) return new Response("no waiter", { status: 404 });
    streams.delete(state);
    stream.enqueue(encoder.encode(`event: callback\ndata: {"code":"${code}"}\n\n`));
    stream.close();
    return new Response("ok");
  }
  const conn = waiting.get(state);
  if (!conn) return new Response("no waiter", { status: 404 });
  waiting.delete(state);
  await conn.write(encoder.encode(code + "\n"));
  return page();
};

const tls = transport === "https"
  ? { cert: Deno.readTextFileSync(where), key: Deno.readTextFileSync(keyFile) }
  : undefined;
const onListen = () => console.log(JSON.stringify({ id: 0, ev: "listening" }));
const server = WITH.has("engine")
  ? serveHttp({
    hostname: "127.0.0.1",
    port: Number(httpPort),
    tls,
    handler,
    onError: () => new Response("error", { status: 500 }),
    busyResponse: () => new Response("busy", { status: 503 }),
    logger: createLogger("warn"),
    maxConnections: 4000,
  })
  : Deno.serve({ hostname: "127.0.0.1", port: Number(httpPort), ...(tls ?? {}), onListen }, handler);
if (WITH.has("engine")) onListen();

/** The value of `name` in a URL the load generator built (no escapes, no repeats). */
function param(url: string, name: string): string {
  const start = url.indexOf(`${name}=`) + name.length + 1;
  const end = url.indexOf("&", start);
  return url.slice(start, end === -1 ? undefined : end);
}

for await (const _ of Deno.stdin.readable) { /* the parent closes stdin to stop us */ }
listener?.close();
for (const stream of streams.values()) stream.close();
await server.shutdown();
