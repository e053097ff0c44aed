/**
 * A real nginx (Debian's `nginx` package) as a reverse proxy in front of test
 * servers: round robin over the given upstreams, unbuffered so Server-Sent
 * Events pass as they are written, and TLS termination with certificates from
 * ./tls.ts. Each call runs its own nginx on a free loopback port with every
 * file it writes (config, pid, logs, temp paths) in a fresh temp directory;
 * `await using` stops it and removes the directory.
 *
 * ```ts ignore
 * await using certs = await makeCertificates();
 * await using proxy = await startNginx({ upstreams: ["127.0.0.1:8080"], tls: certs });
 * using client = httpClientTrusting(certs.caCert);
 * await fetch(`${proxy.url}/health`, { client });
 * ```
 *
 * @module
 */

import { findExecutable } from "./tls.ts";

/** Where nginx is (Debian: /usr/sbin/nginx), or null when it is not installed. */
export const NGINX_PATH: string | null = await findExecutable("nginx");

/** Whether nginx is installed (CI installs it: Debian package `nginx`). */
export const NGINX_AVAILABLE: boolean = NGINX_PATH !== null;

/**
 * Whether a test that needs nginx should be ignored: only outside CI, when
 * nginx is missing (it then says so once on stderr). In CI (`CI` set) a
 * missing nginx is not skipped but fails, with {@linkcode startNginx}'s error.
 */
export function ignoreWithoutNginx(what = "the nginx tests"): boolean {
  const ignore = !Deno.env.get("CI") && !NGINX_AVAILABLE;
  if (ignore && !warned.has(what)) {
    warned.add(what);
    console.warn(`Skipping ${what}: nginx is not installed (apt-get install nginx)`);
  }
  return ignore;
}
const warned = new Set<string>();

/** What {@linkcode startNginx} proxies to and how. */
export interface NginxOptions {
  /** Upstream servers as `host:port` (e.g. `"127.0.0.1:8080"`), used in round robin. */
  upstreams: string[];
  /** Terminate TLS with this certificate chain and key (PEM files); else plain HTTP. */
  tls?: { certFile: string; keyFile: string };
  /** Directives added inside the `http { }` block, after the proxy's `server { }`. */
  extraHttpConfig?: string;
  /**
   * `proxy_read_timeout` and `proxy_send_timeout` of the proxy's location, in
   * nginx's syntax (e.g. `"2s"`): how long a proxied stream may stay silent
   * before nginx closes it. Default `"3600s"`.
   */
  readTimeout?: string;
}

/** A running nginx; `await using` stops it (SIGTERM, then waits for its exit) and removes its directory. */
export interface Nginx extends AsyncDisposable {
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  port: number;
  /** Its private temp directory: nginx.conf, nginx.pid, error.log, access.log, temp paths. */
  dir: string;
  /** The generated nginx.conf, as written. */
  config: string;
  /** Resolves when nginx exits, with its status (only expected after dispose). */
  exited: Promise<Deno.CommandStatus>;
  /** The error log so far (level `info` and above). */
  errorLog(): Promise<string>;
  /**
   * The access log so far, one line per request:
   * `$remote_addr "$request" $status upstream=$upstream_addr upstream_status=$upstream_status`.
   */
  accessLog(): Promise<string>;
}

/** How long nginx may take to start, or to stop after SIGTERM, before the helper gives up on it. */
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
/** Fresh ports to try when another process took the free port before nginx bound it. */
const PORT_ATTEMPTS = 5;

