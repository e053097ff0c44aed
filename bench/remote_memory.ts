/**
 * What one waiting client costs a server in RSS, counted on fresh growth:
 * the relay with remote waiters, the relay with socket waiters, and two
 * bare `Deno.serve` servers that show the runtime's floor for a remote
 * waiter, one holding an event stream per client (what any server-sent
 * events server holds) and one holding a request it has not answered yet
 * (the least an HTTP server can hold for a waiting client).
 *
 * Each server is its own process; the clients are in this one. After 200
 * warm-up clients, the RSS is read at each count (waiting a second for it
 * to settle) and the growth divided by the clients added, so that memory an
 * allocator kept from earlier clients does not hide what new ones cost.
 *
 * Usage: `deno run -A bench/remote_memory.ts [relay-remote|relay-socket|stream|held] [COUNT ...]`
 * (default: all four, at 2,200, 4,200 and 6,200 clients). Needs a file limit above the largest count.
 *
 * @module
 */

const TOKEN = "remote-memory-bench-token-0123456789abcdef";
const KINDS = ["relay-remote", "relay-socket", "stream", "held"] as const;
type Kind = typeof KINDS[number];

const args = Deno.args.filter((arg) => !/^\d+$/.test(arg)) as Kind[];
const counts = Deno.args.filter((arg) => /^\d+$/.test(arg)).map(Number);
const kinds = args.length ? args : [...KINDS];
const points = counts.length ? counts : [2_200, 4_200, 6_200];
const WARM = 200;
/** Clients connecting at once: the coordinator keeps at most 64 unregistered connections. */
const BATCH = 50;
const encoder = new TextEncoder();

/** A bare server: `stream` answers each `POST` with an event stream, `held` never answers. */
const BARE_SERVER = `
const [port, kind] = Deno.args;
const held = [];
Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen() {} }, async (request) => {
  if (request.method !== "POST") return new Response("ok");
  await request.arrayBuffer();
  if (kind === "held") return await new Promise((resolve) => held.push(resolve));
  const body = new ReadableStream({ start(controller) { held.push(controller); controller.enqueue(new TextEncoder().encode("event: registered\\ndata: {}\\n\\n")); } });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
});
`;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function measure(kind: Kind): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "oauth-relay-memory-" });
  const port = freePort();
  const socketPath = `${dir}/relay.sock`;
  const relay = kind.startsWith("relay");
  const server = new Deno.Command(Deno.execPath(), {
    args: relay
      ? ["run", "-A", new URL("../server.ts", import.meta.url).pathname]
      : ["eval", BARE_SERVER, String(port), kind],
    env: {
      OAUTH_CLIENT_TOKENS: TOKEN,
      OAUTH_MAX_HTTP_CONNECTIONS: String(Math.max(...points) * 2),
      OAUTH_MAX_WAITERS: String(Math.max(...points) * 2),
      OAUTH_MAX_WAITERS_PER_TOKEN: String(Math.max(...points) * 2),
      OAUTH_SOCKET_PATH: socketPath,
      OAUTH_LOG_LEVEL: "warn",
      HOST: "127.0.0.1",
      PORT: String(port),
    },
    stdin: "null",
    stdout: "null",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    const up = await fetch(`${base}/health`).then((response) => response.body?.cancel().then(() => true), () => false);
    if (up) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const rss = async () => Number(/VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${server.pid}/status`))![1]);
  const conns: Deno.Conn[] = [];
  const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  const unanswered: Promise<unknown>[] = [];
  let n = 0;
  const one = async () => {
    const state = `memory-${n++}`.padEnd(32, "s");
    if (kind === "relay-socket") {
      const conn = await Deno.connect({ transport: "unix", path: socketPath });
      await conn.write(encoder.encode(JSON.stringify({ v: 2, type: "register", state, timeout: 600 }) + "\n"));
      await conn.read(new Uint8Array(512)); // registered
      conns.push(conn);
      return;
    }
    const request = fetch(`${base}/v1/wait`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ state, timeout: 600 }),
    });
    if (kind === "held") {
      // Never answered: counted once the server has the request, which /health answered after it shows.
      unanswered.push(request.catch(() => {}));
      return;
    }
    const reader = (await request).body!.getReader();
    await reader.read(); // registered
    readers.push(reader);
  };
  const upTo = async (count: number) => {
    while (n < count) await Promise.all(Array.from({ length: Math.min(BATCH, count - n) }, one));
    await fetch(`${base}/health`).then((response) => response.body?.cancel());
    await new Promise((resolve) => setTimeout(resolve, 1000));
  };
  await upTo(WARM);
  let before = { clients: n, kib: await rss() };
  const perClient: string[] = [];
  for (const count of points) {
    await upTo(count);
    const now = { clients: n, kib: await rss() };
    perClient.push(`${((now.kib - before.kib) / (now.clients - before.clients)).toFixed(1)} KiB`);
    before = now;
  }
  console.log(`${kind.padEnd(12)} RSS per client, ${[WARM, ...points].join(" → ")}: ${perClient.join(", ")}`);
  server.kill("SIGKILL");
  await server.status;
  for (const conn of conns) conn.close();
  await Promise.all([...readers.map((reader) => reader.cancel().catch(() => {})), ...unanswered]);
  await Deno.remove(dir, { recursive: true });
}

for (const kind of kinds) await measure(kind);
