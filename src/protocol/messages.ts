// This module is browser compatible.

/**
 * The coordinator's wire protocol, one definition for both sides.
 *
 * Newline-delimited JSON over a Unix socket or TCP (loopback, or any address
 * with a coordinator token). Every message is one JSON object on one line
 * with `"v": 2` and a `"type"`. The client speaks first: `register`, or, when
 * a coordinator token is shared, `hello` first, answered by the relay's
 * `challenge`, so each side proves it knows the token without sending it
 * (`auth.ts`). The relay answers `registered`, then at most one final message
 * (`callback` or `error`) and closes. See `docs/protocol.md`.
 *
 * @module
 */

import { ERROR_CODES, type ErrorCode } from "./codes.ts";

/** Protocol version this code speaks. Version 2 added the token handshake (`hello`, `challenge`, `proof`). */
export const PROTOCOL_VERSION = 2;

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

/** Client → relay, first when a token is shared: the client's challenge to the relay. */
export interface HelloMessage {
  /** Protocol version. */
  v: 2;
  /** Message type. */
  type: "hello";
  /** 32 random bytes, base64url: the relay proves the token over it. */
  nonce: string;
}

/** Relay → client, the answer to `hello`: the relay's challenge, and its proof when it has a token. */
export interface ChallengeMessage {
  /** Protocol version. */
  v: 2;
  /** Message type. */
  type: "challenge";
  /** 32 random bytes, base64url: the client proves the token over it in its `register`. */
  nonce: string;
  /** HMAC-SHA256 under the token of both nonces (`auth.ts`); absent when the relay has no token. */
  proof?: string;
}

/** Client → relay: wait for the callback of `state` (or, without one, the single slot). */
export interface RegisterMessage {
  /** Protocol version. */
  v: 2;
  /** Message type. */
  type: "register";
  /** Omitted or `null` for single-slot mode. */
  state?: string | null;
  /** Seconds the relay keeps the registration; the relay's default when omitted. */
  timeout?: number;
  /** After a `challenge`: the client's HMAC of both nonces under the token. The token itself never travels. */
  proof?: string;
}

/** Relay → client: the registration is in place; the authorization may start. */
export interface RegisteredMessage {
  /** Protocol version. */
  v: 2;
  /** Message type. */
  type: "registered";
  /** The state registered; `null` for the single slot. */
  state: string | null;
  /** Seconds the relay holds the registration: the client's request, or less when the relay caps it. */
  timeout?: number;
  /**
   * Over HTTPS only: the registration's secret, with which the client takes
   * it back after its stream broke (`POST /v1/wait` with `state` and `resume`).
   */
  resume?: string;
}

/** Relay → client: the callback arrived. Final. */
export interface CallbackMessage {
  /** Protocol version. */
  v: 2;
  /** Message type. */
  type: "callback";
  /** What the provider sent. */
  result: OAuthCallbackResult;
}

/** Relay → client: the registration ended without a callback. Final. */
export interface ErrorMessage {
  /** Protocol version. */
  v: 2;
  /** Message type. */
  type: "error";
  /** Stable reason, one of {@linkcode ERROR_CODES} (see docs/protocol.md); a newer relay may send others. */
  code: ErrorCode | (string & Record<never, never>);
  /** One line for a person. */
  message: string;
}

/** Any message a client may send. */
export type ClientMessage = HelloMessage | RegisterMessage;
/** Any message the relay may send. */
export type RelayMessage = ChallengeMessage | RegisteredMessage | CallbackMessage | ErrorMessage;

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
  if (message.type === "hello") {
    if (!isNonce(message.nonce)) throw new ProtocolError('"nonce" must be 32 random bytes in base64url');
    return { v: PROTOCOL_VERSION, type: "hello", nonce: message.nonce };
  }
  if (message.type !== "register") {
    throw new ProtocolError(
      `Unknown message type ${JSON.stringify(message.type ?? null)}: expected "hello" or "register"`,
    );
  }
  // `null` and a missing field mean the same for every optional field.
  const state = message.state ?? undefined;
  const timeout = message.timeout ?? undefined;
  const proof = message.proof ?? undefined;
  if (state !== undefined && (typeof state !== "string" || state === "")) {
    throw new ProtocolError('"state" must be a non-empty string or null');
  }
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout > 0) || !Number.isFinite(timeout))) {
    throw new ProtocolError('"timeout" must be a positive number of seconds');
  }
  if (proof !== undefined && typeof proof !== "string") throw new ProtocolError('"proof" must be a string');
  return { v: PROTOCOL_VERSION, type: "register", state: state ?? null, timeout, proof };
}

/** 32 bytes in unpadded base64url are 43 characters. */
function isNonce(value: unknown): value is string {
  return typeof value === "string" && /^[A-Za-z0-9_-]{43}$/.test(value);
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
    case "challenge":
      if (!isNonce(message.nonce) || (message.proof !== undefined && typeof message.proof !== "string")) {
        throw new ProtocolError("Challenge message without a valid nonce");
      }
      return message as unknown as RelayMessage;
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
