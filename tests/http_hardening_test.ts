/**
 * Bad input at the callback route gets a clear page, and breaks nothing for
 * anyone else (docs/security.md rules 1–6, 9, 10, 14).
 */
import assert from "node:assert/strict";
import { MemoryRegistry } from "../src/relay/registry/memory.ts";
import { body, startServer, startTestRelay, tempDir, wait } from "./helpers.ts";

/** docs/security.md rules 1–3: every response of the callback path carries these. */
function assertSecurityHeaders(response: Response): void {
  const csp = response.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/]+=*'/);
  assert.doesNotMatch(csp, /unsafe-inline|script-src/);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.equal(response.headers.get("referrer-policy"), "no-referrer");
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.equal(response.headers.get("location"), null, "rule 4: never redirect");
}

Deno.test("bad callbacks get a clear 4xx page with the security headers, and the waiter keeps waiting", async (t) => {
  await using relay = await startTestRelay({ relay: { limits: { maxBodyBytes: 1024 } } });
  const { result, registered } = wait(relay, { state: "victim" });
  await registered;
  const url = `${relay.url}/oauth/callback`;
  const form = { "content-type": "application/x-www-form-urlencoded" };
  const cases: Array<[name: string, request: () => Promise<Response>, status: number, problem: RegExp]> = [
    [
      "a body over the limit with Content-Length",
      () => fetch(url, { method: "POST", headers: form, body: `code=X&state=victim&pad=${"a".repeat(2000)}` }),
      413,
      /larger than 1024 bytes/,
    ],
    [
      "malformed JSON",
      () =>
        fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: '{"code":"X","state":' }),
      400,
      /not valid JSON/,
    ],
    [
      "a JSON body that is not an object",
      () => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: '["code","X"]' }),
      400,
      /must be an object/,
    ],
    [
      "invalid UTF-8",
      () =>
        fetch(url, {
          method: "POST",
          headers: form,
          body: new Uint8Array([...new TextEncoder().encode("code=X&state=victim&x="), 0xff, 0xfe]),
        }),
      400,
      /not valid UTF-8/,
    ],
    [
      "percent-encoded invalid UTF-8 in the query",
      () => fetch(`${url}?code=X%FF&state=victim`),
      400,
      /query has malformed percent-encoding or is not valid UTF-8/,
    ],
    [
      "percent-encoded invalid UTF-8 in a form body",
      () => fetch(url, { method: "POST", headers: form, body: "code=%C3%28&state=victim" }),
      400,
      /body has malformed percent-encoding or is not valid UTF-8/,
    ],
    [
      "a content type that is neither JSON nor form",
      () => fetch(url, { method: "POST", headers: { "content-type": "text/plain" }, body: "code=X&state=victim" }),
      415,
      /Unsupported content type &quot;text\/plain&quot;/,
    ],
    ["two different states", () => fetch(`${url}?code=X&state=victim&state=other`), 400, /more than one state/],
    [
      "two states, one in the query and one in the body",
      () => fetch(`${url}?state=victim`, { method: "POST", headers: form, body: "code=X&STATE=other" }),
      400,
      /more than one state/,
    ],
    [
      "too many parameters",
      () => fetch(`${url}?state=victim&code=X&${Array.from({ length: 120 }, (_, i) => `p${i}=1`).join("&")}`),
      400,
      /More than 100 parameters/,
    ],
    ["an over-long key", () => fetch(`${url}?state=victim&code=X&${"k".repeat(200)}=1`), 400, /name is longer/],
    ["an over-long value", () => fetch(`${url}?state=victim&code=${"v".repeat(9000)}`), 400, /longer than 8192/],
    ["an over-long URL", () => fetch(`${url}?state=victim&code=X&pad=${"p".repeat(17000)}`), 414, /URL longer/],
    ["PUT", () => fetch(`${url}?code=X&state=victim`, { method: "PUT" }), 405, /Method PUT is not allowed/],
    ["DELETE", () => fetch(`${url}?code=X&state=victim`, { method: "DELETE" }), 405, /Method DELETE/],
  ];
  for (const [name, request, status, problem] of cases) {
    await t.step(name, async () => {
      const response = await request();
      const page = await body(response);
      assert.equal(response.status, status, page);
      assertSecurityHeaders(response);
      assert.match(page, problem);
      if (status === 405) assert.equal(response.headers.get("allow"), "GET, POST");
    });
  }
  assert.equal(await relay.relay.registry.count(), 1, "the waiter is still there");
  await body(await relay.callback({ code: "REAL", state: "victim" }));
  assert.equal((await result).code, "REAL");
});

