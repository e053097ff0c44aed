/**
 * The `node:net` adapter of the socket transport, for Node, Bun and any
 * runtime with Node's modules: it opens a Unix socket or TCP connection to
 * the coordinator, with the same trust rule (`socket_trust.ts`) and the same
 * errors as the Deno adapter (`deno.ts`). The protocol is `socket.ts`'s.
 *
 * @module
 */

import { lstat } from "node:fs/promises";
import { connect, type NetConnectOpts, type Socket } from "node:net";
import type { CoordinatorAddress } from "../../protocol/mod.ts";
import { ownUid } from "../env.ts";
import { type ByteStream, socketTransport } from "./socket.ts";
import { connectTrusted } from "./socket_trust.ts";
import { ConnectError, type Transport } from "./transport.ts";

/**
 * Opens a byte stream to the coordinator at `address` with `node:net`.
 *
 * @param address The coordinator's Unix socket or TCP address.
 * @returns The open stream.
 * @throws {ConnectError} When the relay cannot be reached; `message` says why in a few words.
 *
 * @example
 * ```ts
 * import { connectNode } from "./node.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(connectNode({ transport: "unix", path: "/nonexistent/relay.sock" }), (error: unknown) => {
 *   assert.ok(error instanceof ConnectError && error.absent);
 *   assert.equal(error.message, "no such socket");
 *   return true;
 * });
 * ```
 */
export async function connectNode(address: CoordinatorAddress): Promise<ByteStream> {
  try {
    if (address.transport === "unix") {
      return await connectTrusted(address.path, address.relayUid, {
        lstat: async (path) => {
          const info = await lstat(path);
          // Node reports uid 0 on Windows, where files have no owner: trusted either way, as on Deno.
          return { isSocket: info.isSocket(), uid: info.uid, dev: info.dev, ino: info.ino };
        },
        ownUid,
        connect: (path) => open({ path }),
        close: (stream) => stream.close(),
      });
    }
    if (address.transport === "tcp") return await open({ host: address.hostname, port: address.port });
    throw new ConnectError(`a socket transport cannot reach ${address.url}`);
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    const code = systemCode(error);
    throw new ConnectError(describeConnectError(error), {
      cause: error,
      absent: code === "ENOENT" || code === "ECONNREFUSED",
    });
  }
}

/**
 * The coordinator protocol over `node:net`.
 *
 * @example
 * ```ts
 * import { nodeTransport } from "./node.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   nodeTransport.open({ transport: "unix", path: "/nonexistent/relay.sock" }, { state: "s", timeout: 1 }),
 *   ConnectError,
 * );
 * ```
 */
export const nodeTransport: Transport = socketTransport(connectNode);

/**
 * Connects, and resolves with the stream once connected or rejects with the
 * system's error. The stream listens for errors from the start: an error
 * event nobody listens for would end the process.
 */
function open(options: NetConnectOpts): Promise<ByteStream> {
  const socket = connect(options);
  // The handshake is a few small messages each way: send each at once, as Deno's sockets do.
  if ("port" in options) socket.setNoDelay(true);
  const stream = byteStream(socket);
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      stream.close();
      reject(error);
    };
    socket.once("error", fail);
    socket.once("connect", () => {
      socket.off("error", fail);
      resolve(stream);
    });
  });
}

/**
 * A socket as a {@linkcode ByteStream}. The socket stays paused between
 * reads, so a relay that sends more than the client reads fills the
 * kernel's buffer, not this process's memory.
 */
function byteStream(socket: Socket): ByteStream {
  const chunks: Uint8Array[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  socket.pause();
  socket.on("data", (chunk: Uint8Array) => {
    chunks.push(chunk);
    socket.pause();
    notify();
  });
  // "end": the relay closed its side; "close": closed either way (also after an error, or by close() here).
  socket.on("end", () => {
    ended = true;
    notify();
  });
  socket.on("close", () => {
    ended = true;
    notify();
  });
  socket.on("error", (error) => {
    failure ??= error;
    notify();
  });
  return {
    async read() {
      for (;;) {
        const chunk = chunks.shift();
        if (chunk) return chunk;
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((resolve) => {
          wake = resolve;
          socket.resume();
        });
      }
    },
    write: (bytes) =>
      new Promise((resolve, reject) => {
        socket.write(bytes, (error) => error ? reject(error) : resolve());
      }),
    close() {
      socket.destroy();
    },
  };
}

/** The system error code (`ECONNREFUSED`, …) Node puts on an error, if any. */
function systemCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * The words `deno.ts` uses for the same failures (Deno shows the system's
 * own text, lower-cased), so a person reads the same line on every runtime.
 */
const DESCRIPTIONS: Record<string, string> = {
  ENOENT: "no such socket",
  ECONNREFUSED: "connection refused",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTDIR: "not a directory",
  ETIMEDOUT: "connection timed out",
  ECONNRESET: "connection reset by peer",
  ENETUNREACH: "network is unreachable",
  EHOSTUNREACH: "no route to host",
  EADDRNOTAVAIL: "cannot assign requested address",
  ENOTFOUND: "failed to lookup address information: name or service not known",
  EAI_AGAIN: "failed to lookup address information: temporary failure in name resolution",
};

/** Describes a connection failure in a few lower-case words. */
function describeConnectError(error: unknown): string {
  const code = systemCode(error);
  if (code !== undefined && code in DESCRIPTIONS) return DESCRIPTIONS[code];
  const message = error instanceof Error ? error.message : String(error);
  // Node's own form is "connect ECODE address": keep the code, drop the rest.
  return (code ?? message.split("\n")[0]).toLowerCase();
}
