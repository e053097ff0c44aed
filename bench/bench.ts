/**
 * `deno task bench [--smoke] [--out FILE] [--modes unix,tcp,http,https] [--profile DIR]`
 *
 * Measures the relay against the floor of this machine, in one run, with one
 * load generator for everything: the HTTP floor (a bare `Deno.serve` that
 * answers 200), the delivery floor (`bare_relay.ts`: the least a relay of
 * this design can do) and the relay itself (`server.ts`, started as in
 * production), each with Unix socket and TCP coordinators; then the relay
 * with remote waiters (`waitForCode` with `relayUrl` and `clientToken`, one
 * `POST /v1/wait` stream each), over plain HTTP on loopback and over TLS with
 * a throwaway CA made with `openssl` at start. The load
 * generator, the relay and the waiting clients (real `waitForCode` calls) are
 * separate processes on loopback. Prints a Markdown table and writes every
 * figure to `bench/results.json` (`bench/results-smoke.json` with `--smoke`).
 * `docs/performance.md` explains each figure.
 *
 * `--smoke` runs every measurement with small counts in a few seconds, for
 * CI. The exit code is non-zero only when something is broken (a wrong or
 * missing delivery, a crashed process), never for a missed target.
 *
 * @module
 */

import { CALLBACK_PATH, callbackPath, stateOf, summarize, type Summary } from "./common.ts";
import { Child, type CpuTime, readProc } from "./processes.ts";

type Mode = "unix" | "tcp" | "http" | "https" | "redis";
const MODES: readonly Mode[] = ["unix", "tcp", "http", "https", "redis"];
/** Remote waiting: `waitForCode` over `POST /v1/wait` instead of the coordinator socket. */
const isRemote = (mode: Mode) => mode === "http" || mode === "https";

/**
 * Most remote waiters held at once, and a memory point of every column. Each holds an HTTP connection
 * to the relay (over plain HTTP; over TLS `fetch` multiplexes them on HTTP/2), so the relay runs with
 * {@linkcode REMOTE_HTTP_CONNECTIONS} (`OAUTH_MAX_HTTP_CONNECTIONS`) for them and the load generator's 50.
 */
const REMOTE_WAITING = 1_000;
/** The relay's HTTP connection cap in the remote columns. */
const REMOTE_HTTP_CONNECTIONS = 4_000;
/** Remote waiters per waiter process over TLS, below the 200 streams an HTTP/2 connection takes at once. */
const H2_WAITERS_PER_PROCESS = 150;
/** Latency samples of an HTTPS series, where each takes ~40 ms. */
const HTTPS_LATENCY_SAMPLES = 300;
/** A small memory point every column has, where RSS growth is mostly noise (kept for comparison with earlier runs). */
const SMALL_MEMORY_POINT = 150;
/** Deliveries of a remote column's throughput run, in rounds of at most {@linkcode REMOTE_WAITING}. */
const REMOTE_DELIVERIES = { full: 10_000, smoke: 1_000 };
/** The client token of the remote waiters (the relay wants at least 32 characters). */
const CLIENT_TOKEN = "bench-client-token-0123456789abcdefghijklmnop";

interface Plan {
  /** Requests that warm up the JIT of every process before anything is measured. */
  warmup: number;
  /** Requests of the floor's throughput run. */
  floorRequests: number;
  /** Sequential single requests per latency series. */
  latencySamples: number;
  /** Samples run and dropped before each latency series. */
  latencyWarmup: number;
  /** Idle clients waiting while a latency series runs. */
  otherWaiting: number[];
  /** Waiters registered per round of the deliveries run, and rounds. */
  deliveryBatch: number;
  deliveryRounds: number;
  /** Waiting clients at which relay memory is measured (more are added if the descriptor limit allows). */
  memoryAt: number[];
}

const FULL: Plan = {
  warmup: 5_000,
  floorRequests: 30_000,
  latencySamples: 2_000,
  latencyWarmup: 200,
  otherWaiting: [1, 100, 10_000],
  deliveryBatch: 10_000,
  deliveryRounds: 3,
  memoryAt: [SMALL_MEMORY_POINT, REMOTE_WAITING, 10_000],
};

const SMOKE: Plan = {
  warmup: 500,
  floorRequests: 2_000,
  latencySamples: 100,
  latencyWarmup: 20,
  otherWaiting: [1, 100, 1_000],
  deliveryBatch: 1_000,
  deliveryRounds: 1,
  memoryAt: [SMALL_MEMORY_POINT, REMOTE_WAITING],
};

const CONCURRENCY = 50;
/** Waiters registered at once while warming up. */
const WARMUP_BATCH = 100;
/** Waiters one waiter process holds at most (each is a file descriptor there). */
const MAX_WAITERS_PER_PROCESS = 10_000;
/** Most waiting clients the memory figure goes to, however high the descriptor limit. */
const MAX_WAITING = 30_000;

const HERE = new URL(".", import.meta.url).pathname;
const SERVER = new URL("../server.ts", import.meta.url).pathname;

// ---------------------------------------------------------------- arguments

function parseArgs(args: string[]) {
  const options = { smoke: false, out: "", modes: [...MODES], profile: "" };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      const next = args[++i];
      if (next === undefined) throw new TypeError(`${arg} needs a value`);
      return next;
    };
    if (arg === "--smoke") options.smoke = true;
    else if (arg === "--out") options.out = value();
    else if (arg === "--profile") options.profile = value();
    else if (arg === "--modes") {
      const modes = value().split(",");
      if (!modes.every((mode) => (MODES as string[]).includes(mode))) {
        throw new TypeError(`--modes takes some of ${MODES.join(",")}, got ${modes.join(",")}`);
      }
      options.modes = MODES.filter((mode) => modes.includes(mode));
    } else {
      throw new TypeError(
        `Unknown argument ${arg}; use --smoke, --out FILE, --modes ${MODES.join(",")}, --profile DIR`,
      );
    }
  }
  options.out ||= `${HERE}${options.smoke ? "results-smoke.json" : "results.json"}`;
  return options;
}

const started = performance.now();
const options = (() => {
  try {
    return parseArgs(Deno.args);
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    Deno.exit(2);
  }
})();
const progress = (text: string) =>
  console.error(`bench: ${text} (at ${((performance.now() - started) / 1000).toFixed(1)} s)`);
const plan: Plan = structuredClone(options.smoke ? SMOKE : FULL);
let waitersPerProcess = MAX_WAITERS_PER_PROCESS;

/**
 * Fits the plan to the file-descriptor limit, which every process inherits:
 * the relay holds one descriptor per waiting client, and so does the waiter
 * process. Returns the most clients the run keeps waiting at once.
 */
