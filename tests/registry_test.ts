/**
 * The registry cases every implementation must pass, run against the
 * in-memory registry.
 */

import { REGISTRY_CASES } from "../src/relay/registry/cases.ts";
import { MemoryRegistry } from "../src/relay/registry/memory.ts";

for (const { name, run } of REGISTRY_CASES) {
  Deno.test(`MemoryRegistry: ${name}`, () => run((options) => Promise.resolve(new MemoryRegistry(options))));
}
