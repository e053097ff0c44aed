/**
 * The relay's deadlines (`src/relay/deadlines.ts`): one interval for every
 * waiter's timers. A deadline fires once, never before its time, not at all
 * once cancelled, and one that throws does not keep the others from firing.
 */

import assert from "node:assert/strict";
import { Deadlines } from "../src/relay/deadlines.ts";

Deno.test("a deadline fires once, not before its time; the interval stops once none is pending", async () => {
  const deadlines = new Deadlines(10);
  const start = performance.now();
  const fired: number[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  deadlines.after(40, () => fired.push(performance.now() - start));
  deadlines.after(80, () => {
    fired.push(performance.now() - start);
    resolve();
  });
  assert.equal(deadlines.size, 2);
  await promise;
  assert.equal(fired.length, 2);
  assert.ok(fired[0] >= 40 && fired[1] >= 80, `fired at ${fired.map(Math.round)} ms`);
  assert.equal(deadlines.size, 0);
});

Deno.test("a cancelled deadline never fires, and cancelling twice or after firing is harmless", async () => {
  const deadlines = new Deadlines(10);
  let cancelledFired = false;
  const cancelled = deadlines.after(20, () => cancelledFired = true);
  deadlines.cancel(cancelled);
  deadlines.cancel(cancelled);
  deadlines.cancel(undefined);
  assert.equal(deadlines.size, 0);
  const { promise, resolve } = Promise.withResolvers<void>();
  const later = deadlines.after(60, resolve);
  await promise;
  deadlines.cancel(later);
  assert.equal(cancelledFired, false);
  assert.equal(deadlines.size, 0);
});

Deno.test("a deadline that throws is reported, and the others of its tick still fire", async () => {
  const deadlines = new Deadlines(10);
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    const { promise, resolve } = Promise.withResolvers<void>();
    deadlines.after(20, () => {
      throw new Error("boom");
    });
    deadlines.after(20, resolve);
    await promise;
    assert.deepEqual(reported.map((error) => (error as Error).message), ["boom"]);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

Deno.test("deadlines added from a firing deadline fire at a later tick", async () => {
  const deadlines = new Deadlines(10);
  const order: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  deadlines.after(10, () => {
    order.push("first");
    deadlines.after(0, () => {
      order.push("added");
      resolve();
    });
  });
  await promise;
  assert.deepEqual(order, ["first", "added"]);
});

Deno.test("a deadline of NaN milliseconds fires at the next tick rather than never", async () => {
  const deadlines = new Deadlines(10);
  const { promise, resolve } = Promise.withResolvers<void>();
  deadlines.after(Number.NaN, resolve);
  await promise;
  assert.equal(deadlines.size, 0);
});
