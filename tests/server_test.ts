import assert from "node:assert/strict";
import { startRelay } from "../src/relay/relay.ts";
import { waitForCode } from "../src/client/wait.ts";
import { ListenError } from "../src/relay/coordinator/listen.ts";
import { loadSettings } from "../src/client/settings.ts";
import { loadServerConfig } from "../src/relay/config.ts";
import { createLogger } from "../src/relay/log.ts";
import { body, startServer, startTestRelay, tempDir, wait } from "./helpers.ts";

Deno.test("the relay stops with one clear line naming the variable when a setting is bad", async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: "eighty" }, 'PORT must be a port number from 0 to 65535, got "eighty"'],
    [
      { OAUTH_TCP_FALLBACK_PORT: "70000" },
      'OAUTH_TCP_FALLBACK_PORT must be a port number from 0 to 65535, got "70000"',
    ],
    [
      { OAUTH_DEFAULT_TIMEOUT: "-3" },
      'OAUTH_DEFAULT_TIMEOUT must be a positive number of seconds, at most 2147483, got "-3"',
    ],
    [
      { OAUTH_SOCKET_PATH: "relay.sock" },
      'OAUTH_SOCKET_PATH must be an absolute path starting with "/", got "relay.sock"',
    ],
    [{ OAUTH_USE_TCP: "maybe" }, 'OAUTH_USE_TCP must be true or false (or 1/0, yes/no), got "maybe"'],
    [{ OAUTH_LOG_LEVEL: "loud" }, 'OAUTH_LOG_LEVEL must be one of debug, info, warn, error, silent, got "loud"'],
    [{ OAUTH_CODE_KEYS: " , " }, 'OAUTH_CODE_KEYS must list at least one parameter name, got " , "'],
  ];
  for (const [env, message] of cases) {
    await t.step(Object.keys(env)[0], async () => {
      await using server = startServer(env);
      const { code, stderr } = await server.exited;
      assert.equal(code, 1);
      assert.equal(stderr, `oauth-relay: ${message}\n`);
    });
  }
});

Deno.test("loadSettings() accepts the usual spellings of booleans", () => {
  for (const yes of ["true", "TRUE", "1", "yes", "Yes"]) {
    assert.equal(loadSettings({ OAUTH_USE_TCP: yes }).useTcp, true);
  }
  for (const no of ["false", "False", "0", "no", "NO"]) {
    assert.equal(loadSettings({ OAUTH_ENABLED: no }).enabled, false);
  }
  assert.equal(loadSettings({}).enabled, true);
  assert.equal(loadSettings({}, "windows").useTcp, true);
  assert.deepEqual(loadSettings({ OAUTH_CODE_KEYS: "Code, Auth_Code ,access_code" }).codeKeys, [
    "code",
    "auth_code",
    "access_code",
  ]);
});

Deno.test("deno task serve reads .env from the working directory, serves, and stops cleanly on SIGTERM", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const socket = `${dir}/env.sock`;
  await Deno.writeTextFile(`${dir}/.env`, `OAUTH_SOCKET_PATH=${socket}\nPORT=0\nOAUTH_CALLBACK_PATH=/cb\n`);
  await using server = startServer({}, dir);
  const url = await server.url;
  const health = await (await fetch(`${url}/health`)).json();
  assert.deepEqual(health.coordinator, { transport: "unix", path: socket });
  assert.equal((await Deno.lstat(socket)).mode! & 0o777, 0o600);
  const response = await fetch(`${url}/cb?code=x&state=nobody`);
  assert.equal(response.status, 404);
  await body(response);
  server.child.kill("SIGTERM");
  const { code, stderr } = await server.exited;
  assert.equal(code, 0, stderr);
  assert.match(stderr, /OAuth coordinator stopped/);
  await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound, "the socket file is removed on shutdown");
});

Deno.test("two signals in a row (as through deno task) stop the relay once, with one line", async () => {
  await using tmp = await tempDir();
  await using server = startServer({ OAUTH_SOCKET_PATH: `${tmp.path}/twice.sock`, PORT: "0" }, tmp.path);
  await server.url;
  server.child.kill("SIGTERM");
  server.child.kill("SIGINT");
  const { code, stderr } = await server.exited;
  assert.equal(code, 0, stderr);
  assert.equal(stderr.match(/Shutting down/g)?.length, 1, stderr);
});

Deno.test("OAUTH_MAX_HTTP_CONNECTIONS reaches the relay's HTTP cap", async () => {
  await using tmp = await tempDir();
  await using server = startServer({
    OAUTH_SOCKET_PATH: `${tmp.path}/cap.sock`,
    PORT: "0",
    OAUTH_MAX_HTTP_CONNECTIONS: "300",
  });
  await server.url;
  await server.logged(/File limit/);
  server.child.kill("SIGTERM");
  const { stderr } = await server.exited;
  assert.match(stderr, /up to 300 HTTP connections/);
});

Deno.test("deno task serve starts without a .env file", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  await using server = startServer({ OAUTH_SOCKET_PATH: `${dir}/r.sock`, PORT: "0" }, dir);
  await server.url;
  server.child.kill("SIGINT");
  const { code, stderr } = await server.exited;
  assert.equal(code, 0);
  assert.doesNotMatch(stderr, /Warning|error/i);
});