function fitToDescriptors(limit: number): number {
  const reserve = Math.min(1_000, Math.max(64, Math.floor(limit / 10)));
  const usable = Math.min(MAX_WAITING, limit - reserve);
  const fit = (count: number) => Math.min(count, usable - 1);
  const original = JSON.stringify(plan);
  plan.otherWaiting = [...new Set(plan.otherWaiting.map(fit))];
  plan.memoryAt = [...new Set(plan.memoryAt.map(fit))];
  plan.deliveryBatch = fit(plan.deliveryBatch);
  waitersPerProcess = Math.min(MAX_WAITERS_PER_PROCESS, usable);
  if (JSON.stringify(plan) !== original) {
    progress(`descriptor limit ${limit}: at most ${usable - 1} clients wait at once`);
  }
  const most = Math.max(...plan.otherWaiting, ...plan.memoryAt);
  return options.smoke ? most : Math.max(most, Math.floor(usable / 1000) * 1000);
}

// ---------------------------------------------------------------- the machine

/** The soft limit on open files, which the relay and the waiter processes inherit. */
async function descriptorLimit(): Promise<number> {
  const limits = await readProc(`${loadgen.pid}/limits`);
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  return soft === undefined || soft === "unlimited" ? 1_048_576 : Number(soft);
}

