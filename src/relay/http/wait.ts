/**
 * `POST /v1/wait` and `DELETE /v1/wait`: remote waiting over HTTPS. A client
 * authenticated by a bearer token registers a state and receives server-sent
 * events (`registered`, then `callback` or `error`); with the `resume` secret
 * from `registered` it takes the registration back after its stream broke.
 * The waiter lifecycle is the same as on the socket (`../waiter.ts`).
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { ERROR_CODES, MAX_LINE_BYTES, newNonce, PROTOCOL_VERSION } from "../../protocol/mod.ts";
import { type Logger, quote } from "../log.ts";
import { ClientWaiter, type WaiterPolicy } from "../waiter.ts";
import type { ClientTokens } from "./client_tokens.ts";
import { RemoteLink } from "./remote_link.ts";

/** Options of {@linkcode createWaitRoute}. */
export interface WaitRouteOptions {
  /** The tokens clients present. */
  tokens: ClientTokens;
  /** The rules every waiter obeys (registry, timeouts). */
  policy: WaiterPolicy;
  logger: Logger;
  /** Most registrations one token may hold. */
  maxPerToken: number;
  /** Milliseconds between heartbeats on an idle stream. */
  heartbeatMs: number;
  /** Milliseconds a registration (or its callback) is kept after its stream broke. */
  graceMs: number;
}

/** The remote-wait route, and what the relay needs to stop it. */
export interface WaitRoute {
  /** Answers `POST` and `DELETE` on `/v1/wait`. */
  handle(request: Request, peer: string): Promise<Response>;
  /** Registrations held now. */
  readonly size: number;
  /** Ends every registration with `code` (shutdown). */
  endAll(code: typeof ERROR_CODES.SHUTDOWN, message: string): Promise<void>;
}

/** HTTP status of each refusal before a stream starts. */
const STATUS: Record<string, number> = {
  [ERROR_CODES.UNAUTHORIZED]: 401,
  [ERROR_CODES.PROTOCOL]: 400,
  [ERROR_CODES.STATE_TAKEN]: 409,
  [ERROR_CODES.STATE_USED]: 410,
  [ERROR_CODES.TOO_MANY_WAITERS]: 503,
  [ERROR_CODES.UNAVAILABLE]: 503,
};

function refusal(code: string, message: string, status = STATUS[code] ?? 400, headers: HeadersInit = {}): Response {
  return Response.json({ code, message }, {
    status,
    headers: { "cache-control": "no-store", "x-content-type-options": "nosniff", ...headers },
  });
}

function unauthorized(reason: "missing" | "wrong"): Response {
  // RFC 6750 §3: the challenge, and invalid_token when a token was presented.
  const challenge = reason === "wrong"
    ? 'Bearer realm="oauth-relay", error="invalid_token"'
    : 'Bearer realm="oauth-relay"';
  return refusal(
    ERROR_CODES.UNAUTHORIZED,
    reason === "wrong" ? "The client token is not valid here" : "A client token is required: Authorization: Bearer …",
    401,
    { "www-authenticate": challenge },
  );
}

/** Equal secrets in constant time (both are 43 characters when well-formed). */
function sameSecret(expected: string, presented: string): boolean {
  const a = new TextEncoder().encode(expected);
  const b = new TextEncoder().encode(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

interface WaitRequest {
  state: string;
  timeout?: number;
  resume?: string;
}

async function readWaitRequest(request: Request): Promise<WaitRequest | string> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") return "The body must be JSON (Content-Type: application/json)";
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_LINE_BYTES) return `The body is larger than ${MAX_LINE_BYTES} bytes`;
  // Read at most the limit, also for a chunked body without Content-Length. The chunks are kept as they
  // come rather than copied into a buffer of the limit's size: a waiter holds its connection for minutes,
  // and 16 KiB of garbage per registration would sit in memory until the next collection.
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of request.body ?? []) {
      size += chunk.length;
      if (size > MAX_LINE_BYTES) return `The body is larger than ${MAX_LINE_BYTES} bytes`;
      chunks.push(chunk);
    }
  } catch {
    return "The body could not be read";
  }
  let body = chunks[0] ?? new Uint8Array(0);
  if (chunks.length > 1) {
    body = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      body.set(chunk, at);
      at += chunk.length;
    }
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return "The body is not valid UTF-8";
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return "The body is not valid JSON";
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return "The body must be a JSON object";
  const { state, timeout, resume } = json as Record<string, unknown>;
  // Single-slot mode stays local: a remote client always names its state.
  if (typeof state !== "string" || state === "") return '"state" is required and must be a non-empty string';
  if (timeout !== undefined && timeout !== null && (typeof timeout !== "number" || !(timeout > 0))) {
    return '"timeout" must be a positive number of seconds';
  }
  if (resume !== undefined && resume !== null && typeof resume !== "string") return '"resume" must be a string';
  return { state, timeout: (timeout ?? undefined) as number | undefined, resume: (resume ?? undefined) as string };
}

