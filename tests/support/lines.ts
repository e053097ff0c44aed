/**
 * A line reader for the JSON-lines channels between a parent process and its
 * children (the stress relay child, the benchmark's processes).
 *
 * @module
 */

/** The lines of a byte stream, as they complete (an unfinished last line is dropped). */
export async function* textLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let end;
    while ((end = pending.indexOf("\n")) !== -1) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 1);
    }
  }
}
