/**
 * Opening the coordinator's listener: a Unix socket that is owner-only from
 * the moment it exists and never steals a live relay's path, or loopback TCP.
 *
 * @module
 */

import { osErrorMessage } from "../../client/transport/deno.ts";
import type { CoordinatorAddress } from "../../protocol/mod.ts";

/** An open listener and the address clients use to reach it. */
export interface BoundListener {
  listener: Deno.Listener;
  address: CoordinatorAddress;
  /** Closes the listener and removes the socket file if it is still ours. */
  close(): Promise<void>;
}

/** The coordinator cannot listen; the message is one line for a person. */
export class ListenError extends Error {
  /** @param message What failed, where, and what to do. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenError";
  }
}

function dirname(path: string): string {
  const index = path.lastIndexOf("/");
  return index <= 0 ? "/" : path.slice(0, index);
}

async function isLive(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused || error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Listens on a Unix socket at `path` with permission `mode` (0o600 by default).
 *
 * The socket is bound inside a fresh private directory (0700), given its
 * mode, then renamed into place, so there is no moment when a wider socket
 * is reachable at `path`. An existing file at `path` is replaced only when it
 * is a socket that refuses connections (left by a crashed relay).
 *
 * @throws {ListenError} When a live relay holds the path, the path is not a socket, or binding fails.
 */
export async function listenUnix(path: string, mode = 0o600): Promise<BoundListener> {
  // Two relays starting at the same instant would both find the path free and both
  // rename onto it, orphaning one: checking and taking the path happen under a lock.
  const lock = await lockPath(path);
  try {
    return await takePath(path, mode);
  } finally {
    lock.close();
  }
}

/** How long a start waits for another relay's start at the same path. */
const LOCK_TIMEOUT_MS = 5000;

/**
 * Takes an exclusive lock on `path.lock` (flock). The file stays: removing
 * it would let a third relay lock a new file while a second holds the old.
 */
async function lockPath(path: string): Promise<Deno.FsFile> {
  const lockFile = `${path}.lock`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lockFile, { read: true, write: true, create: true, mode: 0o600 });
  } catch (error) {
    if (!(error instanceof Deno.errors.PermissionDenied)) throw wrap(path, error);
    // Another user's lock file: flock works on a read-only descriptor too.
    file = await Deno.open(lockFile, { read: true }).catch((error) => {
      throw wrap(path, error);
    });
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ListenError(
            `Cannot listen at ${path}: another relay has been starting there for ${
              LOCK_TIMEOUT_MS / 1000
            } seconds (${lockFile} is locked); stop it or set OAUTH_SOCKET_PATH`,
          ),
        ),
      LOCK_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([file.lock(true), timedOut]);
    return file;
  } catch (error) {
    file.close();
    throw error instanceof ListenError ? error : wrap(path, error);
  } finally {
    clearTimeout(timer);
  }
}

async function takePath(path: string, mode: number): Promise<BoundListener> {
  try {
    const existing = await Deno.lstat(path);
    if (!existing.isSocket) {
      throw new ListenError(
        `Cannot listen at ${path}: a file that is not a socket is there; remove it or set OAUTH_SOCKET_PATH`,
      );
    }
    if (await isLive(path)) {
      throw new ListenError(
        `Cannot listen at ${path}: another relay is running there; stop it or set OAUTH_SOCKET_PATH`,
      );
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw wrap(path, error);
  }

  let privateDir: string | undefined;
  try {
    privateDir = await Deno.makeTempDir({ dir: dirname(path), prefix: ".oauth-relay-" });
    const tempPath = `${privateDir}/coordinator.sock`;
    const listener = Deno.listen({ transport: "unix", path: tempPath });
    try {
      await Deno.chmod(tempPath, mode);
      // rename(2) is atomic: the path either holds the stale socket or ours, already restricted.
      await Deno.rename(tempPath, path);
    } catch (error) {
      listener.close();
      throw error;
    }
    const identity = await Deno.lstat(path);
    return {
      listener,
      address: { transport: "unix", path },
      async close() {
        try {
          listener.close();
        } catch { /* already closed */ }
        // Remove the file only if it is still the one we bound (a successor may have taken the path).
        const now = await Deno.lstat(path).catch(() => undefined);
        if (now && now.ino === identity.ino && now.dev === identity.dev) {
          await Deno.remove(path).catch(() => {});
        }
      },
    };
  } catch (error) {
    throw wrap(path, error);
  } finally {
    if (privateDir) await Deno.remove(privateDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Listens on TCP at `hostname:port` (`port` 0 picks a free one).
 *
 * @throws {ListenError} When the port is taken or binding fails.
 */
export function listenTcp(hostname: string, port: number): BoundListener {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ transport: "tcp", hostname, port });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ListenError(
        `Cannot listen at ${hostname}:${port}: the port is in use (another relay?); stop it or set OAUTH_TCP_FALLBACK_PORT`,
        { cause: error },
      );
    }
    throw new ListenError(`Cannot listen at ${hostname}:${port}: ${osErrorMessage(error)}`, { cause: error });
  }
  return {
    listener,
    address: { transport: "tcp", hostname, port: listener.addr.port },
    close() {
      try {
        listener.close();
      } catch { /* already closed */ }
      return Promise.resolve();
    },
  };
}

function wrap(path: string, error: unknown): Error {
  if (error instanceof ListenError) return error;
  if (error instanceof Deno.errors.NotCapable) {
    return new ListenError(
      `Cannot listen at ${path}: permission to use it was not granted; run with --allow-read, --allow-write and --allow-net for ${
        dirname(path)
      }`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new ListenError(`Cannot listen at ${path}: permission denied; choose a writable OAUTH_SOCKET_PATH`, {
      cause: error,
    });
  }
  if (error instanceof Deno.errors.NotFound) {
    return new ListenError(
      `Cannot listen at ${path}: directory ${dirname(path)} does not exist; create it or set OAUTH_SOCKET_PATH`,
      {
        cause: error,
      },
    );
  }
  return new ListenError(`Cannot listen at ${path}: ${osErrorMessage(error)}`, { cause: error });
}
