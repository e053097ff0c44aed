/**
 * A real redis-server (Debian's `redis-server` package) for one test: no
 * persistence (`--save "" --appendonly no`), every file in a fresh temp
 * directory, listening on a Unix socket there (or on a free loopback port).
 * The test can stop it, kill it, freeze it (SIGSTOP) and start it again on
 * the same address, empty, as a restart without persistence leaves it.
 * `await using` stops it and removes the directory.
 *
 * ```ts ignore
 * await using redis = await startRedis();
 * await using relay = await startTestRelay({ relay: { redis: { url: redis.url } } });
 * ```
 *
 * @module
 */

import { findExecutable } from "./tls.ts";
import { freePort } from "./nginx.ts";

/** Where redis-server is, or null when it is not installed. */
export const REDIS_PATH: string | null = await findExecutable("redis-server");

/**
 * Whether a test that needs Redis should be ignored: only outside CI, when
 * redis-server is missing (it then says so once on stderr). In CI (`CI` set)
 * a missing redis-server is not skipped but fails, with {@linkcode startRedis}'s error.
 */
export function ignoreWithoutRedis(what = "the Redis tests"): boolean {
  const ignore = !Deno.env.get("CI") && REDIS_PATH === null;
  if (ignore && !warned.has(what)) {
    warned.add(what);
    console.warn(`Skipping ${what}: redis-server is not installed (apt-get install redis-server)`);
  }
  return ignore;
}
const warned = new Set<string>();

