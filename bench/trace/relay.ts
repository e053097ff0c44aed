/**
 * The relay of `bench/trace.ts`: a real relay (`startRelay`, the code
 * `server.ts` runs), with timestamps taken around it from the outside, so
 * that nothing in the relay's own code changes for the measurement:
 *
 * - `entry`: the HTTP engine hands a callback request to the relay's handler;
 * - `write`: the relay starts writing the callback to the waiter (a socket
 *   write, or an event enqueued on a remote waiter's stream);
 * - `written`: that socket write resolved (socket modes only);
 * - `answered`: the handler's response is ready.
 *
 * Usage: `relay.ts unix|http`. Prints `{"port", "socket"}` once it listens,
 * then, when stdin closes, every timestamp list as one JSON line.
 *
 * @module
 */

import { resolveSettings } from "../../src/client/wait.ts";
import { createLogger } from "../../src/relay/log.ts";
import { startRelay } from "../../src/relay/relay.ts";
import { now } from "../common.ts";
import { CLIENT_TOKEN, isCallbackEvent, isCallbackLine } from "./common.ts";

const mode = Deno.args[0];
const stamps: Record<string, number[]> = { entry: [], write: [], written: [], answered: [] };

// The handler: wrap the per-connection engine's entry point before the relay takes it.
const internal = (Deno as unknown as Record<symbol, Record<string, unknown>>)[
  (Deno as unknown as { internal: symbol }).internal
];
const serveOnConnection = internal.serveHttpOnConnection as (...args: unknown[]) => unknown;
internal.serveHttpOnConnection = (
  conn: unknown,
  signal: unknown,
  handler: (request: Request, info: unknown) => Promise<Response>,
  ...rest: unknown[]
) =>
  serveOnConnection(conn, signal, (request: Request, info: unknown) => {
    if (!request.url.includes("/oauth/callback")) return handler(request, info);
    stamps.entry.push(now());
    const answer = handler(request, info);
    answer.then(() => stamps.answered.push(now()));
    return answer;
  }, ...rest);

const dir = await Deno.makeTempDir({ prefix: "oauth-relay-trace-" });
if (mode === "unix") {
  // Every socket connection shares one prototype: find it on a throwaway pair, wrap its write.
  const path = `${dir}/probe.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const probe = await Deno.connect({ transport: "unix", path });
  const prototype = Object.getPrototypeOf(probe);
  const write = prototype.write;
  prototype.write = function (this: Deno.Conn, bytes: Uint8Array) {
    const traced = isCallbackLine(bytes);
    if (traced) stamps.write.push(now());
    const written = write.call(this, bytes);
    if (traced) written.then(() => stamps.written.push(now()));
    return written;
  };
  probe.close();
  listener.close();
} else {
  const prototype = ReadableStreamDefaultController.prototype;
  const enqueue = prototype.enqueue;
  prototype.enqueue = function (this: ReadableStreamDefaultController, chunk: Uint8Array) {
    if (isCallbackEvent(chunk)) stamps.write.push(now());
    return enqueue.call(this, chunk);
  };
}

const settings = { ...resolveSettings({ socketPath: `${dir}/relay.sock`, useTcp: false }), logUnmatched: false };
const relay = await startRelay({
  settings,
  port: 0,
  logger: createLogger("warn"),
  ...(mode === "http" ? { clientTokens: [CLIENT_TOKEN], maxWaitersPerToken: 1_000_000 } : {}),
});
console.log(JSON.stringify({ port: Number(new URL(relay.url).port), socket: settings.socketPath }));
for await (const _ of Deno.stdin.readable) { /* the parent closes stdin to stop us */ }
console.log(JSON.stringify(stamps));
await relay[Symbol.asyncDispose]();
await Deno.remove(dir, { recursive: true });
