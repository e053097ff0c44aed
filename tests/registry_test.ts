/**
 * The registry cases every implementation must pass (src/relay/registry/cases.ts),
 * run against the in-memory registry and against the Redis registry on a real
 * redis-server, one server per case. Cases for registries shared by several
 * relays (each `create` there is another relay of one cluster) are not run
 * against the in-memory one, which is one relay's by design.
 */

import { REGISTRY_CASES } from "../src/relay/registry/cases.ts";
import { MemoryRegistry } from "../src/relay/registry/memory.ts";
import { RedisRegistry } from "../src/relay/registry/redis.ts";
import { createLogger } from "../src/relay/log.ts";
import { ignoreWithoutRedis, startRedis } from "./support/redis.ts";

for (const { name, run } of REGISTRY_CASES.filter((registryCase) => !registryCase.shared)) {
  Deno.test(`MemoryRegistry: ${name}`, () => run((options) => Promise.resolve(new MemoryRegistry(options))));
}

for (const { name, run } of REGISTRY_CASES) {
  Deno.test({
    name: `RedisRegistry: ${name}`,
    ignore: ignoreWithoutRedis(),
    async fn() {
      await using redis = await startRedis();
      const registries: RedisRegistry[] = [];
      try {
        await run(async (options = {}) => {
          const registry = await RedisRegistry.connect({
            url: redis.url,
            logger: createLogger("warn"),
            ...options,
            // Short timings, so that a relay stopped without a word counts as dead within a second.
            heartbeatMs: 100,
            liveMs: 400,
            graceMs: 600,
          });
          registries.push(registry);
          return registry;
        });
      } finally {
        for (const registry of registries) await registry.close();
      }
    },
  });
}
