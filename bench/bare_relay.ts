/**
 * The delivery floor: the least a relay of this design can do. A bare
 * `Deno.serve` that, for `GET /?state=S&code=C`, writes `C` to the socket
 * that registered `S`, then answers 200. Clients connect, send their state on
 * one line and get `ok` back; each then keeps one pending read on the relay
 * side, which is how any relay notices a client that goes away, and the
 * client hangs up after its code. Nothing is parsed, checked, logged, timed
 * or rendered. `waiters.ts --bare` plays its clients.
 *
 * Usage: `bare_relay.ts HTTP_PORT unix PATH` or `bare_relay.ts HTTP_PORT tcp PORT`.
 * Prints `{"id":0,"ev":"listening"}` once both listen; stops when stdin closes.
 *
 * @module
 */

const [httpPort, transport, where] = Deno.args;
const listener = transport === "unix"
  ? Deno.listen({ transport: "unix", path: where })
  : Deno.listen({ transport: "tcp", hostname: "127.0.0.1", port: Number(where) });
const encoder = new TextEncoder();
const OK = encoder.encode("ok\n");
const waiting = new Map<string, Deno.Conn>();

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

(async () => {
  for await (const conn of listener) serve(conn);
})();

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(httpPort),
  onListen: () => console.log(JSON.stringify({ id: 0, ev: "listening" })),
}, async (request) => {
  const state = param(request.url, "state");
  const conn = waiting.get(state);
  if (!conn) return new Response("no waiter", { status: 404 });
  waiting.delete(state);
  await conn.write(encoder.encode(param(request.url, "code") + "\n"));
  return new Response("ok");
});

/** The value of `name` in a URL the load generator built (no escapes, no repeats). */
function param(url: string, name: string): string {
  const start = url.indexOf(`${name}=`) + name.length + 1;
  const end = url.indexOf("&", start);
  return url.slice(start, end === -1 ? undefined : end);
}

for await (const _ of Deno.stdin.readable) { /* the parent closes stdin to stop us */ }
listener.close();
await server.shutdown();
