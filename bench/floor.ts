/**
 * The floor: a bare `Deno.serve` that answers every request with 200. Prints
 * its port on stdout once it listens; stops when stdin closes.
 *
 * @module
 */

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(JSON.stringify({ id: 0, ev: "listening", port })),
}, () => new Response("ok"));

// The parent closes stdin to stop the floor.
for await (const _ of Deno.stdin.readable) { /* nothing to read */ }
await server.shutdown();
