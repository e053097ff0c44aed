/**
 * The transport {@linkcode waitForCode} uses when the caller names none: the
 * relay's URL means HTTPS, otherwise this runtime's sockets.
 *
 * @module
 */

import { denoTransport } from "./deno.ts";
import { httpsTransport } from "./https.ts";
import type { Transport } from "./transport.ts";

const https = httpsTransport();

/** HTTPS for a relay URL, the socket transport of the runtime (Deno today) otherwise. */
export const defaultTransport: Transport = {
  open: (address, registration) =>
    address.transport === "https" ? https.open(address, registration) : denoTransport.open(address, registration),
};
