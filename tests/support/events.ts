/**
 * A raw `text/event-stream` body read event by event, for tests that look at
 * the relay's wait stream below the client library.
 *
 * @module
 */

/** One event of a wait stream: its name and its JSON data. */
export interface StreamEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Reads the events of `body`. */
export interface EventReader {
  /** The next event (comments skipped), or null at the end of the stream. */
  next(): Promise<StreamEvent | null>;
  /** The raw text of the next chunk, comments included. */
  chunk(): Promise<string>;
  /** Stops reading; the stream is cancelled. */
  close(): Promise<void>;
}

/**
 * Reads `body` as server-sent events.
 *
 * @param body A `POST /v1/wait` response's body.
 * @returns The reader.
 */
export function readEvents(body: ReadableStream<Uint8Array>): EventReader {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async next() {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(":")) continue;
          const event = /^event: (.*)$/m.exec(block)![1];
          return { event, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]) };
        }
        const { done, value } = await reader.read();
        if (done) return null;
        buffer += value;
      }
    },
    async chunk() {
      const { value } = await reader.read();
      return value ?? "";
    },
    async close() {
      await reader.cancel().catch(() => {});
    },
  };
}
