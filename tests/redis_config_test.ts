/**
 * OAUTH_REDIS_URL: the forms it takes, one clear line for a bad one or a
 * Redis that cannot be reached at start, and never the password in either.
 */

import assert from "node:assert/strict";
import { ConfigError } from "../src/client/settings.ts";
import { loadServerConfig } from "../src/relay/config.ts";
import { startServer, startTestRelay, wait } from "./helpers.ts";
import { freePort } from "./support/nginx.ts";
import { ignoreWithoutRedis, startRedis } from "./support/redis.ts";

Deno.test("OAUTH_REDIS_URL takes redis://, rediss:// and unix:// URLs, and without it there is none", () => {
  for (
    const url of [
      "redis://127.0.0.1:6379",
      "redis://app:s3cret@redis.internal:6380/2",
      "rediss://:s3cret@redis.example.com",
      "unix:///run/redis/redis.sock",
      "unix://app:s3cret@/run/redis/redis.sock?db=1",
    ]
  ) {
    assert.equal(loadServerConfig({ OAUTH_REDIS_URL: url }).redisUrl, url);
  }
  assert.equal(loadServerConfig({}).redisUrl, undefined);
});

Deno.test("a bad OAUTH_REDIS_URL is refused with one line that names it and hides the password", () => {
  const cases: Array<[string, RegExp]> = [
    ["http://app:s3cret@redis.internal", /must start with redis:\/\/, rediss:\/\/ or unix:\/\/.*"http:\/\/app:\*\*\*@/],
    ["redis://:s3cret@", /is not a URL|must name a host/],
    ["redis://app:s3cret@redis.internal/zero", /may name only a database number/],
    ["unix://relative/redis.sock", /must name an absolute socket path/],
    ["localhost:6379", /OAUTH_REDIS_URL/],
  ];
  for (const [url, message] of cases) {
    assert.throws(() => loadServerConfig({ OAUTH_REDIS_URL: url }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.variable, "OAUTH_REDIS_URL");
      assert.match(error.message, message);
      assert.ok(!error.message.includes("s3cret"), error.message);
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  }
});

Deno.test({
  name: "a relay whose Redis cannot be reached at start stops with one line naming OAUTH_REDIS_URL, password hidden",
  async fn() {
    await using server = startServer({
      PORT: "0",
      OAUTH_USE_TCP: "true",
      OAUTH_TCP_FALLBACK_PORT: "0",
      OAUTH_REDIS_URL: `redis://:s3cret@127.0.0.1:${freePort()}`,
    });
    const { code, stderr } = await server.exited;
    assert.equal(code, 1);
    assert.match(
      stderr,
      /^oauth-relay: Cannot connect to Redis at OAUTH_REDIS_URL=redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: .*ECONNREFUSED.*; start Redis or fix the URL\n$/m,
    );
    assert.ok(!stderr.includes("s3cret"));
  },
});

Deno.test({
  name: "a relay with a Redis over TCP and a password serves; /health names the URL without the password",
  ignore: ignoreWithoutRedis(),
  async fn() {
    await using redis = await startRedis({ tcp: true });
    await redis.command("CONFIG", "SET", "requirepass", "s3cret");
    const url = redis.url.replace("redis://", "redis://:s3cret@");
    await using server = startServer({
      PORT: "0",
      OAUTH_USE_TCP: "true",
      OAUTH_TCP_FALLBACK_PORT: "0",
      OAUTH_REDIS_URL: url,
    });
    const base = await server.url;
    const health = await (await fetch(`${base}/health`)).json();
    assert.deepEqual([health.status, health.redis, health.waiting], ["ok", "ready", 0]);
    await server[Symbol.asyncDispose]();
    const { stderr } = await server.exited;
    assert.match(stderr, /Shared registry: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+, this relay is instance /);
    assert.ok(!stderr.includes("s3cret"));
  },
});

Deno.test({
  name: "a resume grace that is not a whole number of milliseconds (OAUTH_RESUME_GRACE=1.0005) still delivers",
  ignore: ignoreWithoutRedis(),
  async fn() {
    await using redis = await startRedis();
    await using relay = await startTestRelay({ relay: { redis: { url: redis.url }, resumeGraceMs: 1.0005 * 1000 } });
    const waiter = wait(relay, { state: "grace" });
    await waiter.registered;
    const page = await relay.callback({ code: "GRACE-CODE", state: "grace" });
    assert.equal(page.status, 200);
    await page.text();
    assert.equal((await waiter.result).code, "GRACE-CODE");
  },
});