/** A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Starts nginx as a reverse proxy to `upstreams` on a free port of 127.0.0.1
 * and resolves once it listens (its pid file, written after its sockets are
 * bound, appears). Throws with nginx's error log when it does not start, and
 * a clear message when nginx is not installed.
 */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  if (NGINX_PATH === null) {
    throw new Error(
      "nginx is not installed (apt-get install nginx; Debian puts it in /usr/sbin): tests/support/nginx.ts needs it",
    );
  }
  if (options.upstreams.length === 0) throw new Error("startNginx: no upstreams");
  for (const upstream of options.upstreams) {
    if (!/^[\w.\-\[\]:]+:\d+$/.test(upstream)) throw new Error(`startNginx: upstream ${upstream} is not host:port`);
  }
  if (options.readTimeout !== undefined && !/^\d+(ms|s|m|h)?$/.test(options.readTimeout)) {
    throw new Error(`startNginx: readTimeout ${options.readTimeout} is not an nginx time (e.g. "2s")`);
  }
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "oauth-relay-nginx-" });
  try {
    for (let attempt = 1;; attempt++) {
      const port = freePort();
      const config = nginxConfig(dir, port, options, await builtWithout());
      await Deno.writeTextFile(`${dir}/nginx.conf`, config);
      const started = await launch(NGINX_PATH, dir, port, config);
      if (started.ok) return started.nginx;
      if (!/Address already in use/.test(started.log) || attempt === PORT_ATTEMPTS) {
        throw new Error(`nginx did not start (${started.why}):\n${started.log.trim()}\n--- nginx.conf ---\n${config}`);
      }
      await Promise.all(
        ["error.log", "access.log", "nginx.pid"].map((f) => Deno.remove(`${dir}/${f}`).catch(() => {})),
      );
    }
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

type Launch = { ok: true; nginx: Nginx } | { ok: false; why: string; log: string };

/** Runs nginx on `dir/nginx.conf` and waits for its pid file, its exit, or the start timeout. */
async function launch(binary: string, dir: string, port: number, config: string): Promise<Launch> {
  const pidFile = `${dir}/nginx.pid`;
  const errorLogFile = `${dir}/error.log`;
  // Watch before starting, so the pid file cannot appear unseen.
  const watcher = Deno.watchFs(dir, { recursive: false });
  const child = new Deno.Command(binary, {
    // -e: the error log before nginx.conf is read; -p: its prefix, so nothing resolves under /usr/share/nginx.
    args: ["-p", `${dir}/`, "-c", `${dir}/nginx.conf`, "-e", errorLogFile],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
    .then(([stdout, stderr]) => stdout + stderr);
  const exited = child.status;
  const readLog = () => Deno.readTextFile(errorLogFile).catch(() => "");

  const listening = (async () => {
    if (await exists(pidFile)) return true;
    for await (const event of watcher) {
      if (event.paths.some((path) => path.endsWith("/nginx.pid")) && await exists(pidFile)) return true;
    }
    return false; // watcher closed
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    listening.then((ok) => ok ? "listening" as const : "watcher closed" as const),
    exited.then((status) => `exited with ${status.code}` as const),
    new Promise<"timed out">((resolve) => timer = setTimeout(() => resolve("timed out"), START_TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
  watcher.close();
  await listening;

  const stop = async () => {
    try {
      child.kill("SIGTERM"); // fast shutdown: open streams (SSE) are closed, not waited for
    } catch { /* already exited */ }
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const stopped = await Promise.race([
      exited.then(() => true),
      new Promise<false>((resolve) => killTimer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS)),
    ]);
    clearTimeout(killTimer);
    if (!stopped) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await exited;
    return await output;
  };

  if (outcome !== "listening") {
    const stderr = await stop();
    return { ok: false, why: outcome, log: `${await readLog()}${stderr}` };
  }
  const scheme = /\bssl;/.test(config) ? "https" : "http";
  let disposed: Promise<void> | undefined;
  return {
    ok: true,
    nginx: {
      url: `${scheme}://127.0.0.1:${port}`,
      port,
      dir,
      config,
      exited,
      errorLog: readLog,
      accessLog: () => Deno.readTextFile(`${dir}/access.log`).catch(() => ""),
      [Symbol.asyncDispose]() {
        disposed ??= (async () => {
          await stop();
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        })();
        return disposed;
      },
    },
  };
}

/** Modules this nginx was built without (from `nginx -V`), whose temp path directives it would reject. */
let without: Promise<Set<string>> | undefined;
function builtWithout(): Promise<Set<string>> {
  without ??= new Deno.Command(NGINX_PATH!, { args: ["-V"], stdin: "null", stdout: "piped", stderr: "piped" })
    .output()
    .then(({ stdout, stderr }) => {
      const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
      return new Set([...text.matchAll(/--without-http_(\w+)_module/g)].map((match) => match[1]));
    });
  return without;
}

/** The whole nginx.conf: one process in the foreground, all paths in `dir`. */
function nginxConfig(dir: string, port: number, options: NginxOptions, without: Set<string>): string {
  const tempPaths = [
    `client_body_temp_path ${dir}/client_body_temp;`,
    `proxy_temp_path ${dir}/proxy_temp;`,
    ...["fastcgi", "uwsgi", "scgi"].filter((module) => !without.has(module))
      .map((module) => `${module}_temp_path ${dir}/${module}_temp;`),
  ];
  const tls = options.tls
    ? [
      `listen 127.0.0.1:${port} ssl;`,
      `ssl_certificate ${options.tls.certFile};`,
      `ssl_certificate_key ${options.tls.keyFile};`,
    ]
    : [`listen 127.0.0.1:${port};`];
  const indent = (lines: string[], depth: number) => lines.map((line) => `${"    ".repeat(depth)}${line}`).join("\n");
  return `# Written by tests/support/nginx.ts for one test.
# One process, in the foreground: SIGTERM ends it with nothing left behind.
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
# Each proxied event stream holds two connections (client and upstream): room for a few thousand waiters.
worker_rlimit_nofile 16384;

events {
    worker_connections 8192;
}

http {
${indent(tempPaths, 1)}
    log_format relay '$remote_addr "$request" $status upstream=$upstream_addr upstream_status=$upstream_status';
    access_log ${dir}/access.log relay;
    default_type application/octet-stream;

    upstream relay_upstreams {
${indent(options.upstreams.map((upstream) => `server ${upstream};`), 2)}
        keepalive 16;
    }

    server {
${indent(tls, 2)}
        server_name localhost;

        location / {
            proxy_pass http://relay_upstreams;
            proxy_next_upstream error timeout;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Server-Sent Events: pass each write on at once and keep idle streams open.
            proxy_buffering off;
            proxy_read_timeout ${options.readTimeout ?? "3600s"};
            proxy_send_timeout ${options.readTimeout ?? "3600s"};
        }
    }
${options.extraHttpConfig ? `\n${indent(options.extraHttpConfig.trim().split("\n"), 1)}\n` : ""}}
`;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
