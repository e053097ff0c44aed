/**
 * The coordinator's connection budget. Registered waiters are bounded by the
 * registry; connections that have not registered yet get a small budget of
 * their own, so silent connections (what a flood is made of) can never lock
 * out a real client: when that budget is full, the oldest silent connection
 * makes room for the newest. Peers beyond loopback get a cap per address.
 *
 * @module
 */

import { isLoopback } from "../../protocol/mod.ts";

/** One connection as the budget sees it. */
export interface Budgeted {
  /** The remote host, or `null` for a Unix socket. */
  readonly host: string | null;
}

/** Limits of a {@linkcode ConnectionBudget}. */
export interface BudgetLimits {
  /** Most open connections, registered or not. */
  maxConnections: number;
  /** Most connections that have not registered yet. */
  maxPending: number;
  /** Most connections from one address beyond loopback. */
  maxPerPeer: number;
}

/** What to do with a connection just accepted. */
export type Admission<T> =
  | { admitted: true; evict?: T }
  | { admitted: false; reason: string };

/** Counts connections and decides which one goes when there are too many. */
export class ConnectionBudget<T extends Budgeted> {
  readonly #open = new Set<T>();
  /** Not yet registered, oldest first (a Set keeps insertion order). */
  readonly #pending = new Set<T>();
  readonly #perPeer = new Map<string, number>();
  readonly #limits: BudgetLimits;

  /** @param limits The caps. */
  constructor(limits: BudgetLimits) {
    this.#limits = limits;
  }

  /** Open connections. */
  get open(): number {
    return this.#open.size;
  }

  /** Connections that have not registered yet. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Every open connection. */
  all(): T[] {
    return [...this.#open];
  }

  /**
   * Admits `connection`, possibly at the cost of the oldest silent one
   * (`evict`, which the caller closes), or refuses it.
   */
  admit(connection: T): Admission<T> {
    const { host } = connection;
    const remote = host !== null && !isLoopback(host);
    if (remote && (this.#perPeer.get(host) ?? 0) >= this.#limits.maxPerPeer) {
      return { admitted: false, reason: `${this.#limits.maxPerPeer} connections from ${host} already open` };
    }
    let evict: T | undefined;
    if (this.#pending.size >= this.#limits.maxPending || this.#open.size >= this.#limits.maxConnections) {
      evict = this.#pending.values().next().value;
      if (evict === undefined) {
        return { admitted: false, reason: `${this.#limits.maxConnections} connections already open` };
      }
      this.release(evict);
    }
    this.#open.add(connection);
    this.#pending.add(connection);
    if (remote) this.#perPeer.set(host, (this.#perPeer.get(host) ?? 0) + 1);
    return { admitted: true, evict };
  }

  /** The connection has spoken: it no longer counts as silent. */
  heard(connection: T): void {
    this.#pending.delete(connection);
  }

  /** The connection closed (or was evicted). Safe to call twice. */
  release(connection: T): void {
    if (!this.#open.delete(connection)) return;
    this.#pending.delete(connection);
    const { host } = connection;
    if (host !== null && !isLoopback(host)) {
      const left = (this.#perPeer.get(host) ?? 1) - 1;
      if (left > 0) this.#perPeer.set(host, left);
      else this.#perPeer.delete(host);
    }
  }
}
