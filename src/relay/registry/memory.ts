/**
 * The in-memory registry: one waiter per state plus one single-slot waiter,
 * in this process. The default registry of a single relay.
 *
 * @module
 */

import { DEFAULT_MAX_WAITERS, ERROR_CODES, type OAuthCallbackResult } from "../../protocol/mod.ts";
import { RecentStates } from "./recent_states.ts";
import {
  type DeliveryOutcome,
  REFUSALS,
  type Registry,
  type RegistryStatus,
  type RemoteTicket,
  type ResumeOutcome,
  type Waiter,
} from "./registry.ts";

/** Options of {@linkcode MemoryRegistry}. */
export interface MemoryRegistryOptions {
  /** Most waiters held at once; further registrations are refused. Default 10,000. */
  maxWaiters?: number;
  /** How long a delivered state is remembered, to tell a replay from an unknown state. Default 10 minutes. */
  rememberDeliveredMs?: number;
  /** How many delivered states are remembered at most (oldest forgotten first). Default 10,000. */
  rememberDeliveredCount?: number;
}

/**
 * In-memory {@linkcode Registry}.
 *
 * @example
 * ```ts
 * import { MemoryRegistry } from "./memory.ts";
 * import assert from "node:assert/strict";
 *
 * const registry = new MemoryRegistry({ maxWaiters: 10 });
 * let got = "";
 * await registry.register({
 *   state: "s1",
 *   deliver: (result) => Promise.resolve(Boolean(got = result.code!)),
 *   end: () => Promise.resolve(),
 * });
 * assert.equal(await registry.claim({ success: true, code: "c", state: "s1", raw: {} }), "delivered");
 * assert.equal(got, "c");
 * assert.equal(await registry.claim({ success: true, code: "c", state: "s1", raw: {} }), "already_delivered");
 * ```
 */
export class MemoryRegistry implements Registry {
  readonly #byState = new Map<string, Waiter>();
  #single: Waiter | undefined;
  readonly #maxWaiters: number;
  readonly #delivered: RecentStates;

  /** @param options Limits. */
  constructor(options: MemoryRegistryOptions = {}) {
    this.#maxWaiters = options.maxWaiters ?? DEFAULT_MAX_WAITERS;
    this.#delivered = new RecentStates(
      options.rememberDeliveredCount ?? 10_000,
      options.rememberDeliveredMs ?? 10 * 60_000,
    );
  }

  #waiting(): number {
    return this.#byState.size + (this.#single ? 1 : 0);
  }

  /** How many clients are waiting. */
  count(): Promise<number> {
    return Promise.resolve(this.#waiting());
  }

  /**
   * Registers `waiter`. Checks and insertion happen in one synchronous step,
   * so two registrations for one state cannot both pass.
   */
  register(waiter: Waiter): Promise<void> {
    const previous = waiter.state === null ? this.#single : undefined;
    if (this.#waiting() - (previous ? 1 : 0) >= this.#maxWaiters) {
      return Promise.reject(REFUSALS.full(this.#maxWaiters));
    }
    if (waiter.state === null) {
      this.#single = waiter;
      previous?.end(
        ERROR_CODES.SUPERSEDED,
        "Superseded: a newer client registered without a state (single-slot mode)",
      );
      return Promise.resolve();
    }
    if (this.#delivered.has(waiter.state)) return Promise.reject(REFUSALS.stateUsed());
    if (this.#byState.has(waiter.state)) return Promise.reject(REFUSALS.stateTaken());
    this.#byState.set(waiter.state, waiter);
    return Promise.resolve();
  }

  /**
   * Hands the registration of `waiter.state` to `waiter` when it was
   * registered remotely with the same resume secret. A hash of a 256-bit
   * secret is compared, so a plain comparison leaks nothing worth a guess.
   */
  resume(waiter: Waiter & { remote: RemoteTicket }): Promise<ResumeOutcome> {
    if (waiter.state === null) return Promise.resolve({ kind: "refused" });
    const held = this.#byState.get(waiter.state);
    if (!held) return Promise.resolve({ kind: "absent" });
    if (held.remote?.resumeHash !== waiter.remote.resumeHash) return Promise.resolve({ kind: "refused" });
    this.#byState.set(waiter.state, waiter);
    held.moved?.();
    return Promise.resolve({ kind: "resumed", expiresAt: held.expiresAt ?? waiter.expiresAt ?? Date.now() });
  }

  /** Removes `waiter` if it still holds its place. */
  release(waiter: Waiter): Promise<void> {
    if (waiter.state === null) {
      if (this.#single === waiter) this.#single = undefined;
    } else if (this.#byState.get(waiter.state) === waiter) {
      this.#byState.delete(waiter.state);
    }
    return Promise.resolve();
  }

  /**
   * Takes the waiter out of the map before the first `await`, so of two
   * parallel callbacks for one state only one finds it (RFC 9700 §4.2.4).
   */
  async claim(result: OAuthCallbackResult): Promise<DeliveryOutcome> {
    const { state } = result;
    let waiter: Waiter | undefined;
    if (state === null) {
      waiter = this.#single;
      this.#single = undefined;
    } else {
      waiter = this.#byState.get(state);
      if (waiter) this.#byState.delete(state);
    }
    if (!waiter) return state !== null && this.#delivered.has(state) ? "already_delivered" : "no_waiter";
    if (!await waiter.deliver(result)) return "no_waiter";
    if (state !== null) this.#delivered.add(state);
    return "delivered";
  }

  /** Every current waiter. */
  local(): Waiter[] {
    return [...this.#byState.values(), ...(this.#single ? [this.#single] : [])];
  }

  /** Always available: it lives in this process. */
  status(): Promise<RegistryStatus> {
    return Promise.resolve({ ok: true, waiting: this.#waiting() });
  }

  /** Nothing outlives this process: waiters are released as they end. */
  retire(): Promise<void> {
    return Promise.resolve();
  }

  /** Holds no resources. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
