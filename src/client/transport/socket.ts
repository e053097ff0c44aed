// This module is browser compatible.

/**
 * The coordinator protocol over any byte stream (a Unix socket or TCP on any
 * runtime): the register line out, newline-delimited messages in. The runtime
 * adapter only opens the stream.
 *
 * @module
 */

import {
  type CoordinatorAddress,
  decodeRelayMessage,
  encode,
  LineSplitter,
  MAX_RELAY_LINE_BYTES,
  newNonce,
  proofMatches,
  proofOf,
  PROTOCOL_VERSION,
  type RelayMessage,
} from "../../protocol/mod.ts";
import { ConnectError, type RelayChannel, type Transport } from "./transport.ts";

/** A byte stream to the coordinator. */
export interface ByteStream {
  /** The next bytes the relay sent, or `null` once it closed the connection. */
  read(): Promise<Uint8Array | null>;
  /** Writes all of `bytes`. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the stream; safe to call twice. */
  close(): void;
}

/**
 * Builds a {@linkcode Transport} that speaks the coordinator protocol over the
 * byte streams `connect` opens.
 *
 * @param connect Opens a stream to `address`; rejects with `ConnectError` when it cannot.
 * @returns The transport.
 *
 * @example
 * ```ts
 * import { socketTransport } from "./socket.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * const nowhere = socketTransport(() => Promise.reject(new ConnectError("no such socket")));
 * await assert.rejects(nowhere.open({ transport: "unix", path: "/nonexistent" }, { state: "s", timeout: 1 }), ConnectError);
 * ```
 */
export function socketTransport(connect: (address: CoordinatorAddress) => Promise<ByteStream>): Transport {
  return {
    async open(address, { state, timeout, token }): Promise<RelayChannel> {
      const stream = await connect(address);
      const splitter = new LineSplitter(MAX_RELAY_LINE_BYTES);
      const pending: Uint8Array[] = [];
      const read = async (): Promise<RelayMessage | null> => {
        for (;;) {
          const line = pending.shift();
          if (line) return decodeRelayMessage(line);
          const chunk = await stream.read();
          if (chunk === null) return null;
          pending.push(...splitter.push(chunk));
        }
      };
      const channel = (first: RelayMessage | null | undefined): RelayChannel => ({
        read: () => {
          if (first === undefined) return read();
          const message = first;
          first = undefined;
          return Promise.resolve(message);
        },
        close: () => stream.close(),
      });
      let proof: string | undefined;
      try {
        if (token !== undefined) {
          // Mutual proof of the token before anything about this flow is sent (see auth.ts).
          const clientNonce = newNonce();
          await stream.write(encode({ v: PROTOCOL_VERSION, type: "hello", nonce: clientNonce }));
          const answer = await read();
          // An error (old protocol version, a refusal) or a closed connection: the caller reads it as usual.
          // Anything else before the proof (a "callback", a "registered") comes from no relay to trust.
          if (answer === null || answer.type === "error") return channel(answer);
          if (answer.type !== "challenge") {
            stream.close();
            throw new ConnectError(
              `it answered "${answer.type}" before proving it knows the coordinator token; refusing it`,
              { untrusted: true },
            );
          }
          const expected = await proofOf(token, "relay", clientNonce, answer.nonce);
          if (!proofMatches(expected, answer.proof)) {
            stream.close();
            throw new ConnectError(
              `it did not prove it knows the coordinator token (${
                answer.proof === undefined ? "no proof" : "wrong proof"
              }): it is not the relay, or OAUTH_COORDINATOR_TOKEN differs from the relay's; refusing to register there`,
              { untrusted: true },
            );
          }
          proof = await proofOf(token, "client", clientNonce, answer.nonce);
        }
        await stream.write(encode({ v: PROTOCOL_VERSION, type: "register", state, timeout, proof }));
      } catch (error) {
        if (error instanceof ConnectError) throw error;
        // Connected but the exchange broke off: a lost connection, reported by the first read.
        return { read: () => Promise.reject(error), close: () => stream.close() };
      }
      return channel(undefined);
    },
  };
}