Deno.test("a stale socket left by a crashed relay is replaced at start", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const socket = `${dir}/stale.sock`;
  // A relay that crashes leaves its socket file behind: SIGKILL gives it no chance to clean up.
  await using crashed = startServer({ OAUTH_SOCKET_PATH: socket, PORT: "0" });
  await crashed.url;
  crashed.child.kill("SIGKILL");
  await crashed.exited;
  assert.ok((await Deno.lstat(socket)).isSocket, "the crashed relay left its socket");

  await using relay = await startTestRelay({ settings: { socketPath: socket } });
  const { result, registered } = wait(relay, { state: "after-crash" });
  await registered;
  await body(await relay.callback({ code: "C", state: "after-crash" }));
  assert.equal((await result).code, "C");
});

Deno.test("a live relay's socket is never taken over", async () => {
  await using live = await startTestRelay();
  const { result, registered } = wait(live, { state: "keep" });
  await registered;
  const settings = { ...loadSettings({}), socketPath: live.client.socketPath! };
  await assert.rejects(
    startRelay({ settings, port: 0, logger: createLogger("silent") }),
    (error: unknown) => {
      assert.ok(error instanceof ListenError);
      assert.equal(
        error.message,
        `Cannot listen at ${settings.socketPath}: another relay is running there; stop it or set OAUTH_SOCKET_PATH`,
      );
      return true;
    },
  );
  await body(await live.callback({ code: "STILL_MINE", state: "keep" }));
  assert.equal((await result).code, "STILL_MINE");
});

Deno.test("of relays started at the same instant on one socket path, exactly one wins", async () => {
  await using dir = await tempDir();
  for (let round = 0; round < 5; round++) {
    const settings = { ...loadSettings({}), socketPath: `${dir.path}/race-${round}.sock` };
    const starts = await Promise.allSettled(
      Array.from({ length: 4 }, () => startRelay({ settings, port: 0, logger: createLogger("silent") })),
    );
    const running = starts.flatMap((start) => start.status === "fulfilled" ? [start.value] : []);
    try {
      assert.equal(running.length, 1, `round ${round}: ${running.length} relays run on one path`);
      for (const start of starts) {
        if (start.status === "rejected") assert.match(String(start.reason), /another relay is running there/);
      }
      // The winner really owns the path: a client reaches it.
      const [winner] = running;
      const registered = Promise.withResolvers<void>();
      const result = waitForCode({
        state: `race-${round}`,
        settings: { socketPath: settings.socketPath, useTcp: false },
        onRegistered: () => registered.resolve(),
      });
      await registered.promise;
      await body(await fetch(`${winner.url}/oauth/callback?code=WON&state=race-${round}`));
      assert.equal((await result).code, "WON");
    } finally {
      await Promise.all(running.map((relay) => relay.shutdown()));
    }
  }
});

Deno.test("server.ts refuses with one line when another relay holds the socket", async () => {
  await using live = await startTestRelay();
  await using server = startServer({ OAUTH_SOCKET_PATH: live.client.socketPath!, PORT: "0" });
  const { code, stderr } = await server.exited;
  assert.equal(code, 1);
  assert.equal(
    stderr.trimEnd().split("\n").at(-1),
    `oauth-relay: Cannot listen at ${live.client.socketPath}: another relay is running there; stop it or set OAUTH_SOCKET_PATH`,
  );
  assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
});

Deno.test("a file that is not a socket is never replaced", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const path = `${dir}/important.txt`;
  await Deno.writeTextFile(path, "keep me");
  const settings = { ...loadSettings({}), socketPath: path };
  await assert.rejects(startRelay({ settings, port: 0, logger: createLogger("silent") }), /not a socket/);
  assert.equal(await Deno.readTextFile(path), "keep me");
});

Deno.test("a HOST that cannot be listened on stops the relay with one line naming HOST", async () => {
  await using tmp = await tempDir();
  await using server = startServer({
    OAUTH_SOCKET_PATH: `${tmp.path}/host.sock`,
    PORT: "0",
    HOST: "no-such-host.invalid",
  });
  const { code, stderr } = await server.exited;
  assert.equal(code, 1);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.match(
    stderr,
    /^oauth-relay: Cannot listen for HTTP at no-such-host\.invalid:0 \(HOST, PORT\): .*; check HOST\n$/,
  );
});

Deno.test("a relay whose HTTP port is taken fails before it touches the socket path", async () => {
  const dir = await Deno.makeTempDir();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const socket = `${dir}/stale.sock`;
    await using crashed = startServer({ OAUTH_SOCKET_PATH: socket, PORT: "0" });
    await crashed.url;
    crashed.child.kill("SIGKILL");
    await crashed.exited;
    const stale = await Deno.lstat(socket);
    await using second = startServer({ OAUTH_SOCKET_PATH: socket, PORT: String(taken.addr.port) });
    const { code, stderr } = await second.exited;
    assert.equal(code, 1);
    assert.match(stderr, /address is in use; stop the other server or set PORT/);
    assert.equal((await Deno.lstat(socket)).ino, stale.ino, "the socket file was left alone");
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadServerConfig() reads OAUTH_MAX_TIMEOUT and OAUTH_SINGLE_SLOT, with their defaults", () => {
  assert.deepEqual(
    [loadServerConfig({}).maxTimeout, loadServerConfig({}).singleSlot],
    [3600, true],
  );
  const config = loadServerConfig({ OAUTH_MAX_TIMEOUT: "60", OAUTH_SINGLE_SLOT: "false" });
  assert.deepEqual([config.maxTimeout, config.singleSlot], [60, false]);
  assert.throws(
    () => loadServerConfig({ OAUTH_MAX_TIMEOUT: "forever" }),
    /OAUTH_MAX_TIMEOUT must be a positive number/,
  );
});
