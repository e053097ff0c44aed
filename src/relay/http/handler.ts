/**
 * The HTTP side as a plain `(Request) => Promise<Response>` handler: the
 * callback route, its pages, and `/health`.
 *
 * @module
 */

import type { CoordinatorAddress, Settings } from "../../client/settings.ts";
import { DEFAULT_MAX_BODY_BYTES, WAIT_PATH } from "../../protocol/mod.ts";
import { addParam, AmbiguousCallbackError, type CallbackParams, extractCallback } from "./extract.ts";
import { deadlines } from "../deadlines.ts";
import { type Logger, quote, redactCode } from "../log.ts";
import {
  alreadyCompletedPage,
  badRequestPage,
  completePage,
  deniedPage,
  fixedPage,
  noClientPage,
  pageResponse,
  SECURITY_HEADERS,
  unavailableResponse,
} from "./pages.ts";
import type { Registry } from "../registry/registry.ts";
import type { WaitRoute } from "./wait.ts";

/** Limits on what a stranger may send to the callback route. */
export interface HttpLimits {
  /** Largest request body, in bytes (413 above). */
  maxBodyBytes: number;
  /** Most parameters, query and body together (400 above). */
  maxParams: number;
  /** Longest parameter name (400 above). */
  maxKeyLength: number;
  /** Longest parameter value, in characters (400 above). */
  maxValueLength: number;
  /** Longest request URL, in characters (414 above). */
  maxUrlLength: number;
  /** Milliseconds a sender may take to deliver the body (408 after). */
  bodyTimeoutMs: number;
}

/** Default {@linkcode HttpLimits}, documented in the README. */
export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  maxParams: 100,
  maxKeyLength: 128,
  maxValueLength: 8 * 1024,
  maxUrlLength: 16 * 1024,
  bodyTimeoutMs: 10_000,
});

/** Options of {@linkcode createHandler}. */
export interface HandlerOptions {
  settings: Settings;
  /** Where callbacks find their waiters. */
  registry: Registry;
  logger: Logger;
  /** Where the coordinator listens, for `/health`; `null` when the relay is disabled. */
  coordinator: () => CoordinatorAddress | null;
  limits?: Partial<HttpLimits>;
  /** Whether the relay is stopping: a body cut off by the shutdown then gets 503 "reload", not 400. */
  stopping?: () => boolean;
  /** Remote waiting on `/v1/wait`, when client tokens are configured; 404 there otherwise. */
  wait?: WaitRoute;
}

/** A callback the relay refuses before routing it; becomes a 4xx page. */
class RequestProblem extends Error {
  constructor(readonly status: number, message: string, readonly interrupted = false) {
    super(message);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

const completeResponse = fixedPage(completePage());
const alreadyCompletedResponse = fixedPage(alreadyCompletedPage());
const noClientResponse = fixedPage(noClientPage());

async function readBody(request: Request, maxBytes: number, timeoutMs: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw new RequestProblem(413, `Request body larger than ${maxBytes} bytes`);
  if (!request.body) return new Uint8Array();
  // Copy every chunk into one buffer: a chunk is a view of a 64 KiB read buffer, and
  // keeping the views would pin 64 KiB per one-byte chunk a stranger sends. The buffer
  // grows with what arrives, not with what Content-Length promises: a flood of dribbled
  // bodies that each declare 64 KiB then holds only the bytes actually sent.
  let body = new Uint8Array(0);
  let size = 0;
  const reader = request.body.getReader();
  // A sender that dribbles its body must not hold the request open (docs/security.md rule 10).
  let late = false;
  const deadline = deadlines.after(timeoutMs, () => {
    late = true;
    reader.cancel().catch(() => {});
  });
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch {
        // The sender went away mid-body (or sent a broken chunked encoding).
        throw new RequestProblem(400, "Request body could not be read to the end", true);
      }
      if (late) throw new RequestProblem(408, `Request body not received within ${timeoutMs / 1000} seconds`);
      const { done, value } = chunk;
      if (done) break;
      if (size + value.length > maxBytes) {
        // Stop reading at the limit, also for chunked bodies without Content-Length.
        await reader.cancel().catch(() => {});
        throw new RequestProblem(413, `Request body larger than ${maxBytes} bytes`);
      }
      if (size + value.length > body.length) {
        const grown = new Uint8Array(Math.min(maxBytes, Math.max(body.length * 2, size + value.length, 256)));
        grown.set(body.subarray(0, size));
        body = grown;
      }
      body.set(value, size);
      size += value.length;
    }
  } finally {
    deadlines.cancel(deadline);
    reader.releaseLock();
  }
  return body.subarray(0, size);
}

function decodeText(body: Uint8Array): string {
  try {
    return utf8.decode(body);
  } catch {
    throw new RequestProblem(400, "Request body is not valid UTF-8");
  }
}

