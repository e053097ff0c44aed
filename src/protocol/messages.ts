// This module is browser compatible.

/**
 * The coordinator's wire protocol, one definition for both sides.
 *
 * Newline-delimited JSON over a Unix socket or TCP (loopback, or any address
 * with a coordinator token). Every message is one JSON object on one line with `"v": 1` and a `"type"`. The client speaks
 * first (`register`); the relay answers `registered`, then at most one final
 * message (`callback` or `error`) and closes. See `docs/protocol.md`.
 *
 * @module
 */

import { ERROR_CODES, type ErrorCode } from "./codes.ts";

/** Protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;

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
  /** Protocol version. */
  v: 1;
  /** Message type. */
  type: "registered";
  /** The state registered; `null` for the single slot. */
  state: string | null;
  /** Seconds the relay holds the registration: the client's request, or less when the relay caps it. */
  timeout?: number;
}

/** Relay → client: the callback arrived. Final. */
export interface CallbackMessage {
  /** Protocol version. */
  v: 1;
  /** Message type. */
  type: "callback";
  /** What the provider sent. */
  result: OAuthCallbackResult;
}

/** Relay → client: the registration ended without a callback. Final. */
export interface ErrorMessage {
  /** Protocol version. */
  v: 1;
  /** Message type. */
  type: "error";
  /** Stable reason, one of {@linkcode ERROR_CODES} (see docs/protocol.md); a newer relay may send others. */
  code: ErrorCode | (string & Record<never, never>);
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
  readonly code: typeof ERROR_CODES.PROTOCOL | typeof ERROR_CODES.UNSUPPORTED_VERSION;
  /**
   * @param message Why the line was refused.
   * @param code The error code sent to the peer.
   */
  constructor(message: string, code: ProtocolError["code"] = ERROR_CODES.PROTOCOL) {
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
      ERROR_CODES.UNSUPPORTED_VERSION,
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
