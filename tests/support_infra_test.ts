/**
 * The HTTPS/SSE test infrastructure itself, with real parts only: certificates
 * made by `openssl` (./support/tls.ts) served by `Deno.serve` and checked by
 * `fetch`, and a real nginx (./support/nginx.ts) that terminates TLS, passes
 * Server-Sent Events unbuffered and balances over its upstreams.
 *
 * @module
 */

import assert from "node:assert/strict";
import { httpClientTrusting, makeCertificates, OPENSSL_AVAILABLE } from "./support/tls.ts";
import { ignoreWithoutNginx, startNginx } from "./support/nginx.ts";
import { within } from "./support/timing.ts";

// CI installs openssl and nginx and must run these (a missing one fails there with one line).
const NO_OPENSSL = !Deno.env.get("CI") && !OPENSSL_AVAILABLE;
if (NO_OPENSSL) {
  console.warn("Skipping the TLS infrastructure tests: openssl is not installed (apt-get install openssl)");
}
const NO_NGINX = NO_OPENSSL || ignoreWithoutNginx("the nginx infrastructure tests");

/** A `Deno.serve` on a free loopback port, stopped with `await using`. */
function serve(handler: Deno.ServeHandler<Deno.NetAddr>, tls?: { cert: string; key: string }) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {}, ...tls }, handler);
}

/** Whether anything accepts TCP connections on 127.0.0.1:`port`. */
async function accepts(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

/** The message of `error` and of each cause under it. */
function messages(error: unknown): string {
  const parts: string[] = [];
  for (let e = error; e instanceof Error; e = e.cause) parts.push(e.message);
  return parts.join(" <- ");
}

Deno.test({
  name: "makeCertificates: Deno.serve over HTTPS is trusted with the CA and rejected without it",
  ignore: NO_OPENSSL,
  async fn() {
    let dir: string;
    {
      await using certs = await makeCertificates();
      dir = certs.dir;
      assert.match(certs.caCert, /^-----BEGIN CERTIFICATE-----/);
      assert.equal(certs.caCert, await Deno.readTextFile(certs.caCertFile));
      await using server = serve(() => new Response("hello over TLS"), {
        cert: await Deno.readTextFile(certs.certFile),
        key: await Deno.readTextFile(certs.keyFile),
      });
      using client = httpClientTrusting(certs.caCert);
      // Both names in the certificate's subjectAltName: DNS:localhost and IP:127.0.0.1.
      for (const host of ["localhost", "127.0.0.1"]) {
        const response = await fetch(`https://${host}:${server.addr.port}/`, { client });
        assert.equal(response.status, 200);
        assert.equal(await response.text(), "hello over TLS");
      }
      await assert.rejects(fetch(`https://127.0.0.1:${server.addr.port}/`), (error: unknown) => {
        assert.match(messages(error), /certificate|UnknownIssuer/i);
        return true;
      });
    }
    assert.equal(await Deno.stat(dir).then(() => true, () => false), false, "the temp dir is removed");
  },
});

Deno.test({
  name: "startNginx with TLS passes a text/event-stream event through before the upstream writes the next",
  ignore: NO_NGINX,
  async fn() {
    await using certs = await makeCertificates();
    const encoder = new TextEncoder();
    const second = Promise.withResolvers<void>();
    const seen: Record<string, string | null> = {};
    await using upstream = serve((request) => {
      for (const name of ["x-forwarded-proto", "x-forwarded-for", "host"]) seen[name] = request.headers.get(name);
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode("event: ready\ndata: first\n\n"));
          await second.promise;
          controller.enqueue(encoder.encode("data: second\n\n"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
    });
    let port: number;
    {
      await using proxy = await startNginx({ upstreams: [`127.0.0.1:${upstream.addr.port}`], tls: certs });
      port = proxy.port;
      assert.equal(proxy.url, `https://127.0.0.1:${proxy.port}`);
      using client = httpClientTrusting(certs.caCert);
      const response = await within("response headers through nginx", fetch(`${proxy.url}/events`, { client }));
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "text/event-stream");
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes("data: first\n\n")) {
        const { value, done } = await within("the first event before the second is released", reader.read());
        assert.ok(!done, `stream ended early: ${JSON.stringify(text)}`);
        text += value;
      }
      // The upstream is still blocked on `second`: nginx did not buffer the first event.
      assert.equal(text, "event: ready\ndata: first\n\n");
      second.resolve();
      for (;;) {
        const { value, done } = await within("the rest of the stream", reader.read());
        if (done) break;
        text += value;
      }
      assert.equal(text, "event: ready\ndata: first\n\ndata: second\n\n");
      assert.deepEqual(seen, { "x-forwarded-proto": "https", "x-forwarded-for": "127.0.0.1", host: "127.0.0.1" });
      assert.match(await proxy.accessLog(), /"GET \/events HTTP\/1\.1" 200 upstream=127\.0\.0\.1:\d+/);
    }
    assert.equal(await accepts(port), false, "nginx is stopped after dispose");
  },
});

Deno.test({
  name: "startNginx balances round robin over its upstreams",
  ignore: NO_NGINX,
  async fn() {
    await using a = serve(() => new Response("a"));
    await using b = serve(() => new Response("b"));
    await using proxy = await startNginx({
      upstreams: [`127.0.0.1:${a.addr.port}`, `127.0.0.1:${b.addr.port}`],
      extraHttpConfig: "server_tokens off;",
    });
    assert.equal(proxy.url, `http://127.0.0.1:${proxy.port}`);
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${proxy.url}/which`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("server"), "nginx", "extraHttpConfig applies (no version)");
      answers.push(await response.text());
    }
    assert.deepEqual([...new Set(answers)].sort(), ["a", "b"], `answers: ${answers}`);
  },
});
