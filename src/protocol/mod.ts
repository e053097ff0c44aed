// This module is browser compatible.

/**
 * The protocol both sides speak, from one definition: message types and
 * their encoding, framing, error codes, limits and the coordinator address.
 * No runtime APIs. The normative text is `docs/protocol.md`.
 *
 * @module
 */

export * from "./address.ts";
export * from "./auth.ts";
export * from "./codes.ts";
export * from "./framing.ts";
export * from "./limits.ts";
export * from "./messages.ts";
