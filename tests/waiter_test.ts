/**
 * The waiter lifecycle on its own: a real in-memory registry, and a link
 * that records what the waiter sends (the transport's end of the seam).
 */

import assert from "node:assert/strict";
import { ERROR_CODES, type RelayMessage } from "../src/protocol/mod.ts";
import { createLogger } from "../src/relay/log.ts";
import { MemoryRegistry } from "../src/relay/registry/memory.ts";
import { ClientWaiter, type CloseReason, type WaiterLink, type WaiterPolicy } from "../src/relay/waiter.ts";

class RecordingLink implements WaiterLink {
  readonly peer = "a test";
  readonly sent: RelayMessage[] = [];
  closedWith: CloseReason | undefined;
  readonly #closed = Promise.withResolvers<CloseReason>();
  /** Resolves with the close reason. */
  readonly closed = this.#closed.promise;
  constructor(readonly reachable = true) {}
  send(message: RelayMessage): Promise<boolean> {
    if (this.reachable) this.sent.push(message);
    return Promise.resolve(this.reachable);
  }
  close(reason: CloseReason): Promise<void> {
    this.closedWith ??= reason;
    this.#closed.resolve(reason);
    return Promise.resolve();
  }
  types(): string[] {
    return this.sent.map((message) => message.type === "error" ? `error:${message.code}` : message.type);
  }
}

function policy(overrides: Partial<WaiterPolicy> = {}): WaiterPolicy {
  return {
    registry: new MemoryRegistry(),
    logger: createLogger("silent"),
    defaultTimeout: 30,
    registerTimeoutMs: 10_000,
    ...overrides,
  };
}

const register = (state: string | null, extra: { timeout?: number } = {}) => ({
  v: 2 as const,
  type: "register" as const,
  state,
  ...extra,
});

Deno.test("a waiter that does not register in time is ended as idle", async () => {
  const link = new RecordingLink();
  new ClientWaiter(link, policy({ registerTimeoutMs: 10 }));
  assert.equal(await link.closed, "ended");
  assert.deepEqual(link.types(), ["error:idle"]);
});

Deno.test("a registered waiter receives its callback once, and the link closes after it", async () => {
  const rules = policy();
  const link = new RecordingLink();
  const waiter = new ClientWaiter(link, rules);
  await waiter.register(register("s1"));
  assert.ok(waiter.registered);
  assert.equal(await rules.registry.claim({ success: true, code: "c", state: "s1", raw: {} }), "delivered");
  assert.equal(await link.closed, "delivered");
  await waiter.end(ERROR_CODES.TIMEOUT, "late");
  assert.deepEqual(link.types(), ["registered", "callback"]);
  assert.equal(await rules.registry.count(), 0);
});

Deno.test("a registration that outlives its timeout ends with timeout and leaves the registry", async () => {
  const rules = policy();
  const link = new RecordingLink();
  const waiter = new ClientWaiter(link, rules);
  await waiter.register(register("s1", { timeout: 0.01 }));
  assert.equal(await link.closed, "ended");
  assert.deepEqual(link.types(), ["registered", "error:timeout"]);
  assert.equal(await rules.registry.count(), 0);
});

Deno.test("a waiter whose transport found no valid credential is refused and never registered", async () => {
  for (const credential of ["none", "missing", "wrong"] as const) {
    const rules = policy({ requireAuth: true });
    const link = new RecordingLink();
    await new ClientWaiter(link, rules).register(register("s1"), credential);
    assert.deepEqual(link.types(), ["error:unauthorized"]);
    assert.equal(await rules.registry.count(), 0);
  }
  const rules = policy({ requireAuth: true });
  const link = new RecordingLink();
  await new ClientWaiter(link, rules).register(register("s1"), "valid");
  assert.deepEqual(link.types(), ["registered"]);
});
Deno.test("a waiter the registry refuses is told why and closed", async () => {
  const rules = policy();
  await new ClientWaiter(new RecordingLink(), rules).register(register("s1"));
  const second = new RecordingLink();
  await new ClientWaiter(second, rules).register(register("s1"));
  assert.deepEqual(second.types(), ["error:state_taken"]);
  assert.equal(second.closedWith, "ended");
});

Deno.test("a waiter whose client goes away is released at once", async () => {
  const rules = policy();
  const waiter = new ClientWaiter(new RecordingLink(), rules);
  await waiter.register(register("s1"));
  await waiter.gone();
  assert.equal(await rules.registry.count(), 0);
  assert.equal(await rules.registry.claim({ success: true, code: "c", state: "s1", raw: {} }), "no_waiter");
});

Deno.test("a waiter that goes away while the registry answers does not stay registered", async () => {
  const rules = policy();
  const waiter = new ClientWaiter(new RecordingLink(), rules);
  const registering = waiter.register(register("s1"));
  await waiter.gone();
  await registering;
  assert.equal(await rules.registry.count(), 0);
});

Deno.test("a superseded single-slot waiter is ended with superseded", async () => {
  const rules = policy();
  const older = new RecordingLink();
  await new ClientWaiter(older, rules).register(register(null));
  await new ClientWaiter(new RecordingLink(), rules).register(register(null));
  assert.equal(await older.closed, "ended");
  assert.deepEqual(older.types(), ["registered", "error:superseded"]);
});

Deno.test("a callback that cannot be written counts as not delivered, and the state stays unused", async () => {
  const rules = policy();
  const link = new RecordingLink(false);
  await new ClientWaiter(link, rules).register(register("s1"));
  assert.equal(await rules.registry.claim({ success: true, code: "c", state: "s1", raw: {} }), "no_waiter");
  assert.equal(link.closedWith, "gone");
  await new ClientWaiter(new RecordingLink(), rules).register(register("s1"));
  assert.equal(await rules.registry.count(), 1);
});

Deno.test("a registration longer than the relay's maximum is clamped, and the client is told", async () => {
  const rules = policy({ maxTimeout: 0.05 });
  const link = new RecordingLink();
  await new ClientWaiter(link, rules).register(register("s1", { timeout: 24 * 3600 }));
  assert.deepEqual(link.sent[0], { v: 2, type: "registered", state: "s1", timeout: 0.05 });
  assert.equal(await link.closed, "ended");
  assert.deepEqual(link.types(), ["registered", "error:timeout"]);
});

Deno.test("with single-slot mode off, a waiter without a state is refused with its own code", async () => {
  const rules = policy({ singleSlot: false });
  const link = new RecordingLink();
  await new ClientWaiter(link, rules).register(register(null));
  assert.deepEqual(link.types(), ["error:single_slot_disabled"]);
  assert.equal(await rules.registry.count(), 0);
  const keyed = new RecordingLink();
  await new ClientWaiter(keyed, rules).register(register("s1"));
  assert.deepEqual(keyed.types(), ["registered"]);
});
