/**
 * The in-process catcher: what a program that cannot use a relay does
 * instead, with no hop at all. A bare `Deno.serve` inside the waiting
 * program, whose handler resolves the promise the program awaits for the
 * state, then answers 200. The zero-hop reference a user compares the relay
 * with: callback sent → that promise resolved, in this process.
 *
 * Prints `{"id":0,"ev":"listening","port":N}` once it listens. Commands (JSON
 * lines on stdin): `catch {state}` replies `registered` at once, then
 * `resolved {last}` with the time its promise resolved (`common.ts`'s clock).
 *
 * @module
 */

import { type Message, now, reply, serveCommands } from "./common.ts";

const waiting = new Map<string, (code: string) => void>();

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => reply({ id: 0, ev: "listening", port }),
}, (request) => {
  const query = new URL(request.url).searchParams;
  const state = query.get("state") ?? "";
  const resolve = waiting.get(state);
  if (!resolve) return new Response("no waiter", { status: 404 });
  waiting.delete(state);
  resolve(query.get("code") ?? "");
  return new Response("ok");
});

function handle(command: Message): void {
  if (command.op !== "catch") throw new Error(`Unknown command ${command.op}`);
  const { promise, resolve } = Promise.withResolvers<string>();
  waiting.set(command.state as string, resolve);
  // The program's own continuation: it has the code once this runs.
  promise.then(() => reply({ id: command.id, ev: "resolved", last: now() }));
  reply({ id: command.id, ev: "registered" });
}

await serveCommands(handle);
await server.shutdown();
