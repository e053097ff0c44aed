/**
 * The cases every {@linkcode Registry} implementation must pass, written
 * once (as Hono runs one `common.case.test.ts` against every router).
 * `tests/registry_test.ts` runs the list against the in-memory registry and
 * against the Redis registry on a real redis-server. Cases marked `shared`
 * need a registry that several relays share: each call of `create` is then
 * another relay of the same cluster.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ERROR_CODES, type ErrorCode, type OAuthCallbackResult } from "../../protocol/mod.ts";
import { RegistrationError, type Registry, type RemoteTicket, type Waiter } from "./registry.ts";

/** A waiter that records what the registry did to it. */
export class RecordingWaiter implements Waiter {
  /** Callbacks handed over. */
  readonly delivered: OAuthCallbackResult[] = [];
  /** Codes it was ended with. */
  readonly ended: ErrorCode[] = [];
  /** How often it was told its registration moved to another waiter. */
  moves = 0;
  readonly expiresAt: number = Date.now() + 60_000;
  #settled = Promise.withResolvers<void>();
  /**
   * @param state The state it waits for.
   * @param reachable Whether a delivery reaches the client (`false`: it went away).
   * @param remote Set for a remote (HTTPS) waiter.
   */
  constructor(readonly state: string | null, readonly reachable = true, readonly remote?: RemoteTicket) {}
  /** Resolves once the registry delivered to it, ended it or moved it. */
  get settled(): Promise<void> {
    return this.#settled.promise;
  }
  /** Records the callback. */
  deliver(result: OAuthCallbackResult): Promise<boolean> {
    this.delivered.push(result);
    this.#settled.resolve();
    return Promise.resolve(this.reachable);
  }
  /** Records the code. */
  end(code: ErrorCode): Promise<void> {
    this.ended.push(code);
    this.#settled.resolve();
    return Promise.resolve();
  }
  /** Records the move. */
  moved(): void {
    this.moves++;
    this.#settled.resolve();
  }
}

/** Limits a case asks of a fresh registry. */
export interface CaseOptions {
  maxWaiters?: number;
  maxWaitersPerToken?: number;
}

/** One case: a name that reads as a sentence, and its body given a fresh registry (another relay's, if `shared`). */
export interface RegistryCase {
  name: string;
  /** Needs a registry shared by several relays. */
  shared?: boolean;
  run(create: (options?: CaseOptions) => Promise<Registry>): Promise<void>;
}

/** A remote waiter with the ticket of `secret` for `token`. */
function remote(state: string, secret = "secret-1", token = "tok1"): RecordingWaiter & { remote: RemoteTicket } {
  return new RecordingWaiter(state, true, { resumeHash: `hash-of-${secret}`, token }) as RecordingWaiter & {
    remote: RemoteTicket;
  };
}

