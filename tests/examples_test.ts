/**
 * The scripts in examples/ run against a real relay and get what
 * docs/protocol.md says. They need bash and curl, openssl for the token
 * handshake, and for the Unix socket socat or OpenBSD netcat (`nc -U`); CI
 * installs socat. Each script is run with every one of the two that is
 * installed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { body, startTestRelay, wait } from "./helpers.ts";

const EXAMPLES = new URL("../examples/", import.meta.url).pathname;

async function succeeds(script: string): Promise<boolean> {
  const command = new Deno.Command("bash", { args: ["-c", script], stdin: "null", stdout: "null", stderr: "null" });
  return await command.output().then((output) => output.success, () => false);
}

const HAS_CURL = await succeeds("command -v curl");
const HAS_OPENSSL = await succeeds("command -v openssl");
const CONNECTORS: string[] = [];
if (await succeeds("command -v socat")) CONNECTORS.push("socat");
// Only OpenBSD netcat has -U; the traditional one rejects it.
if (await succeeds("command -v nc && nc -h 2>&1 | grep -q -- '-U'")) CONNECTORS.push("nc");

// CI installs socat and must run these. Elsewhere, a machine without the tools skips them with a notice.
const SKIP = !Deno.env.get("CI") && (!HAS_CURL || CONNECTORS.length === 0);
if (SKIP) {
  console.warn("Skipping the examples/ scripts: they need curl and socat (apt-get install curl socat)");
}
const SKIP_TOKEN = SKIP || (!Deno.env.get("CI") && !HAS_OPENSSL);
if (!SKIP && SKIP_TOKEN) console.warn("Skipping examples/register_tcp_token.sh: it needs openssl");
// Under CI a missing tool fails the tests below instead of hiding them.
if (CONNECTORS.length === 0) CONNECTORS.push("socat");

interface ScriptRun {
  code: number;
  /** What the relay sent: stdout, one JSON object per line. */
  lines: Array<Record<string, unknown>>;
  /** The narration and any error. */
  stderr: string;
}

