/**
 * The coordinator answers bad input with an error to that connection only,
 * bounds what strangers can hold, and lets in only who it should
 * (docs/security.md rules 10–14).
 */
import assert from "node:assert/strict";
import { ConfigError, loadSettings } from "../src/client/settings.ts";
import { waitForCode } from "../src/client/wait.ts";
import { OAuthConnectionError, OAuthRelayError } from "../src/client/errors.ts";
import { createLogger } from "../src/relay/log.ts";
import { startRelay } from "../src/relay/relay.ts";
import { body, startTestRelay, type TestRelay, wait } from "./helpers.ts";

/** Sends `bytes` on a raw coordinator connection and returns every line the relay sent before closing. */
async function raw(relay: TestRelay, bytes: Uint8Array | string): Promise<Array<Record<string, unknown>>> {
  const conn = relay.client.useTcp
    ? await Deno.connect({ hostname: "127.0.0.1", port: relay.client.tcpFallbackPort! })
    : await Deno.connect({ transport: "unix", path: relay.client.socketPath! });
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  // The relay may close mid-write once it has seen enough (an over-long line).
  await conn.write(data).catch(() => {});
  const text = await new Response(conn.readable).text().catch(() => "");
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

Deno.test("malformed coordinator input gets an error for that connection only; everyone else carries on", async (t) => {
  await using relay = await startTestRelay();
  const bystander = wait(relay, { state: "bystander" });
  await bystander.registered;
  const cases: Array<[name: string, bytes: Uint8Array | string, message: RegExp, code?: string]> = [
    ["a line that is not JSON", "hello\n", /not valid JSON/],
    ["JSON that is not an object", "[1,2]\n", /must be a JSON object/],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), /not valid UTF-8/],
    ["an unknown message type", '{"v":2,"type":"steal","state":"bystander"}\n', /Unknown message type "steal"/],
    [
      "a version 1 client",
      '{"v":1,"type":"register","state":"x"}\n',
      /Unsupported protocol version 1: this side speaks v2/,
      "unsupported_version",
    ],
    [
      "no protocol version",
      '{"type":"register","state":"x"}\n',
      /Unsupported protocol version null/,
      "unsupported_version",
    ],
    ["a state that is not a string", '{"v":2,"type":"register","state":42}\n', /"state" must be/],
    ["a negative timeout", '{"v":2,"type":"register","state":"x","timeout":-1}\n', /"timeout" must be/],
    ["a line longer than the limit", "x".repeat(20 * 1024), /Line longer than 16384 bytes/],
    [
      "bytes after the register message",
      '{"v":2,"type":"register","state":"chatty"}\n{"v":2,',
      /Nothing may follow the register message/,
    ],
    [
      "a second register on one connection",
      '{"v":2,"type":"register","state":"twice"}\n{"v":2,"type":"register","state":"bystander"}\n',
      /Already registered/,
    ],
  ];
  for (const [name, bytes, message, code = "protocol"] of cases) {
    await t.step(name, async () => {
      const lines = await raw(relay, bytes);
      const last = lines.at(-1)!;
      assert.equal(last.type, "error", JSON.stringify(lines));
      assert.equal(last.code, code);
      assert.match(String(last.message), message);
    });
  }
  assert.equal(await relay.relay.registry.count(), 1, "only the bystander waits");
  await body(await relay.callback({ code: "STILL_FINE", state: "bystander" }));
  assert.equal((await bystander.result).code, "STILL_FINE");
});

Deno.test("a connection that stays silent without registering is told and closed", async () => {
  await using relay = await startTestRelay({ relay: { registerTimeoutMs: 100 } });
  const lines = await raw(relay, "");
  assert.deepEqual(lines, [{
    v: 2,
    type: "error",
    code: "idle",
    message: "No registration received in time; send a register message first",
  }]);
});

Deno.test("more waiters than the limit: the new client is refused, the others unaffected", async () => {
  await using relay = await startTestRelay({ relay: { maxWaiters: 3 } });
  const waits = ["a", "b", "c"].map((state) => wait(relay, { state }));
  await Promise.all(waits.map((w) => w.registered));
  await assert.rejects(wait(relay, { state: "d" }).result, (error: unknown) => {
    assert.ok(error instanceof OAuthRelayError);
    assert.equal(error.code, "too_many_waiters");
    assert.match(error.message, /already holds 3 waiting clients/);
    return true;
  });
  // A single-slot client replacing the single slot does not count twice; here there is none, so it is refused too.
  await assert.rejects(wait(relay).result, { code: "too_many_waiters" });
  for (const state of ["a", "b", "c"]) await body(await relay.callback({ code: `code-${state}`, state }));
  assert.deepEqual((await Promise.all(waits.map((w) => w.result))).map((r) => r.code), ["code-a", "code-b", "code-c"]);
});