async function readParams(request: Request, url: URL, limits: HttpLimits): Promise<CallbackParams> {
  const params: CallbackParams = {};
  let count = 0;
  const add = (key: string, value: unknown) => {
    if (++count > limits.maxParams) throw new RequestProblem(400, `More than ${limits.maxParams} parameters`);
    if (key.length > limits.maxKeyLength) {
      throw new RequestProblem(400, `A parameter name is longer than ${limits.maxKeyLength} characters`);
    }
    if (typeof value === "string" && value.length > limits.maxValueLength) {
      throw new RequestProblem(
        400,
        `Parameter ${quote(key.slice(0, 40))} is longer than ${limits.maxValueLength} characters`,
      );
    }
    addParam(params, key, value);
  };
  checkPercentEncoding(url.search.slice(1), "query");
  for (const [key, value] of url.searchParams) add(key, value);

  if (request.method !== "POST") return params;
  const body = await readBody(request, limits.maxBodyBytes, limits.bodyTimeoutMs);
  if (body.length === 0) return params;
  const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type === "application/x-www-form-urlencoded") {
    const text = decodeText(body);
    checkPercentEncoding(text, "body");
    for (const [key, value] of new URLSearchParams(text)) add(key, value);
  } else if (type === "application/json" || type.endsWith("+json")) {
    let json: unknown;
    try {
      json = JSON.parse(decodeText(body));
    } catch (error) {
      if (error instanceof RequestProblem) throw error;
      throw new RequestProblem(400, "Request body is not valid JSON");
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new RequestProblem(400, "JSON body must be an object");
    }
    for (const [key, value] of Object.entries(json)) {
      // An empty list stays a parameter: `"state": []` must not make a callback stateless.
      if (!Array.isArray(value) || value.length === 0) add(key, value);
      else for (const item of value) add(key, item);
    }
  } else {
    throw new RequestProblem(
      415,
      `Unsupported content type "${type || "none"}": send application/x-www-form-urlencoded or application/json`,
    );
  }
  return params;
}

/**
 * URLSearchParams turns a percent-encoded byte that is not UTF-8 into U+FFFD
 * without a word; a code or state altered that way must be refused, not delivered.
 */
function checkPercentEncoding(text: string, where: "query" | "body"): void {
  if (!text.includes("%")) return;
  try {
    decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    throw new RequestProblem(400, `The ${where} has malformed percent-encoding or is not valid UTF-8 once decoded`);
  }
}

function text(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && typeof value[0] === "string") return value[0];
  return null;
}

/**
 * Creates the relay's HTTP handler.
 *
 * @param options Settings, where to route callbacks, the logger and limits.
 * @returns A handler for `Deno.serve` or for direct calls in tests.
 */
export function createHandler(
  options: HandlerOptions,
): (request: Request, info?: { remoteAddr: Deno.Addr }) => Promise<Response> {
  const { settings, registry, logger, coordinator } = options;
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...options.limits };

  async function callback(request: Request, url: URL): Promise<Response> {
    if (request.method !== "GET" && request.method !== "POST") {
      return pageResponse(badRequestPage(405, `Method ${request.method} is not allowed here`), {
        allow: "GET, POST",
      });
    }
    if (logger.debugEnabled) logger.debug(`Callback request: ${request.method}`);
    try {
      if (request.url.length > limits.maxUrlLength) {
        throw new RequestProblem(414, `Request URL longer than ${limits.maxUrlLength} characters`);
      }
      const params = await readParams(request, url, limits);
      const result = extractCallback(params, settings.codeKeys);
      const outcome = await registry.claim(result);
      // Not 404 when the registry cannot be asked: nothing says nobody waits; the person reloads.
      if (outcome === "unavailable") return unavailableResponse();
      if (outcome === "delivered") {
        if (result.success) return completeResponse();
        return pageResponse(deniedPage(text(params.error), text(params.error_description)));
      }
      if (outcome === "already_delivered") {
        logger.limited(
          "info",
          "replayed callbacks",
          `Replayed callback for already delivered state ${quote(result.state)} - dropping it`,
        );
        return alreadyCompletedResponse();
      }
      if (settings.logUnmatched) {
        logger.limited(
          "info",
          "callbacks nobody waited for",
          `No client waiting for state ${quote(result.state)} - dropping callback`,
        );
      }
      if (logger.debugEnabled) {
        logger.debug(
          `Unmatched callback had ${redactCode(result.code)} and parameters ${
            Object.keys(params).map(quote).join(", ")
          }`,
        );
      }
      return noClientResponse();
    } catch (error) {
      if (error instanceof AmbiguousCallbackError) {
        logger.limited("info", "refused callbacks", `Refused callback: ${error.message}`);
        return pageResponse(badRequestPage(400, error.message));
      }
      if (error instanceof RequestProblem && error.interrupted && options.stopping?.()) {
        // The shutdown cut this body off: the person reloads once the relay is back.
        return unavailableResponse();
      }
      if (error instanceof RequestProblem) {
        logger.debug(`Refused callback (${error.status}): ${error.message.replace(/[^\x20-\x7e]/g, "?")}`);
        return pageResponse(badRequestPage(error.status, error.message));
      }
      throw error;
    }
  }

  async function health(): Promise<Response> {
    // A shared registry that cannot be reached makes this relay unable to serve: 503, with the reason.
    const { ok, waiting, reason, details } = await registry.status();
    return Response.json({
      status: ok ? "ok" : "unavailable",
      ...(reason === undefined ? {} : { reason }),
      enabled: settings.enabled,
      coordinator: coordinator(),
      waiting,
      ...details,
      // OAUTH_PUBLIC_URL, and the redirect URI to register at providers, when the relay knows them.
      ...(settings.publicUrl === undefined
        ? {}
        : { publicUrl: settings.publicUrl, redirectUri: settings.publicUrl + settings.callbackPath }),
    }, { status: ok ? 200 : 503, headers: { "cache-control": "no-store", "x-content-type-options": "nosniff" } });
  }

  return async (request, info) => {
    const url = new URL(request.url);
    if (url.pathname === "/health" && (request.method === "GET" || request.method === "HEAD")) return await health();
    if (settings.enabled && url.pathname === settings.callbackPath) return await callback(request, url);
    if (settings.enabled && options.wait && url.pathname === WAIT_PATH) {
      const address = info?.remoteAddr;
      const peer = address && "hostname" in address ? `${address.hostname}:${address.port}` : "a local client";
      return await options.wait.handle(request, peer);
    }
    return new Response("Not found\n", {
      status: 404,
      headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8" },
    });
  };
}
