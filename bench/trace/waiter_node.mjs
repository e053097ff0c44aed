/**
 * The waiter of `bench/trace.ts` on Node: the same as `waiter.ts`, through
 * the npm build of the client (`deno task build:npm` writes `dist/npm`), so
 * that the Deno client and the Node client of the same protocol can be
 * compared stage by stage.
 *
 * Usage: `node waiter_node.mjs '<settings JSON>' COUNT`.
 *
 * @module
 */

import { existsSync } from "node:fs";
import { Socket } from "node:net";

// The build, not the source: Node cannot run TypeScript. Loaded by URL, as it exists only after the build.
const built = new URL("../../dist/npm/mod.js", import.meta.url);
if (!existsSync(built)) {
  console.error("bench/trace: no dist/npm here; run `deno task build:npm` before tracing the Node client");
  process.exit(2);
}
const { waitForCode } = await import(built.href);

const now = () => performance.timeOrigin + performance.now();
const settings = JSON.parse(process.argv[2]);
const count = Number(process.argv[3]);
const stamps = { read: [], resolved: [] };
const state = (i) => `trace.${i}`.padEnd(32, "s");
const head = (bytes, n) => Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(n, bytes.length)).toString("latin1");

if (settings.relayUrl === undefined) {
  // A socket's bytes reach its readers through push(): stamp the one that carries the callback.
  const push = Socket.prototype.push;
  Socket.prototype.push = function (chunk, encoding) {
    if (chunk && chunk.length > 40 && head(chunk, 40).includes('"callback"')) stamps.read.push(now());
    return push.call(this, chunk, encoding);
  };
} else {
  const read = ReadableStreamDefaultReader.prototype.read;
  ReadableStreamDefaultReader.prototype.read = function () {
    return read.call(this).then((result) => {
      const value = result.value;
      if (value instanceof Uint8Array && value.length > 40 && head(value, 15) === "event: callback") {
        stamps.read.push(now());
      }
      return result;
    });
  };
}

for (let i = 0; i < count; i++) {
  const result = await waitForCode({
    state: state(i),
    timeout: 60,
    settings,
    onRegistered: () => process.stdout.write(`registered ${i}\n`),
  });
  stamps.resolved.push(now());
  if (!result.success) throw new Error(`No code for ${state(i)}`);
}
process.stdout.write(JSON.stringify(stamps) + "\n");