/** A running redis-server. */
export interface RedisServer extends AsyncDisposable {
  /** `unix:///tmp/…/redis.sock` or `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /** The server's process id (changes with {@linkcode RedisServer.start}). */
  readonly pid: number;
  /** Whether the server process runs now. */
  readonly running: boolean;
  /** Stops it with SIGTERM and waits for its exit. */
  stop(): Promise<void>;
  /** Ends it with SIGKILL and waits for its exit. */
  kill(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open, nothing answers. */
  freeze(): void;
  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void;
  /** Starts it again on the same address, empty; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Runs one command over a fresh connection, as `redis-cli` would: the server's own view, for assertions. */
  command(...args: string[]): Promise<unknown>;
  /** One connection kept open for several commands (it holds one of the server's client slots). */
  session(): Promise<RedisSession>;
}

/** A connection to redis-server, closed with `using`. */
export interface RedisSession extends Disposable {
  /** Sends one command and reads its reply. */
  command(...args: string[]): Promise<unknown>;
  /** Sends commands in one write, so the server runs them one after the other with nothing between; their replies. */
  pipeline(...commands: string[][]): Promise<unknown[]>;
}

const START_TIMEOUT_MS = 10_000;

/** Starts redis-server on a Unix socket in a fresh temp directory (or a free loopback port with `tcp`). */
export async function startRedis(options: { tcp?: boolean } = {}): Promise<RedisServer> {
  if (REDIS_PATH === null) {
    throw new Error("redis-server is not installed (apt-get install redis-server): tests/support/redis.ts needs it");
  }
  const binary = REDIS_PATH;
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "oauth-relay-redis-" });
  const socket = `${dir}/redis.sock`;
  const port = options.tcp ? freePort() : 0;
  const url = options.tcp ? `redis://127.0.0.1:${port}` : `unix://${socket}`;
  const args = [
    "--port",
    String(port),
    ...(options.tcp ? ["--bind", "127.0.0.1"] : ["--unixsocket", socket, "--unixsocketperm", "700"]),
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    // Ten times the default: a SIGTERM is acted on within about 10 ms.
    "--hz",
    "100",
  ];
  let child: Deno.ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();
  let running = false;

  const start = async () => {
    const proc = new Deno.Command(binary, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
    child = proc;
    running = true;
    exited = proc.status.then(() => running = false);
    const errors = new Response(proc.stderr).text();
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`redis-server did not start within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([
        (async () => {
          // Its log says when it listens: no polling.
          while (!/ready to accept connections/i.test(text)) {
            const { value, done } = await reader.read();
            if (done) throw new Error(`redis-server exited: ${text}${await errors}`);
            text += value;
          }
        })(),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
    // Keep reading, so a full pipe never blocks the server.
    (async () => {
      while (!(await reader.read()).done) { /* drain */ }
    })().catch(() => {});
  };

  const signal = async (name: Deno.Signal) => {
    if (!running) return;
    try {
      child?.kill(name);
    } catch { /* exited */ }
    await exited;
  };

  const session = async (): Promise<RedisSession> => {
    const conn = options.tcp
      ? await Deno.connect({ hostname: "127.0.0.1", port })
      : await Deno.connect({ transport: "unix", path: socket });
    const reader = conn.readable.getReader();
    const writer = conn.writable.getWriter();
    return {
      async command(...command: string[]) {
        await writer.write(new TextEncoder().encode(encode(command)));
        return (await readReplies(reader, 1))[0];
      },
      async pipeline(...commands: string[][]) {
        await writer.write(new TextEncoder().encode(commands.map(encode).join("")));
        return await readReplies(reader, commands.length);
      },
      [Symbol.dispose]() {
        try {
          conn.close();
        } catch { /* closed */ }
      },
    };
  };

  await start();
  return {
    url,
    get pid() {
      return child!.pid;
    },
    get running() {
      return running;
    },
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    freeze() {
      child?.kill("SIGSTOP");
    },
    thaw() {
      child?.kill("SIGCONT");
    },
    start,
    async command(...command: string[]) {
      using connection = await session();
      return await connection.command(...command);
    },
    session,
    async [Symbol.asyncDispose]() {
      if (running) {
        try {
          child?.kill("SIGCONT");
        } catch { /* exited */ }
      }
      await signal("SIGTERM");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A command in RESP, as redis-cli sends it. */
function encode(args: string[]): string {
  return `*${args.length}\r\n` + args.map((arg) => `$${new TextEncoder().encode(arg).length}\r\n${arg}\r\n`).join("");
}

/** Reads `count` RESP2 replies: enough for the few commands the tests ask. */
async function readReplies(reader: ReadableStreamDefaultReader<Uint8Array>, count: number): Promise<unknown[]> {
  let buffer = new Uint8Array(0);
  let at = 0;
  const more = async () => {
    const { value, done } = await reader.read();
    if (done) throw new Error("Redis closed the connection");
    const joined = new Uint8Array(buffer.length + value.length);
    joined.set(buffer);
    joined.set(value, buffer.length);
    buffer = joined;
  };
  const line = async (): Promise<string> => {
    for (;;) {
      const end = buffer.indexOf(13, at);
      if (end !== -1 && buffer[end + 1] === 10) {
        const text = new TextDecoder().decode(buffer.subarray(at, end));
        at = end + 2;
        return text;
      }
      await more();
    }
  };
  const reply = async (): Promise<unknown> => {
    const head = await line();
    const rest = head.slice(1);
    switch (head[0]) {
      case "+":
        return rest;
      case "-":
        throw new Error(rest);
      case ":":
        return Number(rest);
      case "$": {
        const length = Number(rest);
        if (length < 0) return null;
        while (buffer.length < at + length + 2) await more();
        const text = new TextDecoder().decode(buffer.subarray(at, at + length));
        at += length + 2;
        return text;
      }
      case "*": {
        const count = Number(rest);
        if (count < 0) return null;
        const items: unknown[] = [];
        for (let i = 0; i < count; i++) items.push(await reply());
        return items;
      }
      default:
        throw new Error(`Unexpected reply from Redis: ${head}`);
    }
  };
  const replies: unknown[] = [];
  for (let i = 0; i < count; i++) replies.push(await reply());
  return replies;
}

/**
 * The load runs of "Several relays, one Redis" (a relay killed, Redis killed): remote waiters through the
 * balancer, socket waiters at each relay, identical callbacks per flow, and callbacks in flight at once.
 */
export const LOAD_RUN = { remoteFlows: 1_000, socketFlowsPerRelay: 100, duplicates: 20, parallelSends: 50 } as const;

/** The relays' environment for a load run, remote waiters with `token`. */
export function loadRunEnv(token: string): Record<string, string> {
  return {
    OAUTH_CLIENT_TOKENS: token,
    OAUTH_MAX_WAITERS_PER_TOKEN: String(LOAD_RUN.remoteFlows),
    // Every remote waiter holds a connection to one relay, plus the callbacks in flight.
    OAUTH_MAX_HTTP_CONNECTIONS: String(2 * LOAD_RUN.remoteFlows),
    // The relays size their caps to the file limit they read with `sh -c "ulimit -n"`: without a PATH
    // (startRelays starts them with an empty environment) they assume 1,024 and hold about 400 waiters each.
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
}

/** A load run's seed: `SEED` from the environment replays a failing order (the tests put it in their names). */
export const LOAD_SEED: number = Number(Deno.env.get("SEED") ?? Date.now() % 100_000);

/** A relay process (`server.ts`, started as `deno task serve` starts it) of a cluster on one Redis. */
export interface ClusterRelay {
  /** `A`, `B`, `C`…, for messages. */
  readonly name: string;
  /** Base URL of its HTTP side. */
  readonly url: string;
  /** Its coordinator socket. */
  readonly socketPath: string;
  /** Its process id. */
  readonly pid: number;
  /** Resolves once its log (stderr) has shown `pattern` `count` times. */
  logged(pattern: RegExp, count?: number): Promise<void>;
  /** GET /health: the status and the JSON. */
  health(): Promise<{ status: number; body: Record<string, unknown> & { waiting: number | null } }>;
  /** SIGKILL, and waits for its exit. */
  kill(): Promise<void>;
  /** Freezes it (SIGSTOP): its connections stay open, it does nothing. */
  freeze(): void;
  /** Lets a frozen relay go on (SIGCONT). */
  thaw(): void;
  /** Its whole log, once it has exited (after `kill` or the cluster's dispose). */
  readonly log: Promise<string>;
}

/** Relays on one Redis, stopped and cleaned up with `await using`. */
export interface Cluster extends AsyncDisposable {
  readonly relays: ClusterRelay[];
}

/**
 * Starts `count` relays as `deno task serve` runs them, each with its own
 * socket and HTTP port, all on the Redis at `redisUrl`.
 *
 * @param env Further variables for every relay (e.g. `OAUTH_CLIENT_TOKENS`).
 */
export async function startRelays(redisUrl: string, count: number, env: Record<string, string> = {}): Promise<Cluster> {
  const { startServer } = await import("../helpers.ts");
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "oauth-relay-cluster-" });
  const servers: Array<ReturnType<typeof startServer>> = [];
  const relays: ClusterRelay[] = [];
  const dispose = async () => {
    await Promise.all(servers.map(async (server) => await server[Symbol.asyncDispose]()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (let i = 0; i < count; i++) {
      const name = String.fromCharCode(65 + i);
      const socketPath = `${dir}/relay-${name}.sock`;
      const server = startServer({
        PORT: "0",
        OAUTH_SOCKET_PATH: socketPath,
        OAUTH_REDIS_URL: redisUrl,
        OAUTH_LOG_LEVEL: "info",
        ...env,
      });
      servers.push(server);
      const url = await server.url;
      relays.push({
        name,
        url,
        socketPath,
        pid: server.child.pid,
        logged: (pattern, times) => server.logged(pattern, times),
        async health() {
          const response = await fetch(`${url}/health`);
          return { status: response.status, body: await response.json() };
        },
        async kill() {
          try {
            server.child.kill("SIGKILL");
          } catch { /* exited */ }
          await server.exited;
        },
        freeze: () => server.child.kill("SIGSTOP"),
        thaw: () => server.child.kill("SIGCONT"),
        log: server.exited.then(({ stderr }) => stderr),
      });
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  return { relays, [Symbol.asyncDispose]: dispose };
}
