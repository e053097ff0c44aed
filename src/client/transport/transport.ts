// This module is browser compatible.

/**
 * The seam between {@linkcode waitForCode} and the way it reaches the relay.
 * A transport opens one registration and yields the relay's messages; the
 * deadline, reconnects and checks live once, in `src/client/wait.ts`. Pass
 * another transport in `options.transport`, as oauth4webapi takes a
 * `customFetch`.
 *
 * @module
 */

import type { CoordinatorAddress, RelayMessage } from "../../protocol/mod.ts";

/** What a client asks the relay for. */
export interface Registration {
  /** The state to wait for; `null` for the single slot. */
  state: string | null;
  /** Seconds the relay should keep the registration. */
  timeout: number;
  /** The coordinator token (sockets), or the client token (HTTPS), when the relay requires one. */
  token?: string;
  /** The `resume` secret of an earlier registration of this wait (HTTPS), to take it back. */
  resume?: string;
}

/** One open registration: the relay's messages, in order. */
export interface RelayChannel {
  /**
   * The next message from the relay, or `null` once the relay closed the channel.
   * Rejects with `ProtocolError` when the relay sent something unreadable, or with
   * another error when the connection broke.
   */
  read(): Promise<RelayMessage | null>;
  /** Closes the channel; later reads resolve `null` or reject. Safe to call twice. */
  close(): void;
  /**
   * The wait was cancelled (`signal`): tell the relay to free the registration
   * now, where closing alone would not (HTTPS keeps it for a grace period).
   */
  cancel?(): void;
}

/**
 * Opens registrations at a relay.
 *
 * @example A transport that answers every registration at once (a test double)
 * ```ts
 * import type { RelayChannel, Transport } from "./transport.ts";
 * import { waitForCode } from "../wait.ts";
 * import assert from "node:assert/strict";
 *
 * const instant: Transport = {
 *   open(_address, { state }): Promise<RelayChannel> {
 *     const messages = [
 *       { v: 2, type: "registered", state } as const,
 *       { v: 2, type: "callback", result: { success: true, code: "c0de", state, raw: { code: "c0de", state } } } as const,
 *     ];
 *     return Promise.resolve({ read: () => Promise.resolve(messages.shift() ?? null), close() {} });
 *   },
 * };
 * const result = await waitForCode({ state: "s1", transport: instant });
 * assert.equal(result.code, "c0de");
 * ```
 */
export interface Transport {
  /**
   * Connects to the relay at `address` and sends `registration`.
   *
   * @throws {ConnectError} When the relay cannot be reached.
   */
  open(address: CoordinatorAddress, registration: Registration): Promise<RelayChannel>;
}

/**
 * The relay could not be reached. `message` says why in a few lower-case
 * words (e.g. `no such socket`), for the client to put in its own sentence.
 *
 * @example
 * ```ts
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new ConnectError("connection refused").message, "connection refused");
 * ```
 */
export class ConnectError extends Error {
  /** `true` when nothing listens there (no such socket, connection refused): the relay is not running. */
  readonly absent: boolean;
  /** `true` when something answers there that is not the relay this client trusts: never retried. */
  readonly untrusted: boolean;
  /**
   * Creates the error.
   *
   * @param message Why, in a few lower-case words.
   * @param options `cause` keeps the system error; `absent` says nothing listens there; `untrusted` that
   *   what listens is not to be trusted.
   */
  constructor(message: string, options?: ErrorOptions & { absent?: boolean; untrusted?: boolean }) {
    super(message, options);
    this.name = "ConnectError";
    this.absent = options?.absent ?? false;
    this.untrusted = options?.untrusted ?? false;
  }
}
