/**
 * Coarse deadlines for many objects, kept with one timer.
 *
 * Every waiter has deadlines (to register, to expire, for a write that does
 * not finish, to linger after its last message), and nearly all of them are
 * cancelled long before they come. A `setTimeout` each costs a timer object
 * and two calls into the runtime's timer queue (about 1.2 µs a pair here,
 * and a `Timeout` of about 200 bytes for every waiting client); a deadline
 * here is a small object in a set, added and removed in about 0.06 µs. They
 * fire at most one tick late, never early: every deadline the relay keeps is
 * counted in seconds, so a tick of 50 ms is far below what anyone notices.
 *
 * @module
 */

import { MAX_TIMER_MS } from "../protocol/mod.ts";

/** Milliseconds between two sweeps of {@linkcode Deadlines}: the most a deadline fires late. */
export const DEADLINE_TICK_MS = 50;

/** One pending deadline, as {@linkcode Deadlines.after} returns it. */
export interface Deadline {
  /** The tick at or after which it fires. */
  readonly tick: number;
  /** What it calls; `undefined` once fired or cancelled. */
  fire: (() => void) | undefined;
}

/**
 * Deadlines swept by one interval that runs only while some are pending.
 *
 * @example Cancelled before it comes, a deadline never fires
 * ```ts
 * import assert from "node:assert/strict";
 * import { Deadlines } from "./deadlines.ts";
 *
 * const deadlines = new Deadlines(10);
 * let fired = 0;
 * const early = deadlines.after(20, () => fired++);
 * deadlines.cancel(early);
 * await new Promise<void>((resolve) => deadlines.after(30, resolve));
 * assert.equal(fired, 0);
 * assert.equal(deadlines.size, 0);
 * ```
 */
export class Deadlines {
  readonly #tickMs: number;
  readonly #buckets = new Map<number, Set<Deadline>>();
  #size = 0;
  /** The last tick swept: every deadline of a tick up to it has fired. */
  #swept = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** @param tickMs Milliseconds between sweeps. Default {@linkcode DEADLINE_TICK_MS}. */
  constructor(tickMs: number = DEADLINE_TICK_MS) {
    this.#tickMs = tickMs;
  }

  /** How many deadlines are pending. */
  get size(): number {
    return this.#size;
  }

  /**
   * Calls `fire` once, `ms` milliseconds from now or up to one tick later,
   * unless cancelled first.
   *
   * @param ms Milliseconds from now (clamped to what a timer takes, about 24 days).
   * @param fire What to call; an exception it throws is reported, not thrown at the others.
   * @returns The deadline, for {@linkcode Deadlines.cancel}.
   */
  after(ms: number, fire: () => void): Deadline {
    const now = performance.now();
    if (this.#timer === undefined) {
      this.#swept = Math.floor(now / this.#tickMs);
      this.#timer = setInterval(() => this.#sweep(), this.#tickMs);
    }
    // NaN (an end computed from nothing) fires at the next tick, as `setTimeout` would at once.
    const delay = Number.isNaN(ms) ? 0 : Math.min(Math.max(ms, 0), MAX_TIMER_MS);
    const tick = Math.max(this.#swept + 1, Math.ceil((now + delay) / this.#tickMs));
    const deadline: Deadline = { tick, fire };
    let bucket = this.#buckets.get(tick);
    if (!bucket) this.#buckets.set(tick, bucket = new Set());
    bucket.add(deadline);
    this.#size++;
    return deadline;
  }

  /**
   * Cancels a deadline; nothing happens when it has fired, was cancelled, or is `undefined`.
   *
   * @param deadline What {@linkcode Deadlines.after} returned.
   */
  cancel(deadline: Deadline | undefined): void {
    if (deadline?.fire === undefined) return;
    deadline.fire = undefined;
    const bucket = this.#buckets.get(deadline.tick);
    if (!bucket?.delete(deadline)) return;
    if (bucket.size === 0) this.#buckets.delete(deadline.tick);
    this.#size--;
  }

  #fire(tick: number): void {
    const bucket = this.#buckets.get(tick);
    if (!bucket) return;
    this.#buckets.delete(tick);
    for (const deadline of bucket) {
      const fire = deadline.fire;
      deadline.fire = undefined;
      this.#size--;
      try {
        fire?.();
      } catch (error) {
        reportError(error);
      }
    }
  }

  #sweep(): void {
    const now = Math.floor(performance.now() / this.#tickMs);
    const from = this.#swept;
    this.#swept = now;
    if (now - from <= this.#buckets.size) {
      for (let tick = from + 1; tick <= now; tick++) this.#fire(tick);
    } else {
      // After a long stall, visit the pending buckets rather than every tick that passed.
      for (const tick of [...this.#buckets.keys()].filter((tick) => tick <= now).sort((a, b) => a - b)) {
        this.#fire(tick);
      }
    }
    // Stopped only here, not at each cancel: a relay whose last waiter comes and goes does not rearm it each time.
    if (this.#size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** The relay's deadlines: one interval for all of them. */
export const deadlines: Deadlines = new Deadlines();
