// This module is browser compatible.

/**
 * Whom a client trusts on a Unix socket, one rule for every runtime adapter
 * (`deno.ts`, `node.ts`): a socket owned by this user, by root, or by
 * `OAUTH_RELAY_UID`, and the same file before and after connecting. Another
 * local user can create the socket's path first, or bind it while the relay
 * restarts (see docs/security.md). The adapters supply the system calls.
 *
 * @module
 */

import { ConnectError } from "./transport.ts";

/** What the rule needs to know of the file at the socket's path, from `lstat` (which never follows a link). */
export interface SocketFileInfo {
  /** Whether the file is a socket. */
  isSocket: boolean;
  /** The owner's uid; `null` where files have none (Windows: only the directory's permissions protect it). */
  uid: number | null;
  /** The device the file is on. */
  dev: number;
  /** The file's inode; `null` where the system has none. */
  ino: number | null;
}

/** The system calls of one runtime that {@linkcode connectTrusted} needs. */
export interface TrustedSocketIo<Conn> {
  /** The file at `path`, without following a link; rejects as the system does (e.g. no such file). */
  lstat(path: string): Promise<SocketFileInfo>;
  /** This process's uid, or `undefined` when it may not be asked. */
  ownUid(): number | undefined;
  /** Connects to the socket at `path`. */
  connect(path: string): Promise<Conn>;
  /** Closes a connection made by `connect`. */
  close(conn: Conn): void;
}

/**
 * Connects to the Unix socket at `path` only when this client may talk to it:
 * checks the owner before connecting, and that the path still names the same
 * file afterwards, so a socket swapped in between is refused too.
 *
 * @param path The socket's path.
 * @param relayUid A uid besides this user's and root's that may own the socket (`OAUTH_RELAY_UID`).
 * @param io The runtime's system calls.
 * @returns The open connection.
 * @throws {ConnectError} `untrusted` when the file is not a socket, someone else owns it, or it was replaced.
 *   Errors of `io` (no such file, connection refused) pass through for the adapter to describe.
 *
 * @example A socket owned by another user is refused before connecting
 * ```ts
 * import { connectTrusted } from "./socket_trust.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * let connected = false;
 * const io = {
 *   lstat: () => Promise.resolve({ isSocket: true, uid: 4242, dev: 1, ino: 7 }),
 *   ownUid: () => 1000,
 *   connect: () => Promise.resolve(connected = true),
 *   close: () => {},
 * };
 * await assert.rejects(connectTrusted("/tmp/relay.sock", undefined, io), (error: unknown) => {
 *   assert.ok(error instanceof ConnectError && error.untrusted);
 *   assert.match(error.message, /owned by uid 4242, not by this user \(uid 1000\) or root/);
 *   return true;
 * });
 * assert.equal(connected, false);
 * ```
 *
 * @example A relay restarting swaps its socket once while the client connects: the next look finds it settled
 * ```ts
 * import { connectTrusted } from "./socket_trust.ts";
 * import assert from "node:assert/strict";
 *
 * const inodes = [7, 8, 8, 8];
 * let closed = 0;
 * const io = {
 *   lstat: () => Promise.resolve({ isSocket: true, uid: 1000, dev: 1, ino: inodes.shift()! }),
 *   ownUid: () => 1000,
 *   connect: () => Promise.resolve("conn"),
 *   close: () => void (closed += 1),
 * };
 * assert.equal(await connectTrusted("/tmp/relay.sock", undefined, io), "conn");
 * assert.equal(closed, 1);
 * ```
 *
 * @example A socket that keeps being swapped while connecting is refused, and each connection closed
 * ```ts
 * import { connectTrusted } from "./socket_trust.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * const inodes = [7, 8, 9, 10, 11, 12];
 * let closed = 0;
 * const io = {
 *   lstat: () => Promise.resolve({ isSocket: true, uid: 1000, dev: 1, ino: inodes.shift()! }),
 *   ownUid: () => 1000,
 *   connect: () => Promise.resolve("conn"),
 *   close: () => void (closed += 1),
 * };
 * await assert.rejects(connectTrusted("/tmp/relay.sock", undefined, io), (error: unknown) => {
 *   assert.ok(error instanceof ConnectError && error.untrusted);
 *   assert.equal(error.message, "the socket at /tmp/relay.sock was replaced while connecting; refusing it");
 *   return true;
 * });
 * assert.equal(closed, 3);
 * ```
 */
export async function connectTrusted<Conn>(
  path: string,
  relayUid: number | undefined,
  io: TrustedSocketIo<Conn>,
): Promise<Conn> {
  for (let attempt = 1;; attempt++) {
    const before = trusted(path, await io.lstat(path), relayUid, io.ownUid);
    const conn = await io.connect(path);
    let after: SocketFileInfo;
    try {
      after = trusted(path, await io.lstat(path), relayUid, io.ownUid);
    } catch (error) {
      io.close(conn);
      throw error;
    }
    if (after.dev === before.dev && after.ino === before.ino) return conn;
    io.close(conn);
    // Both files were trusted, but which one answered is unknown. A relay restarting puts its new socket in
    // place just so: look again, and refuse only a path that keeps changing.
    if (attempt === REPLACED_ATTEMPTS) {
      throw new ConnectError(`the socket at ${path} was replaced while connecting; refusing it`, { untrusted: true });
    }
  }
}

/** Connections tried while the socket's file keeps being replaced before the path is refused. */
const REPLACED_ATTEMPTS = 3;

/**
 * `info` when the file is a socket this client may talk to.
 *
 * @throws {ConnectError} `untrusted` when the file is not a socket or someone else owns it.
 */
function trusted(
  path: string,
  info: SocketFileInfo,
  relayUid: number | undefined,
  ownUid: () => number | undefined,
): SocketFileInfo {
  if (!info.isSocket) throw new ConnectError(`${path} is not a socket; refusing it`, { untrusted: true });
  const owner = info.uid;
  if (owner === null || owner === 0 || owner === relayUid) return info;
  const me = ownUid();
  if (owner === me) return info;
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
