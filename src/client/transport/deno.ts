/**
 * The Deno adapter of the socket transport: the only client file that calls
 * `Deno.*`. It opens a Unix socket or TCP connection to the coordinator.
 *
 * @module
 */

import { type CoordinatorAddress, writeAll } from "../../protocol/mod.ts";
import { ownUid } from "../env.ts";
import { type ByteStream, socketTransport } from "./socket.ts";
import { connectTrusted } from "./socket_trust.ts";
import { ConnectError, type Transport } from "./transport.ts";

/** Bytes asked for per read: a relay message is usually a few hundred. */
const READ_BYTES = 4 * 1024;

/**
 * Opens a byte stream to the coordinator at `address` with `Deno.connect`.
 *
 * @param address The coordinator's Unix socket or TCP address.
 * @returns The open stream.
 * @throws {ConnectError} When the relay cannot be reached; `message` says why in a few words.
 *
 * @example
 * ```ts
 * import { connectDeno } from "./deno.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(connectDeno({ transport: "unix", path: "/nonexistent/relay.sock" }), ConnectError);
 * ```
 */
export async function connectDeno(address: CoordinatorAddress): Promise<ByteStream> {
  let conn: Deno.Conn;
  try {
    if (address.transport === "unix") {
      conn = await connectTrusted(address.path, address.relayUid, {
        lstat: async (path) => {
          const { isSocket, uid, dev, ino } = await Deno.lstat(path);
          return { isSocket: isSocket === true, uid, dev, ino };
        },
        ownUid,
        connect: (path) => Deno.connect({ transport: "unix", path }),
        close: (conn) => conn.close(),
      });
    } else if (address.transport === "tcp") {
      conn = await Deno.connect({ transport: "tcp", hostname: address.hostname, port: address.port });
    } else {
      throw new ConnectError(`a socket transport cannot reach ${address.url}`);
    }
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    const absent = error instanceof Deno.errors.NotFound || error instanceof Deno.errors.ConnectionRefused;
    throw new ConnectError(describeConnectError(error), { cause: error, absent });
  }
  let closed = false;
  return {
    // Plain reads, not conn.readable: a client reads twice per connection, and
    // setting up and cancelling a stream cost more than the rest of the wait.
    async read() {
      const buffer = new Uint8Array(READ_BYTES);
      const n = await conn.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    },
    write: (bytes) => writeAll(conn, bytes),
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

/**
 * The coordinator protocol over `Deno.connect`.
 *
 * @example
 * ```ts
 * import { denoTransport } from "./deno.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   denoTransport.open({ transport: "unix", path: "/nonexistent/relay.sock" }, { state: "s", timeout: 1 }),
 *   ConnectError,
 * );
 * ```
 */
export const denoTransport: Transport = socketTransport(connectDeno);

/**
 * An OS error's message without Deno's `(os error N)` suffix, in lower case.
 *
 * @param error What a `Deno.*` call threw.
 * @returns A few words for a message.
 *
 * @example
 * ```ts
 * import { osErrorMessage } from "./deno.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(osErrorMessage(new Error("Address in use (os error 98)")), "address in use");
 * ```
 */
export function osErrorMessage(error: unknown): string {
  return error instanceof Error ? error.message.replace(/\s*\(os error \d+\).*$/s, "").toLowerCase() : String(error);
}

/** Describes a connection failure in a few lower-case words. */
function describeConnectError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such socket";
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) {
    // Deno names the missing permission in the first line of its message.
    const first = error.message.split("\n")[0].replace(/\.$/, "");
    return `permission not granted: ${first}`;
  }
  return osErrorMessage(error);
}
