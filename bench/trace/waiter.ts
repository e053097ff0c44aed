/**
 * The waiter of `bench/trace.ts`: `waitForCode()` one state after another,
 * with timestamps taken from the outside:
 *
 * - `read`: the read that brought the callback returned (a socket read, or
 *   a chunk of the remote event stream);
 * - `resolved`: `await waitForCode()` returned, in the program.
 *
 * Usage: `waiter.ts '<settings JSON>' COUNT`. Prints `registered i` when the
 * i-th wait is registered, and the timestamps as one JSON line at the end.
 *
 * @module
 */

import { waitForCode } from "../../src/client/wait.ts";
import { now } from "../common.ts";
import { isCallbackEvent, isCallbackLine, traceState } from "./common.ts";

const settings = JSON.parse(Deno.args[0]);
const count = Number(Deno.args[1]);
const stamps: Record<string, number[]> = { read: [], resolved: [] };
const encoder = new TextEncoder();

if (settings.relayUrl === undefined) {
  const path = `${settings.socketPath}.probe`;
  const listener = Deno.listen({ transport: "unix", path });
  const probe = await Deno.connect({ transport: "unix", path });
  const prototype = Object.getPrototypeOf(probe);
  const read = prototype.read;
  prototype.read = function (this: Deno.Conn, buffer: Uint8Array) {
    return read.call(this, buffer).then((n: number | null) => {
      if (n !== null && isCallbackLine(buffer.subarray(0, n))) stamps.read.push(now());
      return n;
    });
  };
  probe.close();
  listener.close();
} else {
  const prototype = ReadableStreamDefaultReader.prototype;
  const read = prototype.read;
  prototype.read = function (this: ReadableStreamDefaultReader) {
    return read.call(this).then((result: ReadableStreamReadResult<unknown>) => {
      if (result.value instanceof Uint8Array && isCallbackEvent(result.value)) stamps.read.push(now());
      return result;
    });
  };
}

for (let i = 0; i < count; i++) {
  const result = await waitForCode({
    state: traceState(i),
    timeout: 60,
    settings,
    onRegistered: () => Deno.stdout.writeSync(encoder.encode(`registered ${i}\n`)),
  });
  stamps.resolved.push(now());
  if (!result.success) throw new Error(`No code for ${traceState(i)}`);
}
Deno.stdout.writeSync(encoder.encode(JSON.stringify(stamps) + "\n"));
