/**
 * The transport {@linkcode waitForCode} uses when the caller names none: the
 * relay's URL means HTTPS, otherwise this runtime's sockets, chosen at run
 * time: `Deno.connect` on Deno, `node:net` elsewhere (Node, Bun).
 *
 * Deno runs `node:net` too, but not for free (`bench/node_net.ts`, Deno
 * 2.9): loading it costs a Deno program about 14 ms and 3 MB more at start,
 * and a register round trip on the Unix socket takes 0.20 ms instead of 0.14
 * (median). So each runtime loads only its own adapter: `node.ts` is imported
 * on first use, and never on Deno.
 *
 * @module
 */

import { onDeno } from "../env.ts";
import { denoTransport } from "./deno.ts";
import { httpsTransport } from "./https.ts";
import type { Transport } from "./transport.ts";

const https = httpsTransport();

let nodeSockets: Promise<Transport> | undefined;

/** The socket transport of this runtime. */
function sockets(): Transport | Promise<Transport> {
  if (onDeno) return denoTransport;
  return nodeSockets ??= import("./node.ts").then((module) => module.nodeTransport);
}

/**
 * HTTPS for a relay URL, the socket transport of the runtime otherwise.
 *
 * @example
 * ```ts
 * import { defaultTransport } from "./default.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   defaultTransport.open({ transport: "unix", path: "/nonexistent/relay.sock" }, { state: "s", timeout: 1 }),
 *   ConnectError,
 * );
 * ```
 */
export const defaultTransport: Transport = {
  async open(address, registration) {
    if (address.transport === "https") return await https.open(address, registration);
    return await (await sockets()).open(address, registration);
  },
};