async function machine() {
  const cpuinfo = await readProc("cpuinfo").catch(() => "");
  const memory = Deno.systemMemoryInfo();
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(memory.total / 2 ** 30),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    descriptorLimit: await descriptorLimit(),
    loadAverageAtStart: Deno.loadavg(),
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** A throwaway CA and a certificate it signed for localhost and 127.0.0.1, made with `openssl` in `dir`. */
interface TlsFiles {
  caFile: string;
  caCert: string;
  certFile: string;
  keyFile: string;
}

async function makeTlsFiles(dir: string): Promise<TlsFiles> {
  const openssl = async (...args: string[]) => {
    const { success, stderr } = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
    check(success, `openssl ${args[0]} failed: ${new TextDecoder().decode(stderr).trim()}`);
  };
  const at = (name: string) => `${dir}/${name}`;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    at("ca.key"),
    "-out",
    at("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=oauth-relay bench CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  await openssl("req", ...ec, "-keyout", at("relay.key"), "-out", at("relay.csr"), "-subj", "/CN=localhost");
  await Deno.writeTextFile(
    at("relay.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    at("relay.csr"),
    "-CA",
    at("ca.pem"),
    "-CAkey",
    at("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    at("relay.ext"),
    "-out",
    at("relay.pem"),
  );
  return {
    caFile: at("ca.pem"),
    caCert: await Deno.readTextFile(at("ca.pem")),
    certFile: at("relay.pem"),
    keyFile: at("relay.key"),
  };
}

let tlsFiles: TlsFiles | undefined;

const children = new Set<Child>();

function spawn(name: string, args: string[], env: Record<string, string> = {}, command?: string): Child {
  const child = new Child(name, args, env, command);
  children.add(child);
  return child;
}

async function stop(child: Child, signal?: Deno.Signal): Promise<number> {
  children.delete(child);
  return await child.stop(signal);
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

const profileFlags = (name: string) =>
  options.profile ? ["--cpu-prof", `--cpu-prof-dir=${options.profile}`, `--cpu-prof-name=${name}.cpuprofile`] : [];

// ---------------------------------------------------------------- measurements

/**
 * The senders: the same load generator on Deno (`loadgen.ts`) and on Node (`loadgen_node.mjs`). Each is
 * measured against the bare floor server first; the one with the faster round trip sends every request
 * of the run (`loadgen`), so that the sender is not what the figures measure.
 */
const senders: Record<string, Child> = {
  deno: spawn("load generator (Deno)", ["run", "-q", "--allow-net", ...profileFlags("loadgen"), `${HERE}loadgen.ts`]),
};
if (await hasNode()) {
  senders.node = spawn(
    "load generator (Node)",
    [...profileFlags("loadgen-node"), new URL("./loadgen_node.mjs", import.meta.url).pathname],
    {},
    "node",
  );
}
let loadgen: Child = senders.deno;

/** Whether `node` runs here. */
async function hasNode(): Promise<boolean> {
  try {
    return (await new Deno.Command("node", { args: ["--version"], stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

interface Throughput {
  count: number;
  perSecond: number;
  seconds: number;
  /** CPU per request or delivery, in microseconds, per process. */
  cpuUs: Record<string, CpuTime>;
}

/** CPU time of each process; call `stop()` after the measured run for microseconds per operation. */
async function cpuMeter(processes: Record<string, Child>) {
  const read = () => Promise.all(Object.values(processes).map((child) => child.cpuMs()));
  const before = await read();
  return {
    async stop(operations: number): Promise<Record<string, CpuTime>> {
      const after = await read();
      return Object.fromEntries(
        Object.keys(processes).map((name, i) => [name, {
          user: (after[i].user - before[i].user) * 1000 / operations,
          system: (after[i].system - before[i].system) * 1000 / operations,
        }]),
      );
    },
  };
}

async function measureFloor(loadgen: Child) {
  const floor = spawn("floor", ["run", "-q", "--allow-net", ...profileFlags("floor"), `${HERE}floor.ts`]);
  try {
    const { port } = await floor.reply(0, "listening");
    await loadgen.request({ op: "connect", port, connections: CONCURRENCY });
    const fixed = (count: number) => ({ kind: "fixed", path: "/", count });
    const warm = await loadgen.request({
      op: "run",
      target: fixed(plan.warmup),
      concurrency: CONCURRENCY,
      expectStatus: 200,
    });
    check(warm.bad === 0, `The floor answered ${JSON.stringify(warm.statuses)}`);

    const cpu = await cpuMeter({ server: floor, loadgen });
    const run = await loadgen.request({
      op: "run",
      target: fixed(plan.floorRequests),
      concurrency: CONCURRENCY,
      expectStatus: 200,
    });
    check(run.bad === 0, `The floor answered ${JSON.stringify(run.statuses)}`);
    const seconds = ((run.end as number) - (run.start as number)) / 1000;
    const throughput: Throughput = {
      count: plan.floorRequests,
      seconds,
      perSecond: plan.floorRequests / seconds,
      cpuUs: await cpu.stop(plan.floorRequests),
    };

    const roundTrips: number[] = [];
    for (let i = 0; i < plan.latencyWarmup + plan.latencySamples; i++) {
      const one = await loadgen.request({ op: "one", path: "/", expectStatus: 200 });
      check(one.bad === 0, `The floor answered ${one.status}`);
      if (i >= plan.latencyWarmup) roundTrips.push(((one.doneAt as number) - (one.sentAt as number)) * 1000);
    }
    return { throughput, roundTripUs: summarize(roundTrips) };
  } finally {
    await stop(floor);
  }
}

/** The in-process catcher (`catcher.ts`): callback sent → the promise resolved in the server's own process. */
async function measureCatcher() {
  const catcher = spawn("in-process catcher", [
    "run",
    "-q",
    "--allow-net",
    ...profileFlags("catcher"),
    `${HERE}catcher.ts`,
  ]);
  try {
    const { port } = await catcher.reply(0, "listening");
    await loadgen.request({ op: "connect", port, connections: CONCURRENCY });
    const latencies: number[] = [];
    const roundTrips: number[] = [];
    for (let i = 0; i < plan.latencyWarmup + plan.latencySamples; i++) {
      const state = stateOf("catcher", i);
      const id = catcher.send({ op: "catch", state });
      await catcher.reply(id, "registered");
      const [one, done] = await Promise.all([
        loadgen.request({ op: "one", path: callbackPath(state), expectStatus: 200 }),
        catcher.reply(id, "resolved"),
      ]);
      check(one.bad === 0, `The catcher answered ${one.status}`);
      if (i < plan.latencyWarmup) continue;
      latencies.push(((done.last as number) - (one.sentAt as number)) * 1000);
      roundTrips.push(((one.doneAt as number) - (one.sentAt as number)) * 1000);
    }
    return { latencyUs: summarize(latencies), httpRoundTripUs: summarize(roundTrips) };
  } finally {
    await stop(catcher);
  }
}

interface LatencySeries {
  otherWaiting: number;
  /** Callback sent → `waitForCode` resolved, in microseconds. */
  latencyUs: Summary;
  /** The delivering callback's HTTP round trip, in microseconds. */
  httpRoundTripUs: Summary;
}

interface MemoryPoint {
  waiting: number;
  rssBaseline: number;
  rss: number;
  bytesPerWaiter: number;
}

/**
 * What serves the callbacks: the relay, the bare delivery floor
 * (`bare_relay.ts` and `waiters.ts --bare`), or that floor with the two parts
 * of the relay's design it does without (`design`): the flood-guarded HTTP
 * engine (`src/relay/http/serve.ts`) and the callback page with its security
 * headers. The difference between the last two is what the relay's own code costs.
 */
type Kind = "relay" | "bare" | "design";

/** Whether `kind` is one of the delivery floors (bare processes, no relay). */
const isFloor = (kind: Kind) => kind !== "relay";

/** The delivery floor's parts of the relay's design in the `design` column (`bare_relay.ts`, `BARE_WITH`). */
const DESIGN_PARTS = "engine,page";

/** One relay (or bare delivery floor) under measurement, with its waiter processes. */
class RelayBench {
  readonly mode: Mode;
  readonly kind: Kind;
  readonly relay: Child;
  readonly waiterProcesses: Child[] = [];
  /** The HTTP port the load generator sends to (relay A's in the Redis column). */
  readonly httpPort = freePort();
  /** Redis column: relay A, which receives the callbacks; the waiters wait at `relay` (B). */
  readonly peer: Child | undefined;
  /** Redis column: the redis-server both relays share. */
  readonly redis: Child | undefined;
  readonly redisUrl: string | undefined;
  /** Redis column: relay B's own HTTP port. */
  #ownPort: number | undefined;
  /** Waiters one waiter process holds at most. */
  readonly perProcess: number;
  #group = 0;
  /** Idle waiters, spread over the waiter processes. */
  readonly #idle: Array<{ process: Child; id: number }> = [];
  #idleCount = 0;

  constructor(mode: Mode, kind: Kind, dir: string, maxWaiting: number) {
    this.mode = mode;
    this.kind = kind;
    const socketPath = `${dir}/${kind}-${mode}.sock`;
    const tcpPort = freePort();
    if (mode === "redis") {
      // Two relays on one Redis: the waiters wait at B (`relay`, whose memory is measured), the callbacks
      // arrive at A (`peer`, whose HTTP port the load generator uses).
      const redisPort = freePort();
      this.redis = spawn(
        "redis-server",
        [
          "--port",
          String(redisPort),
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          "no",
          "--logfile",
          `${dir}/redis.log`,
        ],
        {},
        "redis-server",
      );
      this.redisUrl = `redis://127.0.0.1:${redisPort}`;
      this.peer = this.#spawnRelay(mode, dir, `${dir}/${kind}-${mode}-a.sock`, tcpPort, maxWaiting, this.httpPort, "a");
      this.#ownPort = freePort();
    }
    this.relay = isFloor(kind)
      ? spawn(`bare delivery (${kind}, ${mode})`, [
        "run",
        "-q",
        "--allow-net",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        "--allow-env=BARE_WITH",
        ...profileFlags(`bare-${mode}`),
        `${HERE}bare_relay.ts`,
        String(this.httpPort),
        mode,
        ...(mode === "https"
          ? [tlsFiles!.certFile, tlsFiles!.keyFile]
          : mode === "http"
          ? []
          : [mode === "tcp" ? String(tcpPort) : socketPath]),
      ], { BARE_WITH: kind === "design" ? DESIGN_PARTS : "" })
      : this.#spawnRelay(mode, dir, socketPath, tcpPort, maxWaiting, this.#ownPort ?? this.httpPort);
    const settings = isRemote(mode)
      ? { relayUrl: `${mode}://127.0.0.1:${this.httpPort}`, clientToken: CLIENT_TOKEN }
      : mode === "tcp"
      ? { useTcp: true, tcpFallbackPort: tcpPort }
      : { useTcp: false, socketPath };
    // Over TLS a process's waits share one HTTP/2 connection, which takes at most 200 streams at once
    // (hyper's default, which Deno's server keeps): the rest would queue behind them, never registering.
    this.perProcess = mode === "https" ? Math.min(waitersPerProcess, H2_WAITERS_PER_PROCESS) : waitersPerProcess;
    // The first process holds the latency and delivery waiters, the others the idle ones: over TLS a
    // process takes only so many streams, and a batch of deliveries must not queue behind idle waiters.
    const processes = 1 + Math.max(1, Math.ceil(maxWaiting / this.perProcess));
    for (let i = 1; i <= processes; i++) {
      this.waiterProcesses.push(spawn(`waiters ${i} (${kind}, ${mode})`, [
        "run",
        "-q",
        "--allow-net",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        ...profileFlags(`waiters-${kind}-${mode}-${i}`),
        `${HERE}waiters.ts`,
        JSON.stringify(settings),
        ...(isFloor(kind) ? ["--bare"] : []),
        // The waiters trust the throwaway CA as a user trusts a private one: DENO_CERT.
      ], mode === "https" ? { DENO_CERT: tlsFiles!.caFile } : {}));
    }
  }

  /** Starts the relay as production starts it: server.ts, configured by the environment. */
  #spawnRelay(
    mode: Mode,
    dir: string,
    socketPath: string,
    tcpPort: number,
    maxWaiting: number,
    httpPort: number,
    name = "",
  ): Child {
    return spawn(`relay ${name}(${mode})`, [
      "run",
      "-q",
      "--allow-env",
      "--allow-net",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      // As `deno task serve`: the relay sizes its caps to the file limit it reads with `sh -c "ulimit -n"`.
      "--allow-run=sh",
      ...profileFlags(`relay-${mode}`),
      SERVER,
    ], {
      HOST: "127.0.0.1",
      PORT: String(httpPort),
      OAUTH_ENABLED: "true",
      OAUTH_CALLBACK_PATH: CALLBACK_PATH,
      OAUTH_CODE_KEYS: "code",
      OAUTH_SOCKET_PATH: socketPath,
      OAUTH_USE_TCP: String(mode === "tcp"),
      OAUTH_TCP_FALLBACK_PORT: String(tcpPort),
      OAUTH_LOG_LEVEL: "warn",
      OAUTH_LOG_UNMATCHED: "false",
      OAUTH_DEFAULT_TIMEOUT: "600",
      OAUTH_MAX_WAITERS: String(maxWaiting + 10_000),
      ...(isRemote(mode)
        ? {
          OAUTH_CLIENT_TOKENS: CLIENT_TOKEN,
          OAUTH_MAX_WAITERS_PER_TOKEN: "100000",
          OAUTH_MAX_HTTP_CONNECTIONS: String(REMOTE_HTTP_CONNECTIONS),
        }
        : {}),
      ...(mode === "https" ? { OAUTH_TLS_CERT_FILE: tlsFiles!.certFile, OAUTH_TLS_KEY_FILE: tlsFiles!.keyFile } : {}),
      ...(this.redisUrl ? { OAUTH_REDIS_URL: this.redisUrl } : {}),
    });
  }

  /** The waiter process that holds the measured waiters. */
  get waiters(): Child {
    return this.waiterProcesses[0];
  }

  async start(): Promise<void> {
    if (isFloor(this.kind)) await this.relay.reply(0, "listening");
    else await untilListening(this.relay, this.#ownPort ?? this.httpPort);
    if (this.peer) await untilListening(this.peer, this.httpPort);
    await this.reconnect();
  }

  /** Opens the load generator's connections afresh: the relay closes those idle for 10 s. */
  async reconnect(): Promise<void> {
    // Over TLS the callbacks come over TLS too: the HTTPS port is the relay's only HTTP port.
    const caCert = this.mode === "https" ? tlsFiles!.caCert : undefined;
    await loadgen.request({ op: "connect", port: this.httpPort, connections: CONCURRENCY, caCert });
  }

  /** Registers `count` waiters in `process`; resolves once the relay acknowledged each one. */
  async register(process: Child, count: number, idle: boolean) {
    const prefix = `${this.kind}${this.mode}${++this.#group}`;
    const id = process.send({ op: "register", prefix, from: 0, to: count, idle });
    const registered = await process.reply(id, "registered");
    check(
      registered.failed === 0,
      `${registered.failed} of ${count} registrations failed (${process.name}): ${registered.errors}`,
    );
    return { id, prefix, resolved: idle ? undefined : process.reply(id, "resolved") };
  }

  /** Registers `count` waiters, then delivers a code to each at concurrency 50. */
  async deliveries(count: number): Promise<Throughput> {
    const { prefix, resolved } = await this.register(this.waiters, count, false);
    const cluster: Record<string, Child> = this.peer && this.redis ? { relayA: this.peer, redis: this.redis } : {};
    const cpu = await cpuMeter({ relay: this.relay, waiters: this.waiters, loadgen, ...cluster });
    const [run, done] = await Promise.all([
      loadgen.request({
        op: "run",
        target: { kind: "callback", prefix, from: 0, to: count },
        concurrency: CONCURRENCY,
        expectStatus: 200,
      }),
      resolved!,
    ]);
    const cpuUs = await cpu.stop(count);
    if (cpuUs.relayA && cpuUs.redis) {
      // The Redis column's server side is both relays and Redis: B's own share stays as relayB.
      cpuUs.relayB = cpuUs.relay;
      const parts = [cpuUs.relayA, cpuUs.relayB, cpuUs.redis];
      cpuUs.relay = {
        user: parts.reduce((sum, part) => sum + part.user, 0),
        system: parts.reduce((sum, part) => sum + part.system, 0),
      };
    }
    check(run.bad === 0, `Callbacks answered ${JSON.stringify(run.statuses)} instead of 200`);
    check(done.count === count, `${count - (done.count as number)} waiters did not resolve: ${done.errors}`);
    check(done.wrong === 0, `${done.wrong} waiters received a wrong result`);
    // A delivery counts once its waiter has resolved (and its callback was answered).
    const seconds = (Math.max(done.last as number, run.end as number) - (run.start as number)) / 1000;
    return {
      count,
      seconds,
      perSecond: count / seconds,
      cpuUs,
    };
  }

  /** Single callbacks, one at a time, each to a waiter registered just before it. */
  async latencySeries(otherWaiting: number): Promise<LatencySeries> {
    const latencies: number[] = [];
    const roundTrips: number[] = [];
    const prefix = `${this.kind}${this.mode}${++this.#group}`;
    // Over Deno's TLS server every sample waits ~40 ms for a delayed ACK (docs/performance.md): fewer samples.
    const samples = this.mode === "https" ? Math.min(plan.latencySamples, HTTPS_LATENCY_SAMPLES) : plan.latencySamples;
    for (let i = 0; i < plan.latencyWarmup + samples; i++) {
      const id = this.waiters.send({ op: "register", prefix, from: i, to: i + 1, idle: false });
      const registered = await this.waiters.reply(id, "registered");
      check(registered.failed === 0, `A latency waiter could not register`);
      const [one, done] = await Promise.all([
        loadgen.request({ op: "one", path: callbackPath(stateOf(prefix, i)), expectStatus: 200 }),
        this.waiters.reply(id, "resolved"),
      ]);
      check(one.bad === 0, `A delivering callback answered ${one.status}`);
      check(done.count === 1 && done.wrong === 0, `A latency waiter did not get its code: ${done.errors}`);
      if (i < plan.latencyWarmup) continue;
      latencies.push(((done.last as number) - (one.sentAt as number)) * 1000);
      roundTrips.push(((one.doneAt as number) - (one.sentAt as number)) * 1000);
    }
    check(latencies.every((value) => value > 0), "A waiter resolved before its callback was sent: clock trouble");
    return { otherWaiting, latencyUs: summarize(latencies), httpRoundTripUs: summarize(roundTrips) };
  }

  /** Registers idle waiters until `target` wait, and checks the relay counts them all. */
  async topUpIdle(target: number): Promise<void> {
    while (this.#idleCount < target) {
      const index = Math.floor(this.#idleCount / this.perProcess);
      const room = (index + 1) * this.perProcess - this.#idleCount;
      const count = Math.min(room, target - this.#idleCount);
      // Process 0 is the latency and delivery waiters' (see the constructor).
      const process = this.waiterProcesses[index + 1];
      const { id } = await this.register(process, count, true);
      this.#idle.push({ process, id });
      this.#idleCount += count;
    }
    if (isFloor(this.kind)) return;
    const health = await healthOf(this.mode, this.httpPort);
    check(health.waiting === this.#idleCount, `The relay reports ${health.waiting} waiting, expected ${target}`);
  }

  get idleCount(): number {
    return this.#idleCount;
  }

  async releaseIdle(): Promise<void> {
    // Remote waits a few at a time: each sends a DELETE on a connection of its own, against the HTTP cap.
    const atOnce = isRemote(this.mode) ? 5 : undefined;
    await Promise.all(
      this.#idle.map(({ process, id }) => process.request({ op: "release", group: id, atOnce }, "released")),
    );
    this.#idle.length = 0;
    this.#idleCount = 0;
  }

  /** Stops the waiter processes and the relay (SIGTERM, as a service manager would). */
  async stop(): Promise<void> {
    for (const process of this.waiterProcesses) await stop(process);
    for (const relay of [this.relay, this.peer]) {
      if (!relay) continue;
      const code = await stop(relay, this.kind === "relay" ? "SIGTERM" : undefined);
      check(code === 0, `The ${relay.name} exited with code ${code}: ${relay.stderr.trim()}`);
    }
    if (this.redis) await stop(this.redis, "SIGTERM");
  }
}

/** The relay's `/health`, on a connection of its own that is closed after (it counts against the HTTP cap). */
async function healthOf(mode: Mode, port: number): Promise<{ waiting: number }> {
  const client = Deno.createHttpClient(mode === "https" ? { caCerts: [tlsFiles!.caCert] } : {});
  try {
    const scheme = mode === "https" ? "https" : "http";
    return await (await fetch(`${scheme}://127.0.0.1:${port}/health`, { client })).json();
  } finally {
    client.close();
  }
}

async function measureRelay(mode: Mode, kind: Kind, dir: string, socketMaxWaiting: number) {
  const remote = isRemote(mode);
  const maxWaiting = remote ? Math.min(REMOTE_WAITING, socketMaxWaiting) : socketMaxWaiting;
  const bench = new RelayBench(mode, kind, dir, maxWaiting);
  const label = `${
    { bare: "delivery floor", design: "delivery floor with engine and page", relay: "relay" }[kind]
  }, ${mode}`;
  progress(`${label}: warm-up`);
  await bench.start();

  // Warm up every process's hot path: callbacks nobody waits for, then deliveries.
  const warm = await loadgen.request({
    op: "run",
    target: { kind: "callback", prefix: "nobody", from: 0, to: plan.warmup },
    concurrency: CONCURRENCY,
    expectStatus: 404,
  });
  check(warm.bad === 0, `Callbacks for unknown states answered ${JSON.stringify(warm.statuses)} instead of 404`);
  // In small batches: a big one would leave the relay's heap grown for the waiters to come, and
  // the memory figure would then miss part of their cost.
  for (let done = 0; done < plan.warmup; done += WARMUP_BATCH) await bench.deliveries(WARMUP_BATCH);

  const rounds: Throughput[] = [];
  const measureDeliveries = async () => {
    progress(`${label}: deliveries`);
    await bench.reconnect();
    const batch = remote ? Math.min(plan.deliveryBatch, maxWaiting, bench.perProcess) : plan.deliveryBatch;
    const roundCount = remote
      ? Math.ceil(REMOTE_DELIVERIES[options.smoke ? "smoke" : "full"] / batch)
      : plan.deliveryRounds;
    for (let round = 0; round < roundCount; round++) rounds.push(await bench.deliveries(batch));
  };
  const rssBaseline = await bench.relay.rss();
  const latency: LatencySeries[] = [];
  const memory: MemoryPoint[] = [];
  const memoryPoint = async () => {
    const rss = await bench.relay.rss();
    const waiting = bench.idleCount;
    memory.push({ waiting, rssBaseline, rss, bytesPerWaiter: (rss - rssBaseline) / waiting });
  };
  // Latency levels and memory points in rising order, as the idle waiters grow; a remote column stops at its cap.
  const levels = [...new Set([...plan.otherWaiting, ...plan.memoryAt])]
    .filter((level) => level < maxWaiting || (level === maxWaiting && plan.memoryAt.includes(level)))
    .sort((a, b) => a - b);
  for (const level of levels) {
    await bench.topUpIdle(level);
    if (plan.memoryAt.includes(level)) {
      progress(`${label}: memory with ${int(level)} waiting`);
      await memoryPoint();
    }
    if (plan.otherWaiting.includes(level)) {
      progress(`${label}: latency with ${int(level)} other waiting`);
      latency.push(await bench.latencySeries(level));
    }
  }
  if (maxWaiting > bench.idleCount) {
    progress(`${label}: memory with ${int(maxWaiting)} waiting`);
    await bench.topUpIdle(maxWaiting);
    await memoryPoint();
  }
  // Deliveries come after the memory points, so that those count memory the waiters newly take: run
  // first, a thousand streams at once would leave the allocator holding their memory for the idle ones.
  // Remote columns never release their idle waiters (aborting many remote waits at once left some
  // `waitForCode` calls unsettled for minutes); stopping the waiter process ends them instead.
  if (!remote) await bench.releaseIdle();
  await measureDeliveries();
  const count = rounds.reduce((sum, round) => sum + round.count, 0);
  const seconds = rounds.reduce((sum, round) => sum + round.seconds, 0);
  const cpuUs: Record<string, CpuTime> = {};
  for (const key of Object.keys(rounds[0].cpuUs)) {
    const mean = (part: keyof CpuTime) =>
      rounds.reduce((sum, round) => sum + round.cpuUs[key][part] * round.count, 0) / count;
    cpuUs[key] = { user: mean("user"), system: mean("system") };
  }
  await bench.stop();
  return { throughput: { count, seconds, perSecond: count / seconds, cpuUs }, rounds, latency, memory };
}

/** Waits until the relay's HTTP port accepts connections (it opens the coordinator first). */
async function untilListening(relay: Child, port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (let delay = 5;; delay = Math.min(delay * 2, 200)) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
    }
    if (Date.now() > deadline) throw new Error(`${relay.name} did not listen within 20 s: ${relay.stderr.trim()}`);
    // Process start-up, not a measurement: polling the port is the only signal at log level warn.
    const exited = await Promise.race([
      relay.process.status.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), delay)),
    ]);
    if (exited) throw new Error(`${relay.name} exited at start: ${relay.stderr.trim()}`);
  }
}

// ---------------------------------------------------------------- report

const us = (value: number) => `${value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString("en-US")} µs`;
const int = (value: number) => Math.round(value).toLocaleString("en-US");
const ratio = (value: number) => value.toFixed(2);
const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;
const mark = (met: boolean) => (met ? "✓" : "✗");
const cpuCell = (times: Array<CpuTime | undefined>) =>
  times.map((time) => (time ? Math.round(time.user + time.system).toString() : "–")).join(" / ");
const kernelCell = (times: Array<CpuTime | undefined>) =>
  times.map((time) => (time ? `${Math.round(100 * time.system / (time.user + time.system))}%` : "–")).join(" / ");
const triple = (summary: Summary) => `${us(summary.p50)} / ${us(summary.p99)} / ${us(summary.max)}`;

interface Target {
  mode: Mode;
  name: string;
  value: number;
  limit: string;
  met: boolean;
}

type FloorResult = Awaited<ReturnType<typeof measureFloor>>;
type RelayResult = Awaited<ReturnType<typeof measureRelay>>;
/** Per mode: the delivery floor and the relay. */
type ModeResults = Partial<Record<Mode, { bare?: RelayResult; design?: RelayResult; relay: RelayResult }>>;

const latencyAt = (result: RelayResult, others: number) =>
  result.latency.find((series) => series.otherWaiting === others);
const memoryAt = (result: RelayResult, waiting: number) => result.memory.find((point) => point.waiting === waiting);

/** The socket relay the remote columns are held against: the Unix socket's (the default), else TCP's. */
function socketRelay(results: ModeResults): { mode: Mode; result: RelayResult } | undefined {
  const mode = (["unix", "tcp"] as const).find((mode) => results[mode]);
  return mode && { mode, result: results[mode]!.relay };
}

/** Remote p50 ÷ the socket relay's p50 at the same level, and RSS per remote waiter ÷ a socket waiter's. */
function remoteRatios(results: ModeResults, result: RelayResult) {
  const socket = socketRelay(results)?.result;
  const latency = result.latency.flatMap((series) => {
    const base = socket && latencyAt(socket, series.otherWaiting);
    return base ? [{ others: series.otherWaiting, value: series.latencyUs.p50 / base.latencyUs.p50 }] : [];
  });
  const memory = result.memory.flatMap((point) => {
    const base = socket && memoryAt(socket, point.waiting);
    return base ? [{ waiting: point.waiting, value: point.bytesPerWaiter / base.bytesPerWaiter }] : [];
  });
  return { latency, memory };
}

/** User and kernel time together. */
const cpuTotal = (time: CpuTime) => time.user + time.system;

function targetsOf(floor: FloorResult, catcher: CatcherResult, results: ModeResults): Target[] {
  const targets: Target[] = [];
  for (const [mode, { relay }] of Object.entries(results) as Array<[Mode, { relay: RelayResult }]>) {
    const add = (name: string, value: number, limit: string, met: boolean) =>
      targets.push({ mode, name, value, limit, met });
    for (const series of relay.latency) {
      const others = int(series.otherWaiting);
      const p50Ratio = series.latencyUs.p50 / floor.roundTripUs.p50;
      add(`latency p50 / floor round-trip p50, ${others} other waiting`, p50Ratio, "≤ 1.2", p50Ratio <= 1.2);
      add(`latency p99, ${others} other waiting (µs)`, series.latencyUs.p99, "< 1000", series.latencyUs.p99 < 1000);
    }
    const first = relay.latency[0];
    const last = relay.latency[relay.latency.length - 1];
    if (relay.latency.length > 1) {
      const growth = last.latencyUs.p50 / first.latencyUs.p50;
      add(
        `latency p50 at ${int(last.otherWaiting)} other waiting / at ${int(first.otherWaiting)}`,
        growth,
        "≤ 1.1",
        growth <= 1.1,
      );
    }
    const share = relay.throughput.perSecond / floor.throughput.perSecond;
    add("deliveries/s / floor requests/s", share, "≥ 0.5", share >= 0.5);
    const bare = results[mode]?.bare;
    if (bare && !isRemote(mode)) {
      // Performance II, over the sockets: against the delivery floor, the catcher and the bare round trip.
      const deliveries = relay.throughput.perSecond / bare.throughput.perSecond;
      add("deliveries/s / delivery floor's", deliveries, "≥ 0.75", deliveries >= 0.75);
      const cpu = cpuTotal(relay.throughput.cpuUs.relay) / cpuTotal(bare.throughput.cpuUs.relay);
      add("relay CPU per delivery / delivery floor's", cpu, "≤ 1.5", cpu <= 1.5);
      for (const series of relay.latency) {
        const others = int(series.otherWaiting);
        const catcherRatio = series.latencyUs.p50 / catcher.latencyUs.p50;
        add(`latency p50 / in-process catcher's p50, ${others} other waiting`, catcherRatio, "< 1", catcherRatio < 1);
        const roundTrips = series.latencyUs.p50 / floor.roundTripUs.p50;
        add(`latency p50 / floor round-trip p50, ${others} other waiting`, roundTrips, "≤ 3", roundTrips <= 3);
      }
    }
    for (const point of relay.memory) {
      const perWaiter = point.bytesPerWaiter / 1024;
      add(`relay RSS per waiting client at ${int(point.waiting)} (KiB)`, perWaiter, "≤ 4", perWaiter <= 4);
    }
    if (mode === "redis") {
      const single = socketRelay(results)?.result;
      for (const series of relay.latency) {
        const base = single && latencyAt(single, series.otherWaiting);
        if (!base) continue;
        const value = series.latencyUs.p50 / base.latencyUs.p50;
        add(`latency p50 / single relay's, ${int(series.otherWaiting)} other waiting`, value, "≤ 1.5", value <= 1.5);
        add(
          `latency p99, ${int(series.otherWaiting)} other waiting (µs, target for Redis)`,
          series.latencyUs.p99,
          "< 2000",
          series.latencyUs.p99 < 2000,
        );
      }
    }
    if (isRemote(mode)) {
      const socket = socketRelay(results)?.mode;
      const ratios = remoteRatios(results, relay);
      for (const { others, value } of ratios.latency) {
        add(`latency p50 / ${socket} relay's, ${int(others)} other waiting`, value, "≤ 1.3", value <= 1.3);
      }
      for (const { waiting, value } of ratios.memory) {
        add(`RSS per waiter / ${socket} relay's, ${int(waiting)} waiting`, value, "≤ 2", value <= 2);
      }
    }
  }
  return targets;
}

/** The results as a Markdown table: the HTTP floor, then per mode the delivery floor and the relay. */
type CatcherResult = Awaited<ReturnType<typeof measureCatcher>>;

function table(floor: FloorResult, catcher: CatcherResult, results: ModeResults): string {
  const columns = (Object.entries(results) as Array<[Mode, NonNullable<ModeResults[Mode]>]>).flatMap((
    [mode, kinds],
  ) =>
    (["bare", "design", "relay"] as const).flatMap((kind) => {
      const result = kinds[kind];
      return result ? [{ mode, kind, result }] : [];
    })
  );
  const modeName = (mode: Mode) =>
    ({
      unix: "Unix socket",
      tcp: "TCP",
      http: "remote HTTP",
      https: "remote HTTPS",
      redis: "Redis, callback at A → waiter at B",
    } as const)[mode];
  const header = [
    "Measure",
    "HTTP floor",
    ...columns.map(({ mode, kind }) =>
      `${
        { bare: "Delivery floor", design: "Delivery floor + the relay's HTTP engine and page", relay: "Relay" }[kind]
      }, ${modeName(mode)}`
    ),
  ];
  const rows: string[][] = [];
  /** A row; `cell` gets each column and whether it is the relay (which the targets apply to). */
  const row = (
    label: string,
    floorCell: string,
    cell: (result: RelayResult, isRelay: boolean, mode: Mode) => string,
  ) => rows.push([label, floorCell, ...columns.map(({ kind, result, mode }) => cell(result, kind === "relay", mode))]);
  const withMark = (text: string, isRelay: boolean, met: boolean) => (isRelay ? `${text} ${mark(met)}` : text);
  const hasRemote = columns.some(({ mode }) => isRemote(mode));
  const socket = socketRelay(results);

  row(
    `Requests/s (floor) · deliveries/s, concurrency ${CONCURRENCY}`,
    int(floor.throughput.perSecond),
    (result) => int(result.throughput.perSecond),
  );
  row("↳ ÷ HTTP floor requests/s (target ≥ 0.50)", "", (result, isRelay) => {
    const share = result.throughput.perSecond / floor.throughput.perSecond;
    return withMark(ratio(share), isRelay, share >= 0.5);
  });
  row("↳ ÷ its delivery floor's deliveries/s (target ≥ 0.75 over the sockets)", "", (result, isRelay, mode) => {
    const bare = results[mode]?.bare;
    if (!bare || result === bare) return "";
    const value = result.throughput.perSecond / bare.throughput.perSecond;
    return withMark(ratio(value), isRelay && !isRemote(mode), value >= 0.75);
  });
  if (hasRemote && socket) {
    row(`↳ ÷ relay's over the ${modeName(socket.mode)}`, "", (result, _isRelay, mode) => {
      return isRemote(mode) ? ratio(result.throughput.perSecond / socket.result.throughput.perSecond) : "";
    });
  }
  row("Round trip p50 / p99 / max, single requests", triple(floor.roundTripUs), () => "");
  row("In-process catcher: callback sent → resolved p50 / p99 / max", triple(catcher.latencyUs), () => "");
  const levels = [...new Set(columns.flatMap(({ result }) => result.latency.map((series) => series.otherWaiting)))]
    .sort((a, b) => a - b);
  levels.forEach((others) => {
    row(`Latency callback → resolved p50 / p99 / max, ${int(others)} other waiting`, "", (result, isRelay) => {
      const summary = latencyAt(result, others)?.latencyUs;
      return summary ? withMark(triple(summary), isRelay, summary.p99 < 1000) : "";
    });
    row("↳ p50 ÷ HTTP floor round-trip p50 (target ≤ 1.20)", "", (result, isRelay) => {
      const series = latencyAt(result, others);
      if (!series) return "";
      const value = series.latencyUs.p50 / floor.roundTripUs.p50;
      return withMark(ratio(value), isRelay, value <= 1.2);
    });
    row("↳ p50 ÷ HTTP floor round-trip p50 (target ≤ 3 over the sockets)", "", (result, isRelay, mode) => {
      const series = latencyAt(result, others);
      if (!series) return "";
      const value = series.latencyUs.p50 / floor.roundTripUs.p50;
      return withMark(ratio(value), isRelay && !isRemote(mode), value <= 3);
    });
    row("↳ p50 ÷ in-process catcher's p50 (target < 1 over the sockets)", "", (result, isRelay, mode) => {
      const series = latencyAt(result, others);
      if (!series) return "";
      const value = series.latencyUs.p50 / catcher.latencyUs.p50;
      return withMark(ratio(value), isRelay && !isRemote(mode), value < 1);
    });
    row("↳ relay p50 ÷ its delivery floor's p50", "", (result, isRelay, mode) => {
      const base = results[mode]?.bare;
      const series = latencyAt(result, others);
      const floorSeries = base && latencyAt(base, others);
      return isRelay && series && floorSeries ? ratio(series.latencyUs.p50 / floorSeries.latencyUs.p50) : "";
    });
    if (results.redis && socket) {
      row(
        `↳ p50 ÷ the single relay's p50 (${modeName(socket.mode)}; target ≤ 1.5 for Redis)`,
        "",
        (result, _r, mode) => {
          if (mode !== "redis") return "";
          const series = latencyAt(result, others);
          const base = latencyAt(socket.result, others);
          if (!series || !base) return "";
          const value = series.latencyUs.p50 / base.latencyUs.p50;
          return `${ratio(value)} ${mark(value <= 1.5)}`;
        },
      );
    }
    if (hasRemote && socket) {
      row(`↳ p50 ÷ socket p50 (${modeName(socket.mode)}; target ≤ 1.3 for the relay)`, "", (result, isRelay, mode) => {
        if (!isRemote(mode)) return "";
        // The delivery floors too: a remote floor's p50 ÷ the socket floor's is what the runtime costs.
        const base = isRelay ? socket.result : results[socket.mode]?.bare;
        const series = latencyAt(result, others);
        const baseSeries = base && latencyAt(base, others);
        if (!series || !baseSeries) return "";
        const value = series.latencyUs.p50 / baseSeries.latencyUs.p50;
        return isRelay ? `${ratio(value)} ${mark(value <= 1.3)}` : ratio(value);
      });
    }
  });
  if (levels.length > 1) {
    row(
      `↳ p50 at ${int(levels[levels.length - 1])} ÷ p50 at ${int(levels[0])} (target ≤ 1.10)`,
      "",
      (result, isRelay) => {
        const first = latencyAt(result, levels[0]);
        const last = latencyAt(result, levels[levels.length - 1]);
        if (!first || !last) return "";
        const value = last.latencyUs.p50 / first.latencyUs.p50;
        return withMark(ratio(value), isRelay, value <= 1.1);
      },
    );
  }
  row("HTTP round trip of a delivering callback, p50 / p99", "", (result) => {
    const summary = result.latency[0].httpRoundTripUs;
    return `${us(summary.p50)} / ${us(summary.p99)}`;
  });
  const memoryLevels = [...new Set(columns.flatMap(({ result }) => result.memory.map((point) => point.waiting)))]
    .sort((a, b) => a - b);
  memoryLevels.forEach((waiting) => {
    row(`RSS growth per waiting client, ${int(waiting)} waiting (target ≤ 4 KiB)`, "", (result, isRelay) => {
      const point = memoryAt(result, waiting);
      return point ? withMark(kib(point.bytesPerWaiter), isRelay, point.bytesPerWaiter <= 4096) : "";
    });
    if (hasRemote && socket) {
      row(`↳ RSS per waiter ÷ socket's (${modeName(socket.mode)}; target ≤ 2)`, "", (result, _isRelay, mode) => {
        if (!isRemote(mode)) return "";
        const value = remoteRatios(results, result).memory.find((ratio) => ratio.waiting === waiting)?.value;
        return value === undefined ? "" : `${ratio(value)} ${mark(value <= 2)}`;
      });
    }
  });
  row(
    "CPU per request · delivery, µs: server / waiters / load generator",
    cpuCell([floor.throughput.cpuUs.server, undefined, floor.throughput.cpuUs.loadgen]),
    ({ throughput: { cpuUs } }) => cpuCell([cpuUs.relay, cpuUs.waiters, cpuUs.loadgen]),
  );
  row("↳ server CPU ÷ its delivery floor's (target ≤ 1.5 over the sockets)", "", (result, isRelay, mode) => {
    const bare = results[mode]?.bare;
    if (!bare || result === bare) return "";
    const value = cpuTotal(result.throughput.cpuUs.relay) / cpuTotal(bare.throughput.cpuUs.relay);
    return withMark(ratio(value), isRelay && !isRemote(mode), value <= 1.5);
  });
  row("↳ server CPU ÷ the floor's with the relay's engine and page", "", (result, isRelay, mode) => {
    const design = results[mode]?.design;
    return isRelay && design
      ? ratio(cpuTotal(result.throughput.cpuUs.relay) / cpuTotal(design.throughput.cpuUs.relay))
      : "";
  });
  row(
    "↳ of which in the kernel",
    kernelCell([floor.throughput.cpuUs.server, undefined, floor.throughput.cpuUs.loadgen]),
    ({ throughput: { cpuUs } }) => kernelCell([cpuUs.relay, cpuUs.waiters, cpuUs.loadgen]),
  );

  const width = (cell: string) => [...cell].length;
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((cells) => width(cells[column]))));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, i) => cell + " ".repeat(widths[i] - width(cell))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => "-".repeat(w + 1) + (i === 0 ? "-" : ":")).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------- main

const dir = await Deno.makeTempDir({ prefix: "oauth-relay-bench-" });
let exitCode = 0;
try {
  if (options.profile) await Deno.mkdir(options.profile, { recursive: true });
  const about = await machine();
  const maxWaiting = fitToDescriptors(about.descriptorLimit);
  if (options.modes.includes("https")) tlsFiles = await makeTlsFiles(dir);

  const calibration: Record<string, FloorResult> = {};
  for (const [name, sender] of Object.entries(senders)) {
    progress(`floor: throughput and round trip, sent from ${name}`);
    calibration[name] = await measureFloor(sender);
  }
  const [senderName, floor] = Object.entries(calibration)
    .sort(([, a], [, b]) => a.roundTripUs.p50 - b.roundTripUs.p50)[0];
  loadgen = senders[senderName];
  for (const sender of Object.values(senders)) if (sender !== loadgen) await stop(sender);
  progress("in-process catcher: latency");
  const catcher = await measureCatcher();
  const results: ModeResults = {};
  for (const mode of options.modes) {
    // The Redis column has no delivery floor of its own: it is held against the single relay's figures.
    results[mode] = mode === "redis" ? { relay: await measureRelay(mode, "relay", dir, maxWaiting) } : {
      bare: await measureRelay(mode, "bare", dir, maxWaiting),
      // Over the Unix socket, the floor with the relay's engine and page too: what the relay's own code costs.
      ...(mode === "unix" ? { design: await measureRelay(mode, "design", dir, maxWaiting) } : {}),
      relay: await measureRelay(mode, "relay", dir, maxWaiting),
    };
  }
  const targets = targetsOf(floor, catcher, results);
  const seconds = (performance.now() - started) / 1000;
  const command = `deno task bench${Deno.args.length ? " " + Deno.args.join(" ") : ""}`;
  const report = table(floor, catcher, results);

  console.log(
    `\noauth-relay benchmark, ${options.smoke ? "smoke run" : "full run"}: ${new Date().toISOString()}, ${
      seconds.toFixed(1)
    } s`,
  );
  console.log(
    `${about.cpu}, ${about.cores} cores, ${about.memoryGiB} GiB, ${about.os}, Deno ${about.deno}, ` +
      `descriptor limit ${about.descriptorLimit}, load average at start ${
        about.loadAverageAtStart.map(ratio).join(" ")
      }`,
  );
  console.log(`Command: ${command}`);
  console.log(
    `Sender: ${senderName} (bare round trip p50 ${
      Object.entries(calibration).map(([name, result]) => `${name} ${us(result.roundTripUs.p50)}`).join(", ")
    }; the faster one sends every request)\n`,
  );
  console.log(report);
  console.log(`\nTargets: ${targets.filter((target) => target.met).length} of ${targets.length} met`);
  for (const target of targets.filter((target) => !target.met)) {
    console.log(`  ✗ ${target.mode}: ${target.name} = ${ratio(target.value)}, target ${target.limit}`);
  }

  await Deno.writeTextFile(
    options.out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        command,
        smoke: options.smoke,
        seconds,
        machine: about,
        plan,
        concurrency: CONCURRENCY,
        sender: senderName,
        senders: calibration,
        floor,
        catcher,
        modes: results,
        targets,
        table: report,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nWrote ${options.out}`);
} catch (error) {
  console.error(`bench: ${error instanceof Error ? error.stack ?? error.message : error}`);
  exitCode = 1;
} finally {
  if (!exitCode) await stop(loadgen);
  for (const child of children) child.kill();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
Deno.exit(exitCode);
