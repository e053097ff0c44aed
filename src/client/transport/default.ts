/**
 * The transport {@linkcode waitForCode} uses when the caller names none.
 *
 * @module
 */

import { denoTransport } from "./deno.ts";
import type { Transport } from "./transport.ts";

/** The socket transport of the runtime this runs on (Deno today). */
export const defaultTransport: Transport = denoTransport;
