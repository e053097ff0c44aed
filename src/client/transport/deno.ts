/**
 * The client's only contact with the runtime: opening a connection to the
 * coordinator and reading `OAUTH_*` variables. Everything else in the
 * client is Web APIs, so another runtime needs only another transport.
 *
 * @module
 */

import type { CoordinatorAddress } from "../settings.ts";

/** A byte stream to the coordinator. */
export interface ClientConnection {
  /** The next bytes the relay sent, or `null` once it closed the connection. */
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  close(): void;
}

/** Bytes asked for per read: a relay message is usually a few hundred. */
const READ_BYTES = 4 * 1024;

/** Opens a connection to the coordinator at `address`. */
export async function connect(address: CoordinatorAddress): Promise<ClientConnection> {
  const conn = address.transport === "unix"
    ? await Deno.connect({ transport: "unix", path: address.path })
    : await Deno.connect({ transport: "tcp", hostname: address.hostname, port: address.port });
  let closed = false;
  return {
    // Plain reads, not conn.readable: a client reads twice per connection, and
    // setting up and cancelling a stream cost more than the rest of the wait.
    async read() {
      const buffer = new Uint8Array(READ_BYTES);
      const n = await conn.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    },
    async write(bytes) {
      for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

/** Describes a connection failure in a few lower-case words. */
export function describeConnectError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such socket";
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) {
    return "network or file access not granted (run with --allow-net, --allow-read and --allow-write)";
  }
  return error instanceof Error ? error.message.replace(/\s*\(os error \d+\).*$/s, "") : String(error);
}
