/**
 * The Deno adapter of the socket transport: the only client file that calls
 * `Deno.*`. It opens a Unix socket or TCP connection to the coordinator.
 *
 * @module
 */

import { type CoordinatorAddress, writeAll } from "../../protocol/mod.ts";
import { type ByteStream, socketTransport } from "./socket.ts";
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
      // Another local user can create the socket path first, or bind it while the relay restarts:
      // check who owns it before connecting, and that it is still the same file afterwards.
      const before = await trustedSocket(address.path, address.relayUid);
      conn = await Deno.connect({ transport: "unix", path: address.path });
      const after = await trustedSocket(address.path, address.relayUid).catch((error) => {
        conn.close();
        throw error;
      });
      if (after.dev !== before.dev || after.ino !== before.ino) {
        conn.close();
        throw new ConnectError(`the socket at ${address.path} was replaced while connecting; refusing it`, {
          untrusted: true,
        });
      }
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

/**
 * The identity of the socket at `path` when it is one this client may talk
 * to: a socket owned by this user, by root, or by `relayUid`.
 *
 * @throws {ConnectError} `untrusted` when the file is not a socket or someone else owns it.
 */
async function trustedSocket(path: string, relayUid: number | undefined): Promise<{ dev: number; ino: number | null }> {
  const info = await Deno.lstat(path);
  if (!info.isSocket) {
    throw new ConnectError(`${path} is not a socket; refusing it`, { untrusted: true });
  }
  const owner = info.uid;
  // No owners on Windows: only the path's directory permissions protect it there.
  if (owner === null || owner === 0 || owner === relayUid) return { dev: info.dev, ino: info.ino };
  const me = ownUid();
  if (owner === me) return { dev: info.dev, ino: info.ino };
  if (me === undefined) {
    throw new ConnectError(
      `cannot tell whether the socket (owned by uid ${owner}) is yours: run with --allow-sys=uid, or set OAUTH_RELAY_UID=${owner} if that account runs the relay`,
      { untrusted: true },
    );
  }
  throw new ConnectError(
    `the socket is owned by uid ${owner}, not by this user (uid ${me}) or root; refusing it (set OAUTH_RELAY_UID=${owner} if that account runs the relay)`,
    { untrusted: true },
  );
}

/** This process's uid when the program may ask (`--allow-sys=uid`); never prompts. */
function ownUid(): number | undefined {
  try {
    if (Deno.permissions.querySync({ name: "sys", kind: "uid" }).state !== "granted") return undefined;
    return Deno.uid() ?? undefined;
  } catch {
    return undefined;
  }
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