/** Runs `examples/<script>` with bash, with only `env` (and PATH) in its environment. */
async function run(script: string, env: Record<string, string>): Promise<ScriptRun> {
  const output = await new Deno.Command("bash", {
    args: [`${EXAMPLES}${script}`],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const stdout = decoder.decode(output.stdout);
  const stderr = decoder.decode(output.stderr);
  const lines = stdout.split("\n").filter(Boolean).map((line) => {
    try {
      return JSON.parse(line);
    } catch {
      assert.fail(`${script} printed a line that is not JSON: ${line}\n${stderr}`);
    }
  });
  return { code: output.code, lines, stderr };
}

/** The `type`, or for an error its `code`, of each line: a transcript at a glance. */
function kinds(lines: Array<Record<string, unknown>>): unknown[] {
  return lines.map((line) => line.type === "error" ? `error ${line.code}` : line.type);
}

for (const tool of CONNECTORS) {
  Deno.test({
    name: `register_unix.sh (${tool}) gets the code once the callback arrives, then a 404 replay and state_used`,
    ignore: SKIP,
    async fn() {
      await using relay = await startTestRelay();
      const run1 = await run("register_unix.sh", {
        CONNECT_WITH: tool,
        OAUTH_SOCKET_PATH: relay.client.socketPath!,
        RELAY_URL: relay.url,
        STATE: "example-unix-1",
        CODE: "SplxlOBeZQQYbYS6WxSbIA",
      });
      assert.equal(run1.code, 0, run1.stderr);
      assert.deepEqual(kinds(run1.lines), ["registered", "callback", "error state_used"]);
      assert.deepEqual(run1.lines[0], { v: 2, type: "registered", state: "example-unix-1", timeout: 120 });
      for (const line of run1.lines) assert.equal(line.v, 2);
      assert.deepEqual(run1.lines[1].result, {
        success: true,
        code: "SplxlOBeZQQYbYS6WxSbIA",
        state: "example-unix-1",
        raw: { code: "SplxlOBeZQQYbYS6WxSbIA", state: "example-unix-1" },
      });
      assert.match(run1.stderr, /holds the registration for 120 s/);
      assert.match(run1.stderr, /→ HTTP 200\n[^]*→ HTTP 404\n/);
      await relay.logged(/Replayed callback for already delivered state 'example-unix-1'/);
      const health = await (await fetch(`${relay.url}/health`)).json();
      assert.equal(health.waiting, 0, "nobody is left waiting");
    },
  });

  Deno.test({
    name: `errors.sh (${tool}) gets one error line with the documented code for each bad first line`,
    ignore: SKIP,
    async fn() {
      await using relay = await startTestRelay();
      const bystander = wait(relay, { state: "bystander" });
      await bystander.registered;
      const { code, lines, stderr } = await run("errors.sh", {
        CONNECT_WITH: tool,
        OAUTH_SOCKET_PATH: relay.client.socketPath!,
      });
      assert.equal(code, 0, stderr);
      assert.deepEqual(kinds(lines), [
        "error protocol", // not JSON
        "error protocol", // not an object
        "error protocol", // unknown type
        "error unsupported_version", // v 1
        "error unsupported_version", // no v
        "error protocol", // a nonce that is not 32 bytes
        "error protocol", // empty state
        "error protocol", // timeout as a string
        "error idle", // silent for 3 s
        "registered",
        "error timeout",
      ]);
      for (const line of lines) assert.equal(line.v, 2);
      assert.equal(lines[3].message, "Unsupported protocol version 1: this side speaks v2");
      assert.equal(lines[9].timeout, 0.5, "registered says how long the relay holds the registration");
      // The relay kept serving the client that was already waiting.
      await body(await relay.callback({ code: "STILL_FINE", state: "bystander" }));
      assert.equal((await bystander.result).code, "STILL_FINE");
    },
  });
}

/**
 * A TCP proxy on loopback to `port` that records every byte clients send
 * through it: what went out on the wire, whatever the script prints.
 */
function tap(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const chunks: Uint8Array[] = [];
  const pipes: Promise<unknown>[] = [];
  const accepting = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
      const recorder = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          chunks.push(chunk.slice());
          controller.enqueue(chunk);
        },
      });
      pipes.push(
        Promise.all([
          client.readable.pipeThrough(recorder).pipeTo(upstream.writable).catch(() => {}),
          upstream.readable.pipeTo(client.writable).catch(() => {}),
        ]).finally(() => {
          for (const conn of [client, upstream]) {
            try {
              conn.close();
            } catch { /* already closed */ }
          }
        }),
      );
    }
  })();
  return {
    port: listener.addr.port,
    /** Everything clients sent, as text. */
    sent: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk]))),
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      await Promise.all(pipes);
    },
  };
}