Deno.test("the Unix socket is owner-only by default and 0660 when asked", async () => {
  {
    await using relay = await startTestRelay();
    assert.equal((await Deno.lstat(relay.client.socketPath!)).mode! & 0o777, 0o600);
  }
  {
    await using relay = await startTestRelay({ relay: { socketMode: 0o660 } });
    assert.equal((await Deno.lstat(relay.client.socketPath!)).mode! & 0o777, 0o660);
  }
});

Deno.test("the socket never appears at its path with wider permissions", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/watched.sock`;
  const seen: number[] = [];
  const watcher = Deno.watchFs(dir);
  const watching = (async () => {
    for await (const event of watcher) {
      if (!event.paths.includes(path)) continue;
      const stat = await Deno.lstat(path).catch(() => undefined);
      if (stat) seen.push(stat.mode! & 0o777);
    }
  })();
  try {
    const settings = { ...loadSettings({}), socketPath: path };
    await using relay = await startRelay({ settings, port: 0, logger: createLogger("silent") });
    seen.push((await Deno.lstat(path)).mode! & 0o777);
    assert.ok(relay.coordinator);
  } finally {
    watcher.close();
    await watching;
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(seen.length > 0);
  assert.deepEqual([...new Set(seen)], [0o600]);
});

Deno.test("a coordinator beyond loopback refuses to start without a token", async () => {
  const settings = { ...loadSettings({}), useTcp: true, tcpHost: "0.0.0.0", tcpFallbackPort: 0 };
  await assert.rejects(startRelay({ settings, port: 0, logger: createLogger("silent") }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.variable, "OAUTH_TCP_HOST");
    assert.match(error.message, /set OAUTH_COORDINATOR_TOKEN/);
    return true;
  });
  assert.throws(() => loadSettings({ OAUTH_COORDINATOR_TOKEN: "short" }), /at least 16 characters/);
});

Deno.test("with a coordinator token, clients must present it; a missing or wrong one is refused and logged", async () => {
  const token = "a-long-shared-secret-0123456789";
  await using relay = await startTestRelay({
    mode: "tcp",
    settings: { tcpHost: "0.0.0.0", token },
  });
  const client = { ...relay.client, tcpHost: "127.0.0.1" };
  // No token: the relay refuses the registration.
  await assert.rejects(
    wait(relay, { state: "t", settings: { ...client, token: undefined } }).result,
    (error: unknown) => {
      assert.ok(error instanceof OAuthRelayError);
      assert.equal(error.code, "unauthorized");
      return true;
    },
  );
  await relay.logged(/WARN - Refused coordinator client from 127\.0\.0\.1:\d+: no token/);
  // A wrong token: the relay's proof does not check out for the client, which stops before registering.
  await assert.rejects(
    wait(relay, { state: "t", settings: { ...client, token: "a-long-shared-secret-0123456780" } }).result,
    (error: unknown) => {
      assert.ok(error instanceof OAuthConnectionError);
      assert.match(error.message, /or OAUTH_COORDINATOR_TOKEN differs from the relay's/);
      return true;
    },
  );
  // A wrong proof sent by hand: the relay refuses it.
  const forger = await Deno.connect({ hostname: "127.0.0.1", port: relay.client.tcpFallbackPort! });
  const nonce = "C".repeat(43);
  await forger.write(new TextEncoder().encode(`{"v":2,"type":"hello","nonce":"${nonce}"}\n`));
  const reader = forger.readable.pipeThrough(new TextDecoderStream()).getReader();
  let received = "";
  while (!received.includes("\n")) received += (await reader.read()).value ?? "";
  assert.equal(JSON.parse(received).type, "challenge");
  await forger.write(new TextEncoder().encode(`{"v":2,"type":"register","state":"t","proof":"${"D".repeat(43)}"}\n`));
  for (let next; !(next = await reader.read()).done;) received += next.value;
  assert.equal(JSON.parse(received.trim().split("\n").at(-1)!).code, "unauthorized");
  await relay.logged(/WARN - Refused coordinator client from 127\.0\.0\.1:\d+: wrong token/);
  assert.ok(!relay.logs.some((line) => line.includes("0123456780")), "tokens are never logged");
  assert.equal(await relay.relay.registry.count(), 0);

  // A refused client cannot slip a second register into the same packet.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.client.tcpFallbackPort! });
  await conn.write(new TextEncoder().encode(
    `{"v":2,"type":"register","state":"sneak"}\n{"v":2,"type":"register","state":"sneak","token":"${token}"}\n`,
  ));
  const replies = (await new Response(conn.readable).text()).trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(replies.map((reply) => reply.code ?? reply.type), ["unauthorized"]);
  assert.equal(await relay.relay.registry.count(), 0);

  const { result, registered } = wait(relay, { state: "t", settings: { ...client, token } });
  await registered;
  await body(await relay.callback({ code: "AUTHORIZED", state: "t" }));
  assert.equal((await result).code, "AUTHORIZED");
});

Deno.test("the token never crosses the wire: each side proves it over the other's nonce", async () => {
  const token = "a-long-shared-secret-0123456789";
  await using relay = await startTestRelay({ mode: "tcp", settings: { token } });
  // Listen in on what a real client sends: a relay-side proxy that records every byte.
  const seen: Uint8Array[] = [];
  const proxy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const relaying = (async () => {
    const client = await proxy.accept();
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port: relay.client.tcpFallbackPort! });
    const tap = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen.push(chunk.slice());
        controller.enqueue(chunk);
      },
    });
    await Promise.all([
      client.readable.pipeThrough(tap).pipeTo(upstream.writable).catch(() => {}),
      upstream.readable.pipeTo(client.writable).catch(() => {}),
    ]);
  })();
  try {
    const { result, registered } = wait(relay, {
      state: "tapped",
      settings: { tcpFallbackPort: proxy.addr.port, token },
    });
    await registered;
    await body(await relay.callback({ code: "TAPPED", state: "tapped" }));
    assert.equal((await result).code, "TAPPED");
  } finally {
    proxy.close();
    await relaying;
  }
  const sent = new TextDecoder().decode(new Uint8Array(seen.flatMap((chunk) => [...chunk])));
  assert.match(sent, /"type":"hello"/);
  assert.match(sent, /"proof":"[A-Za-z0-9_-]{43}"/);
  assert.ok(!sent.includes(token), "the token itself never crossed the wire");
});

Deno.test("a client with a token refuses a relay that cannot prove it, and never sends it its registration", async () => {
  const token = "a-long-shared-secret-0123456789";
  // Someone who took the port while the relay restarted, without the token: it answers with a challenge of its own.
  const impostor = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: string[] = [];
  const serving = (async () => {
    for (const proof of [undefined, "A".repeat(43)]) {
      const conn = await impostor.accept();
      const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
      const first = await reader.read();
      received.push(first.value ?? "");
      const challenge = { v: 2, type: "challenge", nonce: "B".repeat(43), ...(proof ? { proof } : {}) };
      await conn.write(new TextEncoder().encode(JSON.stringify(challenge) + "\n"));
      for (let next; !(next = await reader.read()).done;) received.push(next.value);
      reader.releaseLock();
    }
  })();
  try {
    for (const word of ["no proof", "wrong proof"]) {
      await assert.rejects(
        waitForCode({ state: "s", timeout: 5, settings: { useTcp: true, tcpFallbackPort: impostor.addr.port, token } }),
        (error: unknown) => {
          assert.ok(error instanceof OAuthConnectionError, String(error));
          assert.match(error.message, new RegExp(`did not prove it knows the coordinator token \\(${word}\\)`));
          return true;
        },
      );
    }
  } finally {
    impostor.close();
    await serving.catch(() => {});
  }
  assert.equal(received.length, 2, "only the two hellos arrived");
  assert.ok(received.every((line) => line.includes('"type":"hello"') && !line.includes("register")));
  assert.ok(!received.join("").includes(token));
});

Deno.test("silent connections cannot lock out a client: the oldest make room, and are told busy", async () => {
  const token = "a-long-shared-secret-0123456789";
  await using relay = await startTestRelay({
    mode: "tcp",
    settings: { token },
    relay: { maxWaiters: 20, maxPending: 16 },
  });
  // Far more silent connections than the relay holds for clients that have not registered.
  const silent: Deno.Conn[] = [];
  for (let i = 0; i < 200; i++) {
    silent.push(await Deno.connect({ hostname: "127.0.0.1", port: relay.client.tcpFallbackPort! }));
  }
  try {
    const { result, registered } = wait(relay, { state: "real", settings: { token } });
    await registered;
    await body(await relay.callback({ code: "STILL_SERVED", state: "real" }));
    assert.equal((await result).code, "STILL_SERVED");
    // The oldest silent connection was dropped with a reason it can act on.
    const first = JSON.parse((await new Response(silent[0].readable).text()).trim());
    assert.equal(first.code, "busy");
  } finally {
    for (const conn of silent) {
      try {
        conn.close();
      } catch { /* closed by the relay, or read to the end */ }
    }
  }
});

Deno.test("null means absent for every optional register field", async () => {
  await using relay = await startTestRelay();
  const conn = await Deno.connect({ transport: "unix", path: relay.client.socketPath! });
  await conn.write(new TextEncoder().encode('{"v":2,"type":"register","state":"n","timeout":null,"token":null}\n'));
  const reading = new Response(conn.readable).text();
  await relay.logged(/Client registered for state: 'n'/);
  await body(await relay.callback({ code: "C", state: "n" }));
  const lines = (await reading).trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(lines.map((line) => line.type), ["registered", "callback"]);
});

Deno.test("a state that was delivered cannot be registered again, so an old callback cannot be replayed to it", async () => {
  await using relay = await startTestRelay();
  const first = wait(relay, { state: "once" });
  await first.registered;
  await body(await relay.callback({ code: "C1", state: "once" }));
  await first.result;
  await assert.rejects(wait(relay, { state: "once" }).result, (error: unknown) => {
    assert.ok(error instanceof OAuthRelayError);
    assert.equal(error.code, "state_used");
    assert.match(error.message, /fresh random state/);
    return true;
  });
  const replay = await relay.callback({ code: "C1", state: "once" });
  assert.equal(replay.status, 404);
  await body(replay);
});

Deno.test("the client refuses a callback for another state, whatever answers on the socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/impostor.sock`;
  // Something that is not our relay answers at the socket path.
  const impostor = Deno.listen({ transport: "unix", path });
  const serving = (async () => {
    const conn = await impostor.accept();
    await conn.read(new Uint8Array(1024));
    await conn.write(new TextEncoder().encode(
      '{"v":2,"type":"registered","state":"mine"}\n' +
        '{"v":2,"type":"callback","result":{"success":true,"code":"EVIL","state":"other","raw":{}}}\n',
    ));
    await conn.readable.cancel().catch(() => {});
  })();
  try {
    await assert.rejects(
      waitForCode({ state: "mine", timeout: 5, settings: { socketPath: path, useTcp: false } }),
      (error: unknown) => {
        assert.ok(error instanceof OAuthRelayError);
        assert.equal(error.code, "protocol");
        assert.match(error.message, /Callback for another state/);
        return true;
      },
    );
  } finally {
    await serving;
    impostor.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client that stops reading cannot hold a callback: the write times out and the page says so", async () => {
  await using relay = await startTestRelay({
    relay: { limits: { maxBodyBytes: 256 * 1024 }, writeTimeoutMs: 200 },
  });
  const conn = await Deno.connect({ transport: "unix", path: relay.client.socketPath! });
  await conn.write(new TextEncoder().encode('{"v":2,"type":"register","state":"deaf"}\n'));
  await relay.logged(/Client registered for state: 'deaf'/);
  // About 1 MB once JSON-escaped: more than the socket buffers hold while nobody reads.
  const form = Array.from({ length: 30 }, (_, i) => `p${i}=${"%01".repeat(2700)}`).join("&");
  const response = await relay.callback("state=deaf&code=C", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form,
  });
  assert.equal(response.status, 404);
  await body(response);
  conn.close();
});

Deno.test("a client with a token refuses anything but a challenge before the relay's proof, even a callback", async () => {
  const token = "a-long-shared-secret-0123456789";
  const impostor = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await impostor.accept();
    await conn.read(new Uint8Array(1024)); // the hello
    const forged = { v: 2, type: "callback", result: { success: true, code: "ATTACKER", state: null, raw: {} } };
    await conn.write(new TextEncoder().encode(JSON.stringify(forged) + "\n"));
    await conn.readable.cancel().catch(() => {});
  })();
  try {
    // Single-slot mode: a forged stateless callback would otherwise match.
    await assert.rejects(
      waitForCode({ timeout: 5, settings: { useTcp: true, tcpFallbackPort: impostor.addr.port, token } }),
      (error: unknown) => {
        assert.ok(error instanceof OAuthConnectionError, String(error));
        assert.match(error.message, /answered "callback" before proving it knows the coordinator token/);
        return true;
      },
    );
  } finally {
    impostor.close();
    await serving.catch(() => {});
  }
});
