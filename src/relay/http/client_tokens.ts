/**
 * The bearer tokens remote clients present on `POST /v1/wait`. The relay
 * keeps only their SHA-256, compares in constant time, and names a token in
 * logs by a short fingerprint, never by the token.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";

/** Shortest client token accepted: 32 characters (e.g. `openssl rand -hex 32` gives 64). */
export const MIN_CLIENT_TOKEN_LENGTH = 32;

/** What a request's `Authorization` header amounts to. */
export type BearerCheck =
  | { ok: true; fingerprint: string }
  | { ok: false; reason: "missing" | "wrong" };

function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** The set of valid client tokens, as digests. */
export class ClientTokens {
  readonly #digests: Uint8Array[];

  /** @param tokens The tokens, each at least {@linkcode MIN_CLIENT_TOKEN_LENGTH} characters. */
  constructor(tokens: readonly string[]) {
    this.#digests = tokens.map(sha256);
  }

  /** How many tokens there are. */
  get size(): number {
    return this.#digests.length;
  }

  /**
   * Checks an `Authorization: Bearer …` header (RFC 6750 §2.1).
   *
   * @param header The header's value, or `null`.
   * @returns Whether it carries a valid token, and that token's fingerprint.
   */
  check(header: string | null): BearerCheck {
    const match = header?.match(/^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i);
    if (!match) return { ok: false, reason: "missing" };
    const presented = sha256(match[1]);
    // Every digest is compared, equal lengths, so the time says nothing about which token is close.
    let found: Uint8Array | undefined;
    for (const digest of this.#digests) if (timingSafeEqual(digest, presented)) found = digest;
    return found ? { ok: true, fingerprint: fingerprint(found) } : { ok: false, reason: "wrong" };
  }
}

/** The first 8 hex digits of the token's SHA-256: enough to tell tokens apart in a log, useless to an attacker. */
function fingerprint(digest: Uint8Array): string {
  return [...digest.subarray(0, 4)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
