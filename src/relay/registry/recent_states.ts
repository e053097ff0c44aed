/**
 * A bounded memory of delivered states, to tell a replay from an unknown state.
 *
 * @module
 */

/**
 * States remembered for `maxAgeMs`, at most `maxCount` of them, the oldest
 * forgotten first. A queue keeps the age order: finding the oldest entry of a
 * `Map` by iterating it walks past every entry deleted since the map last
 * compacted, which made each delivery scan thousands of them.
 */
export class RecentStates {
  readonly #entries = new Map<string, { state: string; at: number }>();
  /** Entries oldest first; an entry whose state was remembered again since is stale. */
  #queue: Array<{ state: string; at: number }> = [];
  #head = 0;
  readonly #maxCount: number;
  readonly #maxAgeMs: number;

  /**
   * @param maxCount Most states remembered.
   * @param maxAgeMs How long a state is remembered.
   */
  constructor(maxCount: number, maxAgeMs: number) {
    this.#maxCount = maxCount;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Whether `state` was remembered less than `maxAgeMs` ago. */
  has(state: string): boolean {
    const entry = this.#entries.get(state);
    return entry !== undefined && Date.now() - entry.at < this.#maxAgeMs;
  }

  /** Remembers `state` now, forgetting the oldest beyond the bounds. */
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
