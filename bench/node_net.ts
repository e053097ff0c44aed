/**
 * Does `node:net` cost a Deno program anything next to `Deno.connect`? The
 * client's two socket adapters (`src/client/transport/deno.ts` and
 * `node.ts`), both under Deno, against real relays (`server.ts` as
 * subprocesses, one on a Unix socket and one on loopback TCP with a
 * coordinator token): the time of one connect + handshake + `registered`
 * round trip, one at a time and 200 at once, and what loading each adapter
 * costs a fresh process. `src/client/transport/default.ts` chose from these
 * figures.
 *
 * ```sh
 * deno run --allow-env --allow-net --allow-read --allow-write=/tmp --allow-run --allow-sys=uid bench/node_net.ts [--rounds N]
 * ```
 *
 * @module
 */

import { denoTransport } from "../src/client/transport/deno.ts";
import { nodeTransport } from "../src/client/transport/node.ts";
import type { Settings } from "../src/client/settings.ts";
import type { Transport } from "../src/client/transport/transport.ts";
import { waitForCode } from "../src/client/wait.ts";
import type { CoordinatorAddress } from "../src/protocol/mod.ts";
import { summarize } from "./common.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const TOKEN = "bench-coordinator-token-0123456789";
const rounds = Number(Deno.args[Deno.args.indexOf("--rounds") + 1]) || 10;
/** Round trips per adapter per round; the adapters take turns, so drift of the machine hits both alike. */
const PER_ROUND = 200;
const CONCURRENT = 200;
const LOAD_SAMPLES = 7;

/** A relay as a subprocess, with the coordinator address it logged. */
async function startRelay(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-net", "--allow-read=/tmp", "--allow-write=/tmp", `${ROOT}server.ts`],
    env: { PORT: "0", OAUTH_LOG_LEVEL: "info", OAUTH_MAX_WAITERS: "1000", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    const coordinator = text.match(/OAuth coordinator listening on (\S+)/)?.[1];
    if (coordinator && /HTTP listening on/.test(text)) {
      return {
        coordinator,
        async [Symbol.asyncDispose]() {
          child.kill("SIGTERM");
          await child.status;
        },
      };
    }
  }
  throw new Error(`relay exited before listening: ${text}`);
}

let serial = 0;

/** A relay to measure against. */
interface Target {
  name: string;
  address: CoordinatorAddress;
  token?: string;
}

/** One registration: connect, (handshake,) register, read `registered`, close. Milliseconds. */
async function roundTrip(transport: Transport, address: CoordinatorAddress, token?: string): Promise<number> {
  const started = performance.now();
  const channel = await transport.open(address, { state: `bench-${serial++}`, timeout: 30, token });
  const message = await channel.read();
  const elapsed = performance.now() - started;
  channel.close();
  if (message?.type !== "registered") throw new Error(`expected "registered", got ${JSON.stringify(message)}`);
  return elapsed;
}

/**
 * A whole `waitForCode` until the relay holds its registration, then cancelled: with many at
 * once the relay turns some away as busy (it bounds connections that have not registered yet)
 * and the client retries, as a real client does.
 */
async function registered(transport: Transport, target: Target): Promise<void> {
  const controller = new AbortController();
  const settings: Partial<Settings> = target.address.transport === "unix"
    ? { useTcp: false, socketPath: target.address.path }
    : target.address.transport === "tcp"
    ? { useTcp: true, tcpHost: target.address.hostname, tcpFallbackPort: target.address.port, token: target.token }
    : {};
  const cancelled = new Error("registered");
  await waitForCode({
    state: `bench-${serial++}`,
    timeout: 30,
    settings,
    transport,
    signal: controller.signal,
    onRegistered: () => controller.abort(cancelled),
  }).catch((error) => {
    if (error !== cancelled) throw error;
  });
}

const ADAPTERS = { "Deno.connect": denoTransport, "node:net": nodeTransport } as const;
type Adapter = keyof typeof ADAPTERS;

