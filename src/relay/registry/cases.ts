/**
 * The cases every {@linkcode Registry} implementation must pass, written
 * once (as Hono runs one `common.case.test.ts` against every router).
 * `tests/registry_test.ts` runs them against the in-memory registry; a
 * shared registry runs the same list.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ERROR_CODES, type ErrorCode, type OAuthCallbackResult } from "../../protocol/mod.ts";
import { RegistrationError, type Registry, type Waiter } from "./registry.ts";

/** A waiter that records what the registry did to it. */
export class RecordingWaiter implements Waiter {
  /** Callbacks handed over. */
  readonly delivered: OAuthCallbackResult[] = [];
  /** Codes it was ended with. */
  readonly ended: ErrorCode[] = [];
  /**
   * @param state The state it waits for.
   * @param reachable Whether a delivery reaches the client (`false`: it went away).
   */
  constructor(readonly state: string | null, readonly reachable = true) {}
  /** Records the callback. */
  deliver(result: OAuthCallbackResult): Promise<boolean> {
    this.delivered.push(result);
    return Promise.resolve(this.reachable);
  }
  /** Records the code. */
  end(code: ErrorCode): Promise<void> {
    this.ended.push(code);
    return Promise.resolve();
  }
}

/** One case: a name that reads as a sentence, and its body given a fresh registry. */
export interface RegistryCase {
  name: string;
  run(create: (options?: { maxWaiters?: number }) => Promise<Registry>): Promise<void>;
}

function callback(state: string | null, code = "c0de"): OAuthCallbackResult {
  return { success: true, code, state, raw: { code, ...(state === null ? {} : { state }) } };
}

async function refusedWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RegistrationError, `expected a RegistrationError, got ${error}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** The shared cases. */
export const REGISTRY_CASES: RegistryCase[] = [
  {
    name: "a claimed state reaches its waiter once; a second claim is a replay",
    async run(create) {
      const registry = await create();
      const waiter = new RecordingWaiter("s1");
      await registry.register(waiter);
      assert.equal(await registry.claim(callback("s1")), "delivered");
      assert.deepEqual(waiter.delivered.map((result) => result.code), ["c0de"]);
      assert.equal(await registry.claim(callback("s1", "other")), "already_delivered");
      assert.equal(waiter.delivered.length, 1);
    },
  },
  {
    name: "a claim for an unknown state finds no waiter and disturbs no one",
    async run(create) {
      const registry = await create();
      const waiter = new RecordingWaiter("s1");
      await registry.register(waiter);
      assert.equal(await registry.claim(callback("unknown")), "no_waiter");
      assert.deepEqual([waiter.delivered, waiter.ended], [[], []]);
      assert.equal(await registry.count(), 1);
      assert.equal(await registry.claim(callback("s1")), "delivered");
    },
  },
  {
    name: "a second registration for a waited-on state is refused and the first keeps its place",
    async run(create) {
      const registry = await create();
      const first = new RecordingWaiter("s1");
      await registry.register(first);
      await refusedWith(registry.register(new RecordingWaiter("s1")), ERROR_CODES.STATE_TAKEN);
      assert.equal(await registry.claim(callback("s1")), "delivered");
      assert.equal(first.delivered.length, 1);
    },
  },
  {
    name: "a delivered state cannot be registered again",
    async run(create) {
      const registry = await create();
      await registry.register(new RecordingWaiter("s1"));
      await registry.claim(callback("s1"));
      await refusedWith(registry.register(new RecordingWaiter("s1")), ERROR_CODES.STATE_USED);
    },
  },
  {
    name: "a full registry refuses more waiters until one is released",
    async run(create) {
      const registry = await create({ maxWaiters: 2 });
      const a = new RecordingWaiter("a");
      await registry.register(a);
      await registry.register(new RecordingWaiter("b"));
      await refusedWith(registry.register(new RecordingWaiter("c")), ERROR_CODES.TOO_MANY_WAITERS);
      await registry.release(a);
      await registry.register(new RecordingWaiter("c"));
      assert.equal(await registry.count(), 2);
    },
  },
  {
    name: "a newer single-slot waiter supersedes the older one, which is ended",
    async run(create) {
      const registry = await create();
      const older = new RecordingWaiter(null);
      const newer = new RecordingWaiter(null);
      await registry.register(older);
      await registry.register(newer);
      assert.deepEqual(older.ended, [ERROR_CODES.SUPERSEDED]);
      assert.equal(await registry.count(), 1);
      assert.equal(await registry.claim(callback(null)), "delivered");
      assert.deepEqual([older.delivered.length, newer.delivered.length], [0, 1]);
    },
  },
  {
    name: "a released waiter is no longer found, and releasing a waiter that lost its place changes nothing",
    async run(create) {
      const registry = await create();
      const older = new RecordingWaiter(null);
      const newer = new RecordingWaiter(null);
      const keyed = new RecordingWaiter("s1");
      await registry.register(keyed);
      await registry.release(keyed);
      assert.equal(await registry.claim(callback("s1")), "no_waiter");
      await registry.register(older);
      await registry.register(newer);
      await registry.release(older);
      assert.equal(await registry.count(), 1, "the newer single-slot waiter stays");
    },
  },
  {
    name: "count follows registrations, releases and claims",
    async run(create) {
      const registry = await create();
      assert.equal(await registry.count(), 0);
      const waiters = ["a", "b", "c", null].map((state) => new RecordingWaiter(state));
      for (const waiter of waiters) await registry.register(waiter);
      assert.equal(await registry.count(), 4);
      await registry.release(waiters[0]);
      await registry.claim(callback("b"));
      assert.equal(await registry.count(), 2);
      assert.equal(registry.local().length, 2);
    },
  },
  {
    name: "100 parallel claims of one state deliver exactly once",
    async run(create) {
      const registry = await create();
      const waiter = new RecordingWaiter("s1");
      await registry.register(waiter);
      const outcomes = await Promise.all(Array.from({ length: 100 }, () => registry.claim(callback("s1"))));
      // The others find no waiter, or (once the delivery is recorded) a replay: both answer 404.
      assert.equal(outcomes.filter((outcome) => outcome === "delivered").length, 1);
      assert.equal(waiter.delivered.length, 1);
      assert.equal(await registry.claim(callback("s1")), "already_delivered");
    },
  },
  {
    name: "a claim whose client went away finds no waiter and leaves the state unused",
    async run(create) {
      const registry = await create();
      await registry.register(new RecordingWaiter("s1", false));
      assert.equal(await registry.claim(callback("s1")), "no_waiter");
      assert.equal(await registry.count(), 0);
      await registry.register(new RecordingWaiter("s1"));
    },
  },
];
