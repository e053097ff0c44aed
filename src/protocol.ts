// This module is browser compatible.

/**
 * The coordinator's wire protocol, one definition for both sides.
 *
 * Newline-delimited JSON over a Unix socket or TCP (loopback, or any address
 * with a coordinator token). Every message is
 * one JSON object on one line with `"v": 1` and a `"type"`. The client speaks
 * first (`register`); the relay answers `registered`, then at most one final
 * message (`callback` or `error`) and closes. See `docs/protocol.md`.
 *
 * @module
 */

/** Protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;

/**
 * Longest line the relay accepts from a client, in bytes, newline excluded. A
 * register message is small; the bound keeps what a connection can make the
 * relay hold before it registers small too.
 */
export const MAX_LINE_BYTES = 16 * 1024;

/**
 * Longest line a client accepts from the relay. A callback message carries
 * what a stranger sent (URL up to 16 KiB, body up to 256 KiB), JSON-escaped
 * (at most 6 bytes per byte) with `code` and `state` twice: under 2 MiB.
 */
export const MAX_RELAY_LINE_BYTES = 4 * 1024 * 1024;

/** What the relay delivers: the code when one was found, and everything the provider sent. */
export interface OAuthCallbackResult {
  /** `true` when a code was found in the callback. */
  success: boolean;
  /** The authorization code, or `null` when the callback carried none (e.g. `error=access_denied`). */
  code: string | null;
  /** The `state` of the callback, or `null` when it had none (single-slot mode). */
  state: string | null;
  /** Every parameter of the callback (query and body), so the client can check `iss` or read `error`. */
  raw: Record<string, unknown>;
}

/** Client → relay: wait for the callback of `state` (or, without one, the single slot). */
export interface RegisterMessage {
  v: 1;
  type: "register";
  /** Omitted or `null` for single-slot mode. */
  state?: string | null;
  /** Seconds the relay keeps the registration; the relay's default when omitted. */
  timeout?: number;
  /** The coordinator token, when the relay requires one (`OAUTH_COORDINATOR_TOKEN`). */
  token?: string;
}

/** Relay → client: the registration is in place; the authorization may start. */
export interface RegisteredMessage {
  v: 1;
  type: "registered";
  state: string | null;
}

/** Relay → client: the callback arrived. Final. */
export interface CallbackMessage {
  v: 1;
  type: "callback";
  result: OAuthCallbackResult;
}

/** Relay → client: the registration ended without a callback. Final. */
export interface ErrorMessage {
  v: 1;
  type: "error";
  /**
   * Stable reason: `timeout`, `superseded`, `state_taken`, `state_used`, `too_many_waiters`,
   * `unauthorized`, `idle`, `protocol`, `unsupported_version` or `shutdown` (see docs/protocol.md).
   */
  code: string;
  /** One line for a person. */
  message: string;
}

/** Any message a client may send. */
export type ClientMessage = RegisterMessage;
/** Any message the relay may send. */
export type RelayMessage = RegisteredMessage | CallbackMessage | ErrorMessage;

/** A line that is not a valid message; `message` says why in one line. */
export class ProtocolError extends Error {
  /** `protocol`, or `unsupported_version` when only the version is wrong. */
  readonly code: "protocol" | "unsupported_version";
  /**
   * @param message Why the line was refused.
   * @param code The error code sent to the peer.
   */
  constructor(message: string, code: "protocol" | "unsupported_version" = "protocol") {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes one message as a UTF-8 line, newline included. */
export function encode(message: ClientMessage | RelayMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

function parseObject(line: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    throw new ProtocolError("Message is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError("Message is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("Message must be a JSON object");
  }
  const message = value as Record<string, unknown>;
  if (message.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `Unsupported protocol version ${JSON.stringify(message.v ?? null)}: this side speaks v${PROTOCOL_VERSION}`,
      "unsupported_version",
    );
  }
  return message;
}

/**
 * Decodes a line a client sent (newline excluded).
 *
 * @throws {ProtocolError} When the line is not a valid client message.
 */
export function decodeClientMessage(line: Uint8Array): ClientMessage {
  const message = parseObject(line);
  if (message.type !== "register") {
    throw new ProtocolError(`Unknown message type ${JSON.stringify(message.type ?? null)}: expected "register"`);
  }
  // `null` and a missing field mean the same for every optional field.
  const state = message.state ?? undefined;
  const timeout = message.timeout ?? undefined;
  const token = message.token ?? undefined;
  if (state !== undefined && (typeof state !== "string" || state === "")) {
    throw new ProtocolError('"state" must be a non-empty string or null');
  }
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout > 0) || !Number.isFinite(timeout))) {
    throw new ProtocolError('"timeout" must be a positive number of seconds');
  }
  if (token !== undefined && typeof token !== "string") throw new ProtocolError('"token" must be a string');
  return { v: 1, type: "register", state: state ?? null, timeout, token };
}