Deno.test({
  name: "register_tcp_token.sh is refused without the token, and with it gets the code and the provider's iss",
  ignore: SKIP_TOKEN,
  async fn() {
    const token = "example-token-0123456789abcdef";
    await using relay = await startTestRelay({ mode: "tcp", settings: { token } });
    await using wire = tap(relay.client.tcpFallbackPort!);
    const { code, lines, stderr } = await run("register_tcp_token.sh", {
      OAUTH_TCP_HOST: "127.0.0.1",
      OAUTH_TCP_FALLBACK_PORT: String(wire.port),
      OAUTH_COORDINATOR_TOKEN: token,
      RELAY_URL: relay.url,
      STATE: "example-tcp-1",
      CODE: "tcp-code-123",
    });
    assert.equal(code, 0, stderr);
    assert.deepEqual(kinds(lines), [
      "error unauthorized", // no proof
      "challenge",
      "error unauthorized", // a proof under a guessed token
      "challenge",
      "registered",
      "callback",
    ]);
    for (const line of lines) assert.equal(line.v, 2);
    for (const challenge of [lines[1], lines[3]]) {
      assert.match(String(challenge.nonce), /^[A-Za-z0-9_-]{43}$/);
      assert.match(String(challenge.proof), /^[A-Za-z0-9_-]{43}$/);
    }
    assert.deepEqual(lines[4], { v: 2, type: "registered", state: "example-tcp-1", timeout: 120 });
    assert.deepEqual(lines[5].result, {
      success: true,
      code: "tcp-code-123",
      state: "example-tcp-1",
      raw: { code: "tcp-code-123", state: "example-tcp-1", iss: "https://provider.example" },
    });
    await relay.logged(/WARN - Refused coordinator client from 127\.0\.0\.1:\d+: no token/);
    await relay.logged(/WARN - Refused coordinator client from 127\.0\.0\.1:\d+: wrong token/);
    assert.match(stderr, /the relay's proof checks out/);
    assert.ok(!stderr.includes(token), "the script does not print the token");
    // What actually went out on the wire: two hellos, proofs, and never the token.
    const sent = wire.sent();
    assert.equal(sent.match(/"type":"hello","nonce":"[A-Za-z0-9_-]{43}"/g)?.length, 2, sent);
    assert.equal(sent.match(/"proof":"[A-Za-z0-9_-]{43}"/g)?.length, 2, sent);
    assert.ok(!sent.includes(token), "the token never crossed the wire");
    assert.ok(!sent.includes('"token"'), "no token field either");
  },
});

Deno.test({
  name: "an example exits 1 with a clear line when no relay listens",
  ignore: SKIP,
  async fn(t) {
    await using relay = await startTestRelay();
    await t.step("on the Unix socket", async () => {
      const { code, lines, stderr } = await run("register_unix.sh", {
        OAUTH_SOCKET_PATH: `${relay.dir}/nobody.sock`,
        RELAY_URL: relay.url,
      });
      assert.equal(code, 1);
      assert.deepEqual(lines, []);
      assert.match(stderr, /register_unix\.sh: no socket at .*nobody\.sock: is the relay running/);
    });
    await t.step("on TCP", async () => {
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = closed.addr.port;
      closed.close();
      const { code, lines, stderr } = await run("register_tcp_token.sh", {
        OAUTH_TCP_FALLBACK_PORT: String(port),
        OAUTH_COORDINATOR_TOKEN: "example-token-0123456789abcdef",
        RELAY_URL: relay.url,
      });
      assert.equal(code, 1);
      assert.deepEqual(lines, []);
      assert.match(stderr, new RegExp(`register_tcp_token\\.sh: cannot connect to 127\\.0\\.0\\.1:${port}`));
    });
    await t.step("without a token to present", async () => {
      const { code, stderr } = await run("register_tcp_token.sh", { RELAY_URL: relay.url });
      assert.equal(code, 1);
      assert.match(stderr, /set OAUTH_COORDINATOR_TOKEN/);
    });
  },
});

Deno.test("wait_curl.sh waits over HTTP with nothing but curl: registered, then the callback", async () => {
  const token = "example-client-token-0123456789abcdef";
  await using relay = await startTestRelay({ relay: { clientTokens: [token] } });
  const { code, lines, stderr } = await run("wait_curl.sh", {
    OAUTH_CLIENT_TOKEN: token,
    RELAY_URL: relay.url,
    STATE: "example-curl-1",
    CODE: "curl-code-123",
  });
  assert.equal(code, 0, stderr);
  assert.equal(lines.length, 2, stderr);
  assert.equal(lines[0].state, "example-curl-1");
  assert.match(String(lines[0].resume), /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(lines[1], {
    success: true,
    code: "curl-code-123",
    state: "example-curl-1",
    raw: { code: "curl-code-123", state: "example-curl-1" },
  });
});