Deno.test("a chunked body over the limit is cut off at the limit with 413, nothing delivered", async () => {
  await using relay = await startTestRelay({ relay: { limits: { maxBodyBytes: 4096 } } });
  const { result, registered } = wait(relay, { state: "s" });
  await registered;
  let pulled = 0;
  const total = 8 * 1024 * 1024;
  const chunk = new TextEncoder().encode("a".repeat(1024));
  // A stream body is sent chunked, with no Content-Length.
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("code=X&state=s&pad="));
    },
    pull(controller) {
      if (pulled >= total) return controller.close();
      pulled += chunk.length;
      controller.enqueue(chunk);
    },
  });
  const response = await fetch(`${relay.url}/oauth/callback`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: stream,
  });
  assert.equal(response.status, 413);
  assertSecurityHeaders(response);
  await body(response);
  await stream.cancel().catch(() => {});
  assert.ok(pulled < total, `the relay stopped reading early (${pulled} of ${total} bytes sent)`);
  assert.equal(await relay.relay.registry.count(), 1);
  await body(await relay.callback({ code: "REAL", state: "s" }));
  assert.equal((await result).code, "REAL");
});

Deno.test("a callback for an unknown state, even an error one, disturbs no waiter (RFC 8252 §8.9)", async () => {
  await using relay = await startTestRelay();
  const stateful = wait(relay, { state: "mine" });
  const single = wait(relay);
  await Promise.all([stateful.registered, single.registered]);
  const queries: Record<string, string>[] = [{ error: "access_denied", state: "not-mine" }, {
    code: "X",
    state: "not-mine",
  }];
  for (const query of queries) {
    const response = await relay.callback(query);
    assert.equal(response.status, 404);
    assertSecurityHeaders(response);
    assert.match(await body(response), /No client waiting/);
  }
  assert.equal(await relay.relay.registry.count(), 2);
  await body(await relay.callback({ code: "A", state: "mine" }));
  await body(await relay.callback({ code: "B" }));
  assert.equal((await stateful.result).code, "A");
  assert.equal((await single.result).code, "B");
});

Deno.test("pages escape everything they reflect", async () => {
  await using relay = await startTestRelay();
  const { result, registered } = wait(relay, { state: "xss" });
  await registered;
  const evil = `<script>alert(1)</script>"'&`;
  const response = await relay.callback({
    error: evil,
    error_description: `<img src=x onerror=alert(2)>`,
    state: "xss",
  });
  assertSecurityHeaders(response);
  const page = await body(response);
  assert.doesNotMatch(page, /<script>|<img/);
  assert.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt;&quot;&#39;&amp;/);
  assert.match(page, /&lt;img src=x onerror=alert\(2\)&gt;/);
  assert.equal((await result).raw.error, evil, "the client still gets exactly what the provider sent");

  const bad = await fetch(`${relay.url}/oauth/callback`, {
    method: "POST",
    headers: { "content-type": "<b>text/evil</b>" },
    body: "x",
  });
  assert.equal(bad.status, 415);
  assert.doesNotMatch(await body(bad), /<b>/);
});

Deno.test("success, denial and replay responses carry the security headers too", async () => {
  await using relay = await startTestRelay();
  const ok = wait(relay, { state: "ok" });
  const denied = wait(relay, { state: "denied" });
  await Promise.all([ok.registered, denied.registered]);
  const queries: Record<string, string>[] = [
    { code: "C", state: "ok" },
    { error: "access_denied", state: "denied" },
    { code: "C", state: "ok" },
  ];
  for (const query of queries) {
    const response = await relay.callback(query);
    assertSecurityHeaders(response);
    await body(response);
  }
  await ok.result;
  await denied.result;
});

Deno.test("the relay remembers delivered states for a bounded count: the oldest become unknown again", async () => {
  await using relay = await startTestRelay();
  // The default bound is 10,000 states; a registry with a bound of 2 shows the eviction.
  const registry = new MemoryRegistry({ rememberDeliveredCount: 2 });
  const waiter = (state: string) => ({ state, deliver: () => Promise.resolve(true), end: () => Promise.resolve() });
  for (const state of ["a", "b", "c"]) {
    await registry.register(waiter(state));
    assert.equal(await registry.claim({ success: true, code: "x", state, raw: {} }), "delivered");
  }
  assert.equal(await registry.claim({ success: true, code: "x", state: "a", raw: {} }), "no_waiter");
  assert.equal(await registry.claim({ success: true, code: "x", state: "c", raw: {} }), "already_delivered");
  // And over HTTP, a replay says "already completed", not "failed".
  const { result, registered } = wait(relay, { state: "r" });
  await registered;
  await body(await relay.callback({ code: "C", state: "r" }));
  await result;
  const replay = await relay.callback({ code: "C", state: "r" });
  assert.equal(replay.status, 404);
  const page = await body(replay);
  assert.match(page, /Authorization Already Completed/);
  assert.doesNotMatch(page, /Failed/);
});