/**
 * Decodes a line the relay sent (newline excluded).
 *
 * @throws {ProtocolError} When the line is not a valid relay message.
 */
export function decodeRelayMessage(line: Uint8Array): RelayMessage {
  const message = parseObject(line);
  const isObject = (value: unknown) => typeof value === "object" && value !== null && !Array.isArray(value);
  const isText = (value: unknown) => value === null || typeof value === "string";
  switch (message.type) {
    case "registered":
      return message as unknown as RelayMessage;
    case "callback": {
      const result = message.result as Record<string, unknown> | undefined;
      if (
        !isObject(result) || typeof result!.success !== "boolean" || !isText(result!.code) ||
        !isText(result!.state) || !isObject(result!.raw)
      ) {
        throw new ProtocolError("Callback message without a valid result");
      }
      return message as unknown as RelayMessage;
    }
    case "error":
      if (typeof message.code !== "string" || typeof message.message !== "string") {
        throw new ProtocolError("Error message without a code and message");
      }
      return message as unknown as RelayMessage;
    default:
      throw new ProtocolError(`Unknown message type ${JSON.stringify(message.type ?? null)} from relay`);
  }
}

/**
 * Splits a byte stream into lines, each at most `maxLineBytes`. Feed chunks
 * with {@linkcode LineSplitter.push}; it returns the complete lines they
 * finish. An unfinished line is kept in one buffer that grows to the limit,
 * so a peer sending one byte at a time costs no more than one long line.
 */
export class LineSplitter {
  #buffer = new Uint8Array(0);
  #length = 0;
  readonly #max: number;

  /** @param maxLineBytes Longest accepted line, newline excluded. */
  constructor(maxLineBytes: number = MAX_LINE_BYTES) {
    this.#max = maxLineBytes;
  }

  /** Bytes of an unfinished line held. */
  get pending(): number {
    return this.#length;
  }

  /**
   * Adds a chunk and returns the lines it completes. The chunk may be reused
   * by the caller afterwards: returned lines never point into it.
   *
   * @throws {ProtocolError} When a line grows past the limit; the splitter must then be dropped.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const lines: Uint8Array[] = [];
    let start = 0;
    for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, end);
      this.#check(piece.length);
      const line = new Uint8Array(this.#length + piece.length);
      line.set(this.#buffer.subarray(0, this.#length));
      line.set(piece, this.#length);
      lines.push(line);
      this.#length = 0;
      start = end + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#check(rest.length);
      if (this.#length + rest.length > this.#buffer.length) {
        const grown = new Uint8Array(
          Math.min(this.#max, Math.max(256, this.#buffer.length * 2, this.#length + rest.length)),
        );
        grown.set(this.#buffer.subarray(0, this.#length));
        this.#buffer = grown;
      }
      this.#buffer.set(rest, this.#length);
      this.#length += rest.length;
    }
    if (this.#length === 0 && this.#buffer.length > 4096) this.#buffer = new Uint8Array(0);
    return lines;
  }

  #check(extra: number) {
    if (this.#length + extra > this.#max) {
      throw new ProtocolError(`Line longer than ${this.#max} bytes`);
    }
  }
}