/** Median load time (ms) and resident memory added (MB) of importing `module` in a fresh Deno process. */
async function loadCost(module: string): Promise<{ ms: number; mb: number }> {
  const script = `const rss = Deno.memoryUsage().rss; const t = performance.now();
await import(${JSON.stringify(`${ROOT}${module}`)});
console.log(JSON.stringify({ ms: performance.now() - t, mb: (Deno.memoryUsage().rss - rss) / 2 ** 20 }));`;
  const samples: { ms: number; mb: number }[] = [];
  for (let i = 0; i < LOAD_SAMPLES; i++) {
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", script],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!success) throw new Error(`importing ${module} failed`);
    samples.push(JSON.parse(new TextDecoder().decode(stdout)));
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return { ms: median(samples.map((s) => s.ms)), mb: median(samples.map((s) => s.mb)) };
}

const dir = await Deno.makeTempDir({ prefix: "oauth-relay-bench-" });
try {
  await using unixRelay = await startRelay({ OAUTH_SOCKET_PATH: `${dir}/relay.sock` });
  await using tcpRelay = await startRelay({
    OAUTH_USE_TCP: "true",
    OAUTH_TCP_FALLBACK_PORT: "0",
    OAUTH_COORDINATOR_TOKEN: TOKEN,
  });
  const [hostname, port] = tcpRelay.coordinator.split(/:(?=\d+$)/);
  const targets: Target[] = [
    { name: "unix", address: { transport: "unix", path: unixRelay.coordinator } },
    { name: "tcp+token", address: { transport: "tcp", hostname, port: Number(port) }, token: TOKEN },
  ];

  console.log(`Deno ${Deno.version.deno}, ${rounds} rounds × ${PER_ROUND} round trips per adapter and target`);
  console.log("\nconnect + register + registered, one at a time (ms)");
  console.log("target      adapter        p50     p90     p99     mean");
  for (const target of targets) {
    const times: Record<Adapter, number[]> = { "Deno.connect": [], "node:net": [] };
    // Warm up both (JIT, the relay's first connections) before anything counts.
    for (const transport of Object.values(ADAPTERS)) {
      for (let i = 0; i < 100; i++) await roundTrip(transport, target.address, target.token);
    }
    for (let round = 0; round < rounds; round++) {
      const order = (round % 2 ? ["node:net", "Deno.connect"] : ["Deno.connect", "node:net"]) as Adapter[];
      for (const adapter of order) {
        for (let i = 0; i < PER_ROUND; i++) {
          times[adapter].push(await roundTrip(ADAPTERS[adapter], target.address, target.token));
        }
      }
    }
    for (const adapter of Object.keys(ADAPTERS) as Adapter[]) {
      const s = summarize(times[adapter]);
      const f = (value: number) => value.toFixed(3).padStart(7);
      console.log(`${target.name.padEnd(11)} ${adapter.padEnd(12)} ${f(s.p50)} ${f(s.p90)} ${f(s.p99)} ${f(s.mean)}`);
    }
  }

  console.log(`\n${CONCURRENT} waitForCode() at once until all are registered (ms, median of ${rounds})`);
  for (const target of targets) {
    for (const [adapter, transport] of Object.entries(ADAPTERS)) {
      const totals: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const started = performance.now();
        await Promise.all(Array.from({ length: CONCURRENT }, () => registered(transport, target)));
        totals.push(performance.now() - started);
      }
      console.log(`${target.name.padEnd(11)} ${adapter.padEnd(12)} ${summarize(totals).p50.toFixed(1).padStart(7)}`);
    }
  }

  console.log(`\nloading the adapter in a fresh Deno process (median of ${LOAD_SAMPLES})`);
  for (const module of ["src/client/transport/deno.ts", "src/client/transport/node.ts"]) {
    const { ms, mb } = await loadCost(module);
    console.log(`${module.padEnd(30)} ${ms.toFixed(1).padStart(6)} ms  +${mb.toFixed(1)} MB resident`);
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
