/**
 * The registry of waiters: who waits for which state, and the one atomic
 * step that hands a callback to exactly one of them.
 *
 * The HTTP side only sees {@linkcode CallbackRouter}; a registry shared by
 * several relays (e.g. in Redis) can implement the same interface.
 *
 * @module
 */

import type { OAuthCallbackResult } from "../../protocol/mod.ts";

/** A client waiting for one callback, as the registry sees it. */
export interface Waiter {
  /** The state it waits for; `null` for the single slot. */
  readonly state: string | null;
  /** Hands over the callback. Resolves `true` when it reached the client. Called at most once. */
  deliver(result: OAuthCallbackResult): Promise<boolean>;
  /** Ends the wait without a callback, telling the client why. */
  end(code: string, message: string): Promise<void>;
}

/** What became of a callback. */
export type DeliveryOutcome = "delivered" | "no_waiter" | "already_delivered";

/** Routes a callback to its waiter. The seam between the HTTP side and the coordinator. */
export interface CallbackRouter {
  /** Delivers `result` to the client waiting for `result.state`, at most once. */
  deliver(result: OAuthCallbackResult): Promise<DeliveryOutcome>;
  /** How many clients are waiting. */
  readonly waiting: number;
}

/** A registration the registry refuses; `code` is sent to the client. */
export class RegistrationError extends Error {
  /** Stable reason, e.g. `state_taken`. */
  readonly code: string;
  /**
   * @param code Stable reason.
   * @param message One line for the client.
   */
  constructor(code: string, message: string) {
    super(message);
    this.name = "RegistrationError";
    this.code = code;
  }
}

/** Options of {@linkcode WaiterRegistry}. */
export interface RegistryOptions {
  /** Most waiters held at once; further registrations are refused. */
  maxWaiters?: number;
  /** How long a delivered state is remembered, to tell a replay from an unknown state. Default 10 minutes. */
  rememberDeliveredMs?: number;
  /** How many delivered states are remembered at most (oldest forgotten first). Default 10,000. */
  rememberDeliveredCount?: number;
}

/** In-memory registry: one waiter per state, plus one single-slot waiter. */
export class WaiterRegistry implements CallbackRouter {
  readonly #byState = new Map<string, Waiter>();
  #single: Waiter | undefined;
  readonly #maxWaiters: number;
  readonly #delivered: RecentStates;

  /** @param options Limits. */
  constructor(options: RegistryOptions = {}) {
    this.#maxWaiters = options.maxWaiters ?? Infinity;
    this.#delivered = new RecentStates(
      options.rememberDeliveredCount ?? 10_000,
      options.rememberDeliveredMs ?? 10 * 60_000,
    );
  }

  /** How many clients are waiting. */
  get waiting(): number {
    return this.#byState.size + (this.#single ? 1 : 0);
  }

  /**
   * Adds a waiter. A single-slot waiter replaces the previous one, which is
   * ended as superseded.
   *
   * @throws {RegistrationError} `state_taken` when another client waits for the state.
   */
  add(waiter: Waiter): void {
    const previous = waiter.state === null ? this.#single : undefined;
    if (this.waiting - (previous ? 1 : 0) >= this.#maxWaiters) {
      throw new RegistrationError(
        "too_many_waiters",
        `The relay already holds ${this.#maxWaiters} waiting clients; try again later`,
      );
    }
    if (waiter.state === null) {
      this.#single = waiter;
      previous?.end("superseded", "Superseded: a newer client registered without a state (single-slot mode)");
      return;
    }
    if (this.wasDelivered(waiter.state)) {
      // A replayed old callback must not find a new waiter for a used state (RFC 6749 §10.12).
      throw new RegistrationError(
        "state_used",
        "This state was already used for a completed authorization; start again with a fresh random state",
      );
    }
    if (this.#byState.has(waiter.state)) {
      // First come keeps its place: a second registration must not steal a code.
      throw new RegistrationError("state_taken", "Another client is already waiting for this state");
    }
    this.#byState.set(waiter.state, waiter);
  }

  /** Removes `waiter` if it still holds its place. */
  remove(waiter: Waiter): boolean {
    if (waiter.state === null) {
      if (this.#single !== waiter) return false;
      this.#single = undefined;
      return true;
    }
    if (this.#byState.get(waiter.state) !== waiter) return false;
    return this.#byState.delete(waiter.state);
  }

  /** Removes and returns the waiter for `state`, so no one else can claim it. */
  take(state: string | null): Waiter | undefined {
    if (state === null) {
      const waiter = this.#single;
      this.#single = undefined;
      return waiter;
    }
    const waiter = this.#byState.get(state);
    if (waiter) this.#byState.delete(state);
    return waiter;
  }

  /** Every current waiter, e.g. to tell them the relay stops. */
  all(): Waiter[] {
    return [...this.#byState.values(), ...(this.#single ? [this.#single] : [])];
  }

  /**
   * Delivers `result` to its waiter. Taking the waiter out of the map is
   * synchronous, so two parallel callbacks for one state deliver once
   * (RFC 9700 §4.2.4).
   */
  async deliver(result: OAuthCallbackResult): Promise<DeliveryOutcome> {
    const waiter = this.take(result.state);
    if (!waiter) return this.wasDelivered(result.state) ? "already_delivered" : "no_waiter";
    if (!await waiter.deliver(result)) return "no_waiter";
    if (result.state !== null) this.#delivered.add(result.state);
    return "delivered";
  }

  /** Whether a callback for `state` was delivered recently (bounded in time and count). */
  wasDelivered(state: string | null): boolean {
    return state !== null && this.#delivered.has(state);
  }
}

/**
 * States remembered for `maxAgeMs`, at most `maxCount` of them, the oldest
 * forgotten first. A queue keeps the age order: finding the oldest entry of a
 * `Map` by iterating it walks past every entry deleted since the map last
 * compacted, which made each delivery scan thousands of them.
 */
class RecentStates {
  readonly #entries = new Map<string, { state: string; at: number }>();
  /** Entries oldest first; an entry whose state was remembered again since is stale. */
  #queue: Array<{ state: string; at: number }> = [];
  #head = 0;
  readonly #maxCount: number;
  readonly #maxAgeMs: number;

  constructor(maxCount: number, maxAgeMs: number) {
    this.#maxCount = maxCount;
    this.#maxAgeMs = maxAgeMs;
  }

  has(state: string): boolean {
    const entry = this.#entries.get(state);
    return entry !== undefined && Date.now() - entry.at < this.#maxAgeMs;
  }

  add(state: string): void {
    const now = Date.now();
    const entry = { state, at: now };
    this.#entries.set(state, entry);
    this.#queue.push(entry);
    while (this.#head < this.#queue.length) {
      const oldest = this.#queue[this.#head];
      const current = this.#entries.get(oldest.state) === oldest;
      if (current && this.#entries.size <= this.#maxCount && now - oldest.at < this.#maxAgeMs) break;
      if (current) this.#entries.delete(oldest.state);
      this.#head++;
    }
    // Drop the forgotten front now and then, so the queue stays about as long as the map.
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
