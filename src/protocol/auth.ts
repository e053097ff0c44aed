// This module is browser compatible.

/**
 * The coordinator token handshake: each side proves it knows the shared token
 * by an HMAC over both sides' random nonces, so the token never crosses the
 * wire and a relay that does not know it cannot pass for the real one.
 *
 * ```
 * client → relay   hello      { nonce: Nc }
 * relay  → client  challenge  { nonce: Nr, proof: HMAC(token, "oauth-relay v2 relay Nc Nr") }
 * client → relay   register   { …, proof: HMAC(token, "oauth-relay v2 client Nr Nc") }
 * ```
 *
 * The role label and the order of the nonces differ between the two proofs,
 * so one side's proof can never be replayed as the other's.
 *
 * @module
 */

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * A fresh nonce: 32 random bytes, base64url without padding.
 *
 * @returns 43 characters.
 *
 * @example
 * ```ts
 * import { newNonce } from "./auth.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(newNonce(), /^[A-Za-z0-9_-]{43}$/);
 * ```
 */
export function newNonce(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * The proof of `role` over the nonces, in the order the handshake fixes:
 * the relay proves over (client nonce, relay nonce), the client over
 * (relay nonce, client nonce).
 *
 * @param token The shared coordinator token.
 * @param role Who proves.
 * @param clientNonce The nonce of the client's `hello`.
 * @param relayNonce The nonce of the relay's `challenge`.
 * @returns HMAC-SHA256, base64url.
 *
 * @example
 * ```ts
 * import { newNonce, proofOf } from "./auth.ts";
 * import assert from "node:assert/strict";
 *
 * const [client, relay] = [newNonce(), newNonce()];
 * const a = await proofOf("a-long-shared-secret", "relay", client, relay);
 * assert.equal(a, await proofOf("a-long-shared-secret", "relay", client, relay));
 * assert.notEqual(a, await proofOf("a-long-shared-secret", "client", client, relay));
 * ```
 */
export async function proofOf(
  token: string,
  role: "relay" | "client",
  clientNonce: string,
  relayNonce: string,
): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(token), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const [first, second] = role === "relay" ? [clientNonce, relayNonce] : [relayNonce, clientNonce];
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`oauth-relay v2 ${role} ${first} ${second}`));
  return base64url(new Uint8Array(mac));
}

/**
 * Compares a presented proof with the expected one in time that does not
 * depend on where they differ.
 *
 * @param expected The proof computed here.
 * @param presented What the other side sent, if anything.
 * @returns Whether they are equal.
 *
 * @example
 * ```ts
 * import { proofMatches } from "./auth.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(proofMatches("abc", "abc"));
 * assert.ok(!proofMatches("abc", "abd"));
 * assert.ok(!proofMatches("abc", undefined));
 * ```
 */
export function proofMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined || presented.length !== expected.length) return false;
  let difference = 0;
  for (let i = 0; i < expected.length; i++) difference |= expected.charCodeAt(i) ^ presented.charCodeAt(i);
  return difference === 0;
}
