// This module is browser compatible.

/**
 * Where the coordinator listens: the one address type both sides use.
 *
 * @module
 */

/** Where the coordinator listens, as clients and `/health` see it. */
export type CoordinatorAddress =
  | {
    transport: "unix";
    path: string;
    /** A uid besides the client's own and root that may own the socket (`OAUTH_RELAY_UID`: a service account). */
    relayUid?: number;
  }
  | { transport: "tcp"; hostname: string; port: number }
  | {
    transport: "https";
    /** The relay's public base URL, e.g. `https://relay.example.com` (`http://` only on loopback). */
    url: string;
  };

/**
 * The address as one short string, for messages: a path, or `host:port`.
 *
 * @param address The coordinator's address.
 * @returns The path, or `host:port`.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./address.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatAddress({ transport: "tcp", hostname: "127.0.0.1", port: 9999 }), "127.0.0.1:9999");
 * ```
 */
export function formatAddress(address: CoordinatorAddress): string {
  if (address.transport === "unix") return address.path;
  if (address.transport === "https") return address.url;
  return `${address.hostname}:${address.port}`;
}

/**
 * Whether `host` can only be reached from this machine (RFC 8252 §8.3).
 *
 * @param host A host name or IP address, without brackets.
 * @returns `true` for `localhost`, `::1` and `127.0.0.0/8`.
 *
 * @example
 * ```ts
 * import { isLoopback } from "./address.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isLoopback("127.0.0.1"));
 * assert.ok(!isLoopback("0.0.0.0"));
 * ```
 */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

/** A coordinator address of the socket kind (Unix socket or TCP), as the relay listens. */
export type SocketAddress = Exclude<CoordinatorAddress, { transport: "https" }>;

/** The path of remote waiting on a relay's HTTP port (`POST` to wait, `DELETE` to cancel). */
export const WAIT_PATH = "/v1/wait";
