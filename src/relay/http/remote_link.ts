/**
 * The HTTPS end of a waiter: a registration whose client waits on a
 * server-sent-events stream and may lose it and come back. The link keeps
 * the registration through a gap of `grace` milliseconds, keeps a callback
 * that arrives in the gap for its owner, and keeps a delivered callback for
 * the same time so a client whose stream broke after the write can take it
 * again. The waiter lifecycle (`../waiter.ts`) decides everything else.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { CallbackMessage, RelayMessage } from "../../protocol/mod.ts";
import { type Deadline, deadlines } from "../deadlines.ts";
import { type Logger, quote } from "../log.ts";
import type { RegistrationError, RegistrationLimit, RemoteTicket } from "../registry/registry.ts";
import { streamingResponse } from "./serve.ts";
import type { ClientWaiter, CloseReason, WaiterLink } from "../waiter.ts";

const encoder = new TextEncoder();

/** One server-sent event, encoded (the WHATWG event-stream format). */
function event(name: string, data: unknown): Uint8Array {
  return encoder.encode(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** A comment line: keeps proxies from closing an idle stream, and clients ignore it. */
export const HEARTBEAT: Uint8Array = encoder.encode(": keep-alive\n\n");

/** Headers of every wait stream. */
const STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-store",
  // nginx buffers proxied responses unless told not to: the registered event must arrive at once.
  "x-accel-buffering": "no",
  "x-content-type-options": "nosniff",
});

/** How the first answer to a `POST /v1/wait` turned out. */
export type Opening =
  | { kind: "stream"; response: Response }
  | { kind: "refused"; code: string; message: string; limit?: RegistrationLimit };

/** What the link needs from the route that owns it. */
export interface RemoteLinkOptions {
  /** The registration's state. */
  state: string;
  /** The registration's resume secret. */
  resume: string;
  /** Token fingerprint and address, for log lines. */
  peer: string;
  /** The client token's fingerprint, for the per-token cap of a shared registry. */
  token: string;
  /** Milliseconds a registration or its callback is kept after its stream broke. */
  graceMs: number;
  /** Called once when the link is gone for good (to forget it and free the token's slot). */
  onGone(): void;
  /** For the one line that says a registration nobody came back for expired. */
  logger: Logger;
}

/** The HTTPS end of one waiter. */
export class RemoteLink implements WaiterLink {
  readonly peer: string;
  readonly state: string;
  readonly resume: string;
  /** What the registry keeps: a hash of the resume secret, never the secret. */
  readonly remote: RemoteTicket;
  waiter: ClientWaiter | undefined;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #opening: PromiseWithResolvers<Opening> | undefined = Promise.withResolvers();
  readonly #opened: Promise<Opening> = this.#opening!.promise;
  #registered: Extract<RelayMessage, { type: "registered" }> | undefined;
  #expiresAt = "";
  /** The callback, once it came: written again to a client that resumes within the grace period. */
  #held: CallbackMessage | undefined;
  /** When a delivered callback stops being kept (epoch ms). */
  #keptUntil: number | undefined;
  #grace: Deadline | undefined;
  #gone = false;
  #limit: RegistrationLimit | undefined;
  /** Settles the current stream's end, for the connection's books. */
  #ended: (() => void) | undefined;
  readonly #options: RemoteLinkOptions;

  /** @param options Who it is for and how long to keep it. */
  constructor(options: RemoteLinkOptions) {
    this.#options = options;
    this.peer = options.peer;
    this.state = options.state;
    this.resume = options.resume;
    this.remote = {
      resumeHash: createHash("sha256").update(options.resume).digest("hex"),
      token: options.token,
    };
  }

  /** Resolves with the answer to the request that opened the registration. */
  get opening(): Promise<Opening> {
    return this.#opened;
  }

  /** Whether a stream is open to the client now. */
  get attached(): boolean {
    return this.#controller !== undefined;
  }

  /** Whether the link is gone for good. */
  get gone(): boolean {
    return this.#gone;
  }

