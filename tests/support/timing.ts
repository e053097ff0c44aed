/**
 * Bounds for the tests' waits: a missing feature fails a test with a message
 * instead of hanging it. Neither is a delay that makes progress happen.
 *
 * @module
 */

import assert from "node:assert/strict";

/**
 * Asks every 50 ms until `check` holds, for what no event announces (a
 * relay's `/health` turning, a dead relay's keys expiring), or fails after `ms`.
 */
export async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** `promise`, or a failure naming `what` when it has not settled within `ms`. */
export async function within<T>(what: string, promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