Deno.test("two parallel identical callbacks deliver exactly once; the other gets 404", async () => {
  await using relay = await startTestRelay();
  for (let round = 0; round < 20; round++) {
    const state = `race-${round}`;
    const { result, registered } = wait(relay, { state });
    await registered;
    const responses = await Promise.all(Array.from({ length: 10 }, () => relay.callback({ code: `C${round}`, state })));
    await Promise.all(responses.map(body));
    assert.deepEqual(responses.map((r) => r.status).sort(), [200, ...Array(9).fill(404)]);
    assert.equal((await result).code, `C${round}`);
  }
});

Deno.test("a state that is present but empty or not a string gets 400 and never reaches the single slot", async () => {
  await using relay = await startTestRelay();
  const single = wait(relay);
  await single.registered;
  const json = { "content-type": "application/json" };
  const requests = [
    () => relay.callback("code=X&state="),
    () => fetch(`${relay.url}/oauth/callback`, { method: "POST", headers: json, body: '{"code":"X","state":123}' }),
    () => fetch(`${relay.url}/oauth/callback`, { method: "POST", headers: json, body: '{"code":"X","state":null}' }),
    () => fetch(`${relay.url}/oauth/callback`, { method: "POST", headers: json, body: '{"code":"X","state":["a",1]}' }),
    () => fetch(`${relay.url}/oauth/callback`, { method: "POST", headers: json, body: '{"code":"X","state":[]}' }),
  ];
  for (const request of requests) {
    const response = await request();
    assert.equal(response.status, 400);
    assert.match(await body(response), /state is empty or not a string/);
  }
  assert.equal(await relay.relay.registry.count(), 1);
  await body(await relay.callback({ code: "MINE" }));
  assert.equal((await single.result).code, "MINE");
});

Deno.test("the largest callback the relay accepts reaches the client whole", async () => {
  await using relay = await startTestRelay();
  const { result, registered } = wait(relay, { state: "big" });
  await registered;
  // %01 is 3 bytes on the wire and 6 once JSON-escaped (\u0001): the callback line doubles in size.
  const fill = (bytes: number) => "%01".repeat(Math.floor(bytes / 3));
  const query = `state=big&code=CODE&q=${fill(15 * 1024)}`;
  // Values are limited to 8 KiB each, so the body carries three of 6.8 KiB.
  const form = [1, 2, 3].map((i) => `p${i}=${fill(20 * 1024)}`).join("&");
  const response = await relay.callback(query, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form,
  });
  assert.equal(response.status, 200);
  await body(response);
  const received = await result;
  assert.equal(received.code, "CODE");
  assert.equal((received.raw.p3 as string).length, Math.floor(20 * 1024 / 3));
  assert.ok(JSON.stringify(received).length > 128 * 1024, "larger than the coordinator's own line limit");
});

Deno.test("a body sent in thousands of one-byte chunks costs the relay no more than its size", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  await using server = startServer({ OAUTH_SOCKET_PATH: `${dir}/r.sock`, PORT: "0" });
  const url = new URL(await server.url);
  const rss = async () => {
    const ps = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(server.child.pid)] }).output();
    return Number(new TextDecoder().decode(ps.stdout).trim()) * 1024;
  };
  const before = await rss();
  const chunks = 12_000;
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  await conn.write(new TextEncoder().encode(
    "POST /oauth/callback?state=x HTTP/1.1\r\nHost: relay\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\na=\r\n" + "1\r\na\r\n".repeat(chunks) +
      "0\r\n\r\n",
  ));
  const answer = await new Response(conn.readable).text();
  assert.match(answer, /^HTTP\/1.1 400/, "the 12,000-character value is over the limit");
  const grown = await rss() - before;
  // Keeping each chunk (a view of a 64 KiB read buffer) pins about 560 MiB here; copying them leaves only
  // garbage that the collector reclaims (about 70 MiB at its peak, whatever the number of chunks).
  assert.ok(grown < 256 * 1024 * 1024, `the relay grew ${(grown / 2 ** 20).toFixed(0)} MiB for a 12,000-byte body`);
});
