// This module is browser compatible.

/**
 * Waiting over HTTPS: `POST /v1/wait` with a bearer token, and the relay's
 * server-sent events read as the same messages the socket carries. Written
 * with `fetch` and Web streams only, so it runs wherever they do.
 *
 * @module
 */

import {
  type CoordinatorAddress,
  ERROR_CODES,
  MAX_RELAY_LINE_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  type RelayMessage,
  WAIT_PATH,
} from "../../protocol/mod.ts";
import { ConnectError, type RelayChannel, type Transport } from "./transport.ts";

/** Options of {@linkcode httpsTransport}. */
export interface HttpsTransportOptions {
  /** The `fetch` to use, e.g. one that trusts a private CA. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

function waitUrl(base: string): string {
  return base.replace(/\/+$/, "") + WAIT_PATH;
}

/**
 * A {@linkcode Transport} that waits at a relay over HTTPS.
 *
 * @param options A custom `fetch`, when needed.
 * @returns The transport.
 *
 * @example
 * ```ts
 * import { httpsTransport } from "./https.ts";
 * import { ConnectError } from "./transport.ts";
 * import assert from "node:assert/strict";
 *
 * const transport = httpsTransport({ fetch: () => Promise.reject(new TypeError("connection refused")) });
 * await assert.rejects(
 *   transport.open({ transport: "https", url: "https://relay.example" }, { state: "s", timeout: 1, token: "t" }),
 *   ConnectError,
 * );
 * ```
 */
export function httpsTransport(options: HttpsTransportOptions = {}): Transport {
  const doFetch = options.fetch ?? fetch;
  return {
    async open(address: CoordinatorAddress, { state, timeout, token, resume }): Promise<RelayChannel> {
      if (address.transport !== "https") throw new ConnectError("the HTTPS transport needs a relay URL");
      const url = waitUrl(address.url);
      const headers = {
        "content-type": "application/json",
        accept: "text/event-stream",
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      };
      const aborter = new AbortController();
      let response: Response;
      try {
        response = await doFetch(url, {
          method: "POST",
          headers,
          // The timeout goes with a resume too: a relay that restarted registers the state afresh for it.
          body: JSON.stringify(resume === undefined ? { state, timeout } : { state, resume, timeout }),
          signal: aborter.signal,
          // A redirect would carry the token and the resume secret elsewhere, perhaps in clear.
          redirect: "error",
        });
      } catch (error) {
        // fetch says "fetch failed"; the reason is in its cause.
        const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
        const text = cause instanceof Error ? cause.message : String(cause);
        const reason = text.replace(/^.*?: (?=[^:]*$)/s, "").trim() || text;
        // A certificate that does not check out is not a relay to retry against.
        const untrusted = /certificate|handshake|tls|ssl|UnknownIssuer/i.test(text);
        const absent = /refused|not found|unreachable|dns|resolve/i.test(text);
        throw new ConnectError(untrusted ? `TLS failed: ${firstLine(reason)}` : firstLine(reason), {
          cause: error,
          untrusted,
          absent,
        });
      }
      const cancel = () => {
        // Tell the relay at once, so the registration does not wait out its grace period.
        const known = lastResume;
        if (known === undefined) return;
        doFetch(url, { method: "DELETE", headers, body: JSON.stringify({ state, resume: known }), redirect: "error" })
          .then((answer) => answer.body?.cancel())
          .catch(() => {});
      };
      let lastResume = resume;
      if (!response.ok || !response.body) {
        const refusal = await refusalOf(response, url);
        if (refusal === null) {
          // A proxy's 502/503/504 while the relay restarts: the connection is lost, not refused; try again.
          const lost = new Error(`${url} answered ${response.status} ${response.statusText}`);
          return { read: () => Promise.reject(lost), close: () => aborter.abort(), cancel: () => {} };
        }
        return {
          read: ((sent = false) => () => Promise.resolve(sent ? null : (sent = true, refusal)))(),
          close: () => aborter.abort(),
          cancel: () => {},
        };
      }
      const events = readEvents(response.body);
      return {
        async read(): Promise<RelayMessage | null> {
          let next: IteratorResult<ServerEvent>;
          try {
            next = await events.next();
          } catch (error) {
            if (error instanceof SyntaxError) throw new ProtocolError(error.message);
            throw error;
          }
          if (next.done) return null;
          const { name, data } = next.value;
          const message = toMessage(name, data);
          if (message.type === "registered" && message.resume) lastResume = message.resume;
          return message;
        },
        close: () => aborter.abort(),
        cancel,
      };
    },
  };
}

function firstLine(text: string): string {
  return text.split("\n")[0].trim().replace(/\.$/, "");
}

/**
 * The relay's JSON refusal as an error message; anything else says what came
 * back, or `null` for a gateway error of a proxy in front (worth a retry).
 */
async function refusalOf(response: Response, url: string): Promise<RelayMessage | null> {
  let body: { code?: unknown; message?: unknown } = {};
  try {
    body = await response.json();
  } catch { /* not JSON */ }
  if (typeof body.code === "string" && typeof body.message === "string") {
    return { v: PROTOCOL_VERSION, type: "error", code: body.code, message: body.message };
  }
  if (response.status === 502 || response.status === 503 || response.status === 504) return null;
  const message = response.status === 404
    ? `${url} does not offer remote waiting (is OAUTH_CLIENT_TOKENS set at the relay?)`
    : `${url} answered ${response.status} ${response.statusText}`;
  return { v: PROTOCOL_VERSION, type: "error", code: ERROR_CODES.PROTOCOL, message };
}

/** A server-sent event's type and parsed data. */
interface ServerEvent {
  name: string;
  data: unknown;
}

/** Reads a `text/event-stream` body (the WHATWG format) event by event; comment lines are skipped. */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerEvent> {
  let buffer = "";
  let name = "message";
  let data: string[] = [];
  let size = 0;
  // Decoded here rather than through a TextDecoderStream: one stream hop less per event on the way to the waiter.
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      if (buffer.length > MAX_RELAY_LINE_BYTES) throw new SyntaxError("Event line longer than the limit");
      let newline: number;
      while ((newline = buffer.search(/\r\n|\n|\r/)) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { name, data: JSON.parse(data.join("\n")) };
          name = "message";
          data = [];
          size = 0;
        } else if (line.startsWith(":")) {
          continue;
        } else {
          const colon = line.indexOf(":");
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = value;
          else if (field === "data") {
            data.push(value);
            size += value.length;
            if (size > MAX_RELAY_LINE_BYTES) throw new SyntaxError("Event larger than the limit");
          }
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function toMessage(name: string, data: unknown): RelayMessage {
  const fields = (typeof data === "object" && data !== null ? data : {}) as Record<string, unknown>;
  switch (name) {
    case "registered":
      return {
        v: PROTOCOL_VERSION,
        type: "registered",
        state: typeof fields.state === "string" ? fields.state : null,
        timeout: typeof fields.timeout === "number" ? fields.timeout : undefined,
        resume: typeof fields.resume === "string" ? fields.resume : undefined,
      };
    case "callback":
      return { v: PROTOCOL_VERSION, type: "callback", result: data as never };
    case "error":
      return {
        v: PROTOCOL_VERSION,
        type: "error",
        code: String(fields.code ?? ERROR_CODES.PROTOCOL),
        message: String(fields.message ?? "The relay ended the wait"),
      };
    default:
      throw new ProtocolError(`Unknown event ${JSON.stringify(name)} from the relay`);
  }
}