  send(message: RelayMessage): Promise<boolean> {
    if (this.#gone) return Promise.resolve(false);
    const opening = this.#opening;
    if (opening && message.type === "error") {
      // Refused before the stream started: the route answers with a JSON error and a status.
      this.#opening = undefined;
      opening.resolve({ kind: "refused", code: message.code, message: message.message, limit: this.#limit });
      return Promise.resolve(true);
    }
    if (message.type === "registered") {
      this.#registered = message;
      // The registration's own end: the same after a resume here or at another relay.
      this.#expiresAt = new Date(this.waiter?.expiresAt ?? Date.now() + (message.timeout ?? 0) * 1000)
        .toISOString();
      if (opening) {
        this.#opening = undefined;
        opening.resolve({ kind: "stream", response: this.#stream() });
      }
      return Promise.resolve(true);
    }
    if (message.type === "callback") {
      // Kept for its owner whether or not a stream is open: "complete" is then true either way.
      this.#held = message;
      if (opening) {
        // Delivered before `registered` went out (a shared registry's gap): the opening stream carries both.
        this.#opening = undefined;
        opening.resolve({ kind: "stream", response: this.#stream() });
      }
      this.#write(event("callback", message.result));
      // The callback is the stream's last event: ending it here, in the same turn, sends the event out
      // with the end of the stream at once (measured: bench/trace.ts --mode http) instead of after the
      // rest of the delivery's work.
      this.#end();
      return Promise.resolve(true);
    }
    if (message.type === "error") {
      if (!this.#controller) return Promise.resolve(false);
      this.#write(event("error", { code: message.code, message: message.message }));
      return Promise.resolve(true);
    }
    return Promise.resolve(false);
  }

  /** Remembers which limit refused the registration: the route answers 429 for the token's. */
  refused(error: RegistrationError): void {
    this.#limit = error.limit;
  }

  close(reason: CloseReason): Promise<void> {
    this.#end();
    if (reason === "delivered" && this.#held) {
      // Kept for a client whose stream broke after the write, for the grace period from now only.
      this.#keptUntil = Date.now() + this.#options.graceMs;
      this.#startGrace();
    } else {
      this.#forget();
    }
    return Promise.resolve();
  }

  /**
   * A client came back with the right secret: a new stream with `registered`
   * again and, when the callback already came, the callback, then the end.
   */
  attach(): Response {
    this.#end();
    deadlines.cancel(this.#grace);
    this.#grace = undefined;
    const response = this.#stream();
    if (this.#held) {
      this.#write(event("callback", this.#held.result));
      this.#end();
      // Still kept only until the grace period that began at delivery ends, however often it is resumed.
      this.#startGrace(this.#keptUntil === undefined ? undefined : Math.max(0, this.#keptUntil - Date.now()));
    }
    return response;
  }

  /** Writes a heartbeat to an open stream. */
  heartbeat(): void {
    this.#write(HEARTBEAT);
  }

  /** The client cancelled its wait: the registration goes at once. */
  cancel(): void {
    deadlines.cancel(this.#grace);
    this.#end();
    this.waiter?.gone();
    this.#forget();
  }

  #stream(): Response {
    const registered = event("registered", {
      state: this.state,
      resume: this.resume,
      expires_at: this.#expiresAt,
      timeout: this.#registered?.timeout,
    });
    const ended = Promise.withResolvers<void>();
    this.#ended = ended.resolve;
    let mine: ReadableStreamDefaultController<Uint8Array> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        mine = controller;
        this.#controller = controller;
        controller.enqueue(registered);
      },
      cancel: () => {
        ended.resolve();
        // Only the current stream's end matters: an old one cancelled late must not cut a resumed one.
        if (this.#controller !== mine) return;
        // The stream broke (network, proxy, the client went away): hold the registration for a while.
        this.#controller = undefined;
        if (!this.#gone) this.#startGrace();
      },
    });
    return streamingResponse(new Response(body, { headers: STREAM_HEADERS }), ended.promise);
  }

  #write(bytes: Uint8Array): void {
    try {
      this.#controller?.enqueue(bytes);
    } catch {
      this.#controller = undefined;
    }
  }

  #end(): void {
    const controller = this.#controller;
    this.#controller = undefined;
    try {
      controller?.close();
    } catch { /* already closed or cancelled */ }
    this.#ended?.();
  }

  #startGrace(ms = this.#options.graceMs): void {
    if (this.#grace !== undefined || this.#gone) return;
    this.#grace = deadlines.after(ms, () => {
      this.#grace = undefined;
      this.#options.logger.info(
        `Remote registration for state ${quote(this.state)} expired: nobody resumed it within the grace period`,
      );
      // Nobody came back: the registration (or the kept callback) is dropped.
      if (!this.#held) this.waiter?.gone();
      this.#forget();
    });
  }

  #forget(): void {
    if (this.#gone) return;
    this.#gone = true;
    deadlines.cancel(this.#grace);
    this.#opening?.resolve({ kind: "refused", code: "unavailable", message: "The registration ended" });
    this.#options.onGone();
  }
}