/** Resolves once `check` holds, asking every 25 ms (for what a registry does on a timer), or fails at `ms`. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function registers(registry: Registry, waiter: Waiter): Promise<boolean> {
  try {
    await registry.register(waiter);
    return true;
  } catch (error) {
    if (error instanceof RegistrationError && error.code === ERROR_CODES.STATE_TAKEN) return false;
    throw error;
  }
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
  {
    name: "a remote registration is taken back with its secret; a wrong secret or a socket waiter is refused",
    async run(create) {
      const registry = await create();
      const first = remote("r1");
      await registry.register(first);
      await registry.register(new RecordingWaiter("socket"));
      assert.deepEqual(await registry.resume(remote("r1", "guess")), { kind: "refused" });
      assert.deepEqual(await registry.resume(remote("socket")), { kind: "refused" });
      assert.deepEqual(await registry.resume(remote("nobody")), { kind: "absent" });
      assert.equal(first.moves, 0, "a wrong secret disturbs nobody");
      const second = remote("r1");
      const outcome = await registry.resume(second);
      assert.equal(outcome.kind, "resumed");
      assert.equal(first.moves, 1);
      assert.equal(await registry.count(), 2);
      assert.equal(await registry.claim(callback("r1")), "delivered");
      assert.deepEqual([first.delivered.length, second.delivered.length], [0, 1]);
    },
  },
  {
    name: "a registration that ends at a fraction of a millisecond (a timeout of 10.0005 s) is taken and reached",
    async run(create) {
      const registry = await create();
      // What a client's `"timeout": 10.0005` makes of its end: Date.now() + 10000.5.
      const waiter = Object.assign(new RecordingWaiter("s1"), { expiresAt: Date.now() + 10_000.5 });
      await registry.register(waiter);
      const remoteWaiter = Object.assign(remote("r1"), { expiresAt: Date.now() + 10_000.5 });
      await registry.register(remoteWaiter);
      assert.equal(await registry.count(), 2);
      assert.equal(await registry.claim(callback("s1")), "delivered");
      assert.equal(waiter.delivered.length, 1);
    },
  },
  {
    name: "status says the registry works and counts its waiters",
    async run(create) {
      const registry = await create();
      await registry.register(new RecordingWaiter("s1"));
      await registry.register(remote("s2"));
      const status = await registry.status();
      assert.equal(status.ok, true);
      assert.equal(status.waiting, 2);
    },
  },
  {
    name: "a callback at one relay reaches the socket waiter at another, once",
    shared: true,
    async run(create) {
      const [a, b] = [await create(), await create()];
      const waiter = new RecordingWaiter("s1");
      await a.register(waiter);
      assert.equal(await b.claim(callback("s1")), "delivered");
      assert.deepEqual(waiter.delivered.map((result) => result.code), ["c0de"]);
      assert.equal(await a.claim(callback("s1")), "already_delivered");
      assert.equal(await b.claim(callback("s1")), "already_delivered");
      assert.deepEqual([await a.count(), a.local().length], [0, 0]);
    },
  },
  {
    name: "100 parallel claims of one state spread over three relays deliver exactly once",
    shared: true,
    async run(create) {
      const relays = [await create(), await create(), await create()];
      const waiter = new RecordingWaiter("s1");
      await relays[1].register(waiter);
      const outcomes = await Promise.all(
        Array.from({ length: 100 }, (_, i) => relays[i % 3].claim(callback("s1", `code-${i}`))),
      );
      assert.equal(outcomes.filter((outcome) => outcome === "delivered").length, 1);
      assert.equal(waiter.delivered.length, 1);
      assert.ok(outcomes.every((outcome) => outcome !== "unavailable"));
    },
  },
  {
    name: "state_taken, state_used, the waiting count and the caps hold across relays",
    shared: true,
    async run(create) {
      const [a, b] = [await create({ maxWaiters: 3, maxWaitersPerToken: 1 }), await create({ maxWaiters: 3 })];
      await a.register(new RecordingWaiter("s1"));
      await refusedWith(b.register(new RecordingWaiter("s1")), ERROR_CODES.STATE_TAKEN);
      await b.register(remote("s2", "x", "tok1"));
      assert.equal(await a.count(), 2);
      assert.equal(await b.count(), 2);
      await assert.rejects(a.register(remote("s3", "y", "tok1")), (error: unknown) => {
        assert.ok(error instanceof RegistrationError);
        assert.deepEqual([error.code, error.limit], [ERROR_CODES.TOO_MANY_WAITERS, "token"]);
        return true;
      });
      await a.register(remote("s3", "y", "tok2"));
      await refusedWith(a.register(new RecordingWaiter("s4")), ERROR_CODES.TOO_MANY_WAITERS);
      assert.equal(await a.claim(callback("s1")), "delivered");
      await refusedWith(b.register(new RecordingWaiter("s1")), ERROR_CODES.STATE_USED);
      assert.equal(await b.claim(callback("s1")), "already_delivered");
    },
  },
  {
    name: "a socket client that went away at another relay leaves the state unused",
    shared: true,
    async run(create) {
      const [a, b] = [await create(), await create()];
      await a.register(new RecordingWaiter("s1", false));
      assert.equal(await b.claim(callback("s1")), "no_waiter");
      const again = new RecordingWaiter("s1");
      await b.register(again);
      assert.equal(await a.claim(callback("s1")), "delivered");
      assert.equal(again.delivered.length, 1);
    },
  },
  {
    name: "a remote waiter's callback claimed at another relay is kept for a resume at a third",
    shared: true,
    async run(create) {
      const [a, b, c] = [await create(), await create(), await create()];
      const waiter = remote("r1");
      await a.register(waiter);
      assert.equal(await b.claim(callback("r1", "KEPT")), "delivered");
      await waiter.settled;
      assert.deepEqual(waiter.delivered.map((result) => result.code), ["KEPT"]);
      const outcome = await c.resume(remote("r1"));
      assert.equal(outcome.kind, "kept");
      assert.equal(outcome.kind === "kept" && outcome.result.code, "KEPT");
      assert.deepEqual(await c.resume(remote("r1", "guess")), { kind: "refused" });
      assert.equal(await c.claim(callback("r1")), "already_delivered");
    },
  },
  {
    name: "a resume at another relay moves the registration there; the first relay lets go of it",
    shared: true,
    async run(create) {
      const [a, b] = [await create(), await create()];
      const first = remote("r1");
      await a.register(first);
      const second = remote("r1");
      assert.equal((await b.resume(second)).kind, "resumed");
      await first.settled;
      assert.equal(first.moves, 1);
      assert.deepEqual([a.local().length, b.local().length], [0, 1]);
      assert.equal(await a.claim(callback("r1", "MOVED")), "delivered");
      await second.settled;
      assert.deepEqual([first.delivered.length, second.delivered.map((result) => result.code)], [0, ["MOVED"]]);
      await a.release(first);
      assert.equal(await a.claim(callback("r1")), "already_delivered");
    },
  },
  {
    name: "a newer single-slot waiter at another relay supersedes the older one",
    shared: true,
    async run(create) {
      const [a, b] = [await create(), await create()];
      const older = new RecordingWaiter(null);
      const newer = new RecordingWaiter(null);
      await a.register(older);
      await b.register(newer);
      await older.settled;
      assert.deepEqual(older.ended, [ERROR_CODES.SUPERSEDED]);
      assert.equal(await a.count(), 1);
      assert.equal(await a.claim(callback(null)), "delivered");
      assert.deepEqual([older.delivered.length, newer.delivered.length], [0, 1]);
    },
  },
  {
    name:
      "a relay that stops without a word blocks its socket states no longer, its remote ones until the grace period ends",
    shared: true,
    async run(create) {
      const [a, b] = [await create(), await create()];
      await a.register(new RecordingWaiter("socket"));
      await a.register(remote("remote"));
      await a.close(); // no retire: as a relay killed with SIGKILL
      await refusedWith(b.register(new RecordingWaiter("remote")), ERROR_CODES.STATE_TAKEN);
      await eventually("the socket state is free", () => registers(b, new RecordingWaiter("socket")));
      await eventually("the remote state is free", () => registers(b, new RecordingWaiter("remote")));
      assert.equal(await b.count(), 2);
    },
  },
];
