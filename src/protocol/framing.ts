// This module is browser compatible.

/**
 * Framing: a byte stream cut into bounded lines.
 *
 * @module
 */

import { MAX_LINE_BYTES } from "./limits.ts";
import { ProtocolError } from "./messages.ts";

/**
 * Splits a byte stream into lines, each at most `maxLineBytes`. Feed chunks
 * with {@linkcode LineSplitter.push}; it returns the complete lines they
 * finish. An unfinished line is kept in one buffer that grows to the limit,
 * so a peer sending one byte at a time costs no more than one long line.
 */
export class LineSplitter {
  #buffer = new Uint8Array(0);
  #length = 0;
  readonly #max: number;

  /** @param maxLineBytes Longest accepted line, newline excluded. */
  constructor(maxLineBytes: number = MAX_LINE_BYTES) {
    this.#max = maxLineBytes;
  }

  /** Bytes of an unfinished line held. */
  get pending(): number {
    return this.#length;
  }

  /**
   * Adds a chunk and returns the lines it completes. The chunk may be reused
   * by the caller afterwards: returned lines never point into it.
   *
   * @throws {ProtocolError} When a line grows past the limit; the splitter must then be dropped.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const lines: Uint8Array[] = [];
    let start = 0;
    for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, end);
      this.#check(piece.length);
      const line = new Uint8Array(this.#length + piece.length);
      line.set(this.#buffer.subarray(0, this.#length));
      line.set(piece, this.#length);
      lines.push(line);
      this.#length = 0;
      start = end + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#check(rest.length);
      if (this.#length + rest.length > this.#buffer.length) {
        const grown = new Uint8Array(
          Math.min(this.#max, Math.max(256, this.#buffer.length * 2, this.#length + rest.length)),
        );
        grown.set(this.#buffer.subarray(0, this.#length));
        this.#buffer = grown;
      }
      this.#buffer.set(rest, this.#length);
      this.#length += rest.length;
    }
    if (this.#length === 0 && this.#buffer.length > 4096) this.#buffer = new Uint8Array(0);
    return lines;
  }

  #check(extra: number) {
    if (this.#length + extra > this.#max) {
      throw new ProtocolError(`Line longer than ${this.#max} bytes`);
    }
  }
}

/** Anything bytes can be written to, as `Deno.Conn` is: each write may take only part of them. */
export interface Writer {
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * Writes all of `bytes`, however many calls it takes.
 *
 * @param writer Where to write, e.g. a `Deno.Conn`.
 * @param bytes What to write.
 *
 * @example
 * ```ts
 * import { writeAll } from "./framing.ts";
 * import assert from "node:assert/strict";
 *
 * const seen: number[] = [];
 * // A writer that takes at most two bytes per call.
 * await writeAll({ write: (bytes) => Promise.resolve(seen.push(...bytes.subarray(0, 2)) && Math.min(2, bytes.length)) }, new Uint8Array([1, 2, 3, 4, 5]));
 * assert.deepEqual(seen, [1, 2, 3, 4, 5]);
 * ```
 */
export async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await writer.write(bytes.subarray(offset));
}