/**
 * Creates the remote-wait route.
 *
 * @param options Tokens, waiter rules, caps and timings.
 * @returns The route.
 */
export function createWaitRoute(options: WaitRouteOptions): WaitRoute {
  const { tokens, policy, logger } = options;
  const links = new Map<string, RemoteLink>();
  const perToken = new Map<string, number>();

  // One timer for every stream, not one each.
  const heartbeat = setInterval(() => {
    for (const link of links.values()) if (link.attached) link.heartbeat();
  }, options.heartbeatMs);
  Deno.unrefTimer(heartbeat as unknown as number);

  function tokenFull(): Response {
    return refusal(
      ERROR_CODES.TOO_MANY_WAITERS,
      `This client token already holds ${options.maxPerToken} waiting registrations; try again later`,
      429,
      { "retry-after": "5" },
    );
  }

  /** A link and its waiter for `state`, counted against the token until the link is gone. */
  function newLink(state: string, resume: string, fingerprint: string, peer: string): RemoteLink {
    const link = new RemoteLink({
      state,
      resume,
      peer: `token ${fingerprint} at ${peer}`,
      token: fingerprint,
      graceMs: options.graceMs,
      logger,
      onGone() {
        if (links.get(state) === link) links.delete(state);
        const left = (perToken.get(fingerprint) ?? 1) - 1;
        if (left > 0) perToken.set(fingerprint, left);
        else perToken.delete(fingerprint);
      },
    });
    perToken.set(fingerprint, (perToken.get(fingerprint) ?? 0) + 1);
    link.waiter = new ClientWaiter(link, policy);
    return link;
  }

  /** Answers with the link's stream, or with the refusal that ended it. */
  async function opened(link: RemoteLink): Promise<Response> {
    const opening = await link.opening;
    if (opening.kind === "stream") {
      links.set(link.state, link);
      return opening.response;
    }
    // The registry's per-token cap (a shared registry counts every relay's waiters): as this relay's own.
    if (opening.code === ERROR_CODES.TOO_MANY_WAITERS && opening.limit === "token") {
      return refusal(opening.code, opening.message, 429, { "retry-after": "5" });
    }
    const retry: HeadersInit = STATUS[opening.code] === 503 ? { "retry-after": "5" } : {};
    return refusal(opening.code, opening.message, undefined, retry);
  }

  async function register(request: WaitRequest, fingerprint: string, peer: string): Promise<Response> {
    if ((perToken.get(fingerprint) ?? 0) >= options.maxPerToken) return tokenFull();
    const link = newLink(request.state, newNonce(), fingerprint, peer);
    await link.waiter!.register(
      { v: PROTOCOL_VERSION, type: "register", state: request.state, timeout: request.timeout },
      "none",
    );
    return await opened(link);
  }

  /**
   * A resume for a registration this relay does not hold: the registry may
   * hold it for another relay (its relay died, or the balancer sent the
   * client here). `undefined` when nobody holds it: register afresh.
   */
  async function resumeFromRegistry(request: WaitRequest & { resume: string }, fingerprint: string, peer: string) {
    const link = newLink(request.state, request.resume, fingerprint, peer);
    const outcome = await link.waiter!.resume(
      { v: PROTOCOL_VERSION, type: "register", state: request.state, timeout: request.timeout },
    );
    if (outcome === "absent" || outcome === "refused") {
      link.cancel();
      if (outcome === "absent") return undefined;
      logger.limited(
        "warn",
        "resumes with a wrong secret",
        `Refused a resume for state ${quote(request.state)}: wrong secret`,
      );
      return refusal(ERROR_CODES.STATE_TAKEN, "Another client is already waiting for this state");
    }
    if (outcome === "resumed") {
      logger.info(`Client took over its wait for state: ${quote(request.state)} (token ${fingerprint} at ${peer})`);
    }
    return await opened(link);
  }

  async function post(request: Request, fingerprint: string, peer: string): Promise<Response> {
    const body = await readWaitRequest(request);
    if (typeof body === "string") return refusal(ERROR_CODES.PROTOCOL, body, 400);
    if (body.resume !== undefined) {
      const link = links.get(body.state);
      if (link && !link.gone) {
        if (!sameSecret(link.resume, body.resume)) {
          // Whoever sends a wrong secret learns nothing and disturbs nobody.
          logger.limited(
            "warn",
            "resumes with a wrong secret",
            `Refused a resume for state ${quote(body.state)}: wrong secret`,
          );
          return refusal(ERROR_CODES.STATE_TAKEN, "Another client is already waiting for this state");
        }
        logger.info(`Client resumed its wait for state: ${quote(body.state)} (token ${fingerprint} at ${peer})`);
        return link.attach();
      }
      // Unknown here: another relay sharing the registry may have held it.
      const taken = await resumeFromRegistry({ ...body, resume: body.resume }, fingerprint, peer);
      if (taken) return taken;
      // Held nowhere (e.g. the relay restarted): register afresh; the registry still refuses a used state.
    }
    return await register(body, fingerprint, peer);
  }

  async function cancel(request: Request, fingerprint: string, peer: string): Promise<Response> {
    const body = await readWaitRequest(request);
    if (typeof body === "string") return refusal(ERROR_CODES.PROTOCOL, body, 400);
    const link = links.get(body.state);
    if (link && !link.gone) {
      if (body.resume !== undefined && sameSecret(link.resume, body.resume)) {
        logger.info(`Client cancelled its wait for state: ${quote(body.state)}`);
        link.cancel();
      }
    } else if (body.resume !== undefined) {
      // Held at another relay sharing the registry (the balancer sent the cancel here): take it over with the
      // secret, as a resume would, and let it go at once. A wrong secret takes nothing and disturbs nobody.
      const taken = newLink(body.state, body.resume, fingerprint, peer);
      const outcome = await taken.waiter!.resume(
        { v: PROTOCOL_VERSION, type: "register", state: body.state, timeout: body.timeout },
        // A callback already kept is not written here, to a stream nobody reads: it stays kept, for the
        // secret's holder only, until the grace period ends.
        "drop",
      );
      if (outcome === "resumed") {
        logger.info(`Client cancelled its wait for state: ${quote(body.state)} (held elsewhere)`);
      }
      taken.cancel();
    }
    // The same answer whether or not there was such a registration.
    return new Response(null, { status: 204, headers: { "cache-control": "no-store" } });
  }

  return {
    async handle(request, peer) {
      if (request.method !== "POST" && request.method !== "DELETE") {
        return refusal(ERROR_CODES.PROTOCOL, `Method ${request.method} is not allowed here`, 405, {
          allow: "POST, DELETE",
        });
      }
      const check = tokens.check(request.headers.get("authorization"));
      if (!check.ok) {
        logger.limited(
          "warn",
          "remote waiters refused for their token",
          `Refused remote waiter from ${peer}: ${check.reason === "wrong" ? "wrong" : "no"} client token`,
        );
        return unauthorized(check.reason);
      }
      return request.method === "POST"
        ? await post(request, check.fingerprint, peer)
        : await cancel(request, check.fingerprint, peer);
    },
    get size() {
      return links.size;
    },
    async endAll(code, message) {
      clearInterval(heartbeat);
      await Promise.all([...links.values()].map((link) => link.waiter?.end(code, message)));
    },
  };
}
