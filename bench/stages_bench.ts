/**
 * The relay's per-callback stages as micro-benchmarks, warm and in one
 * process (`deno bench bench/stages_bench.ts`): what each costs on the CPU,
 * beside what `bench/trace.ts` measures across processes. A real in-memory
 * registry and the real handler; the waiter answers at once.
 *
 * @module
 */

import { createHandler } from "../src/relay/http/handler.ts";
import { MemoryRegistry } from "../src/relay/registry/memory.ts";
import { createLogger } from "../src/relay/log.ts";
import { resolveSettings } from "../src/client/wait.ts";
import { encode, PROTOCOL_VERSION } from "../src/protocol/mod.ts";
import { extractCallback } from "../src/relay/http/extract.ts";
const settings = { ...resolveSettings({}), logUnmatched: false };
const registry = new MemoryRegistry({ maxWaiters: 1e9 });
const handler = createHandler({ settings, registry, logger: createLogger("warn"), coordinator: () => null });
const code = "c".repeat(64);
const url = (s: string) => `http://127.0.0.1:8000/oauth/callback?code=${code}&state=${s}`;
let i = 0;
Deno.bench("new URL + searchParams loop", () => {
  const u = new URL(url("s" + i++));
  for (const _ of u.searchParams) { /* what the handler iterates */ }
});
Deno.bench("new Request (test only: the engine builds its own)", () => {
  new Request(url("s"));
});
Deno.bench("extractCallback", () => {
  extractCallback({ code, state: "abc" }, settings.codeKeys);
});
Deno.bench("encode callback message", () => {
  encode({
    v: PROTOCOL_VERSION,
    type: "callback",
    result: { success: true, code, state: "st".padEnd(32, "s"), raw: { code, state: "st".padEnd(32, "s") } },
  });
});
Deno.bench("handler: no waiter (404 page)", async () => {
  await handler(new Request(url("nobody" + i++)));
});
Deno.bench("handler: delivered to a waiter answering at once", async () => {
  const state = "w" + i++;
  await registry.register({ state, deliver: () => Promise.resolve(true), end: () => Promise.resolve() });
  await handler(new Request(url(state)));
});
Deno.bench("setTimeout + clearTimeout", () => {
  clearTimeout(setTimeout(() => {}, 5000));
});
