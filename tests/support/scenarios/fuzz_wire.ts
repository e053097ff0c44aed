/**
 * Stress scenario 3b: generated frames to the live coordinator and generated
 * requests to the live HTTP side, over real connections.
 *
 * @module
 */

import fc from "fast-check";
import { ALLOWED_STATUSES, frameArb, missingSecurityHeaders, requestArb, toRequest } from "../generators.ts";
import { connectTo, drained, pool, readAll, type Target } from "../load.ts";

/** Figures of {@linkcode fuzzWire}. */
export interface WireFigures {
  /** Coordinator connections that each sent one generated frame. */
  frames: number;
  /** Answers by kind: `registered`, or the error code the relay sent. */
  answers: Record<string, number>;
  /** Connections the relay never answered within 5 s. */
  unanswered: number;
  coordinatorConnectErrors: number;
  /** Generated HTTP requests sent over the network. */
  requests: number;
  statuses: Record<string, number>;
  /** 5xx, disallowed statuses, missing security headers. */
  badAnswers: number;
  badAnswer: string | null;
  httpErrors: number;
  waitingAfter: number;
  relayErrors: number;
  ms: number;
}

/**
 * Sends generated frames to the live coordinator, one connection each (a bad
 * frame ends its connection), and generated requests to the live HTTP side.
 * Every frame must be answered; every request must get an allowed status with
 * the security headers, never a 5xx.
 */
export async function fuzzWire(
  target: Target,
  options: { frames: number; requests: number; concurrency: number; seed: number },
): Promise<WireFigures> {
  const errorsBefore = (await target.errors()).length;
  const started = performance.now();
  const answers: Record<string, number> = {};
  let unanswered = 0, coordinatorConnectErrors = 0;
  const frames = fc.sample(frameArb, { numRuns: options.frames, seed: options.seed });
  await pool(frames, options.concurrency, async (frame) => {
    let conn: Deno.Conn;
    try {
      conn = await connectTo(target.coordinator);
    } catch {
      coordinatorConnectErrors++;
      return;
    }
    const reading = readAll(conn, 5_000, true);
    try {
      const bytes = new Uint8Array(frame.length + 1);
      bytes.set(frame);
      bytes[frame.length] = 10;
      for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
    } catch { /* the relay may close before the whole frame is written */ }
    // A registered client would wait; this one has seen enough once the first answer arrives.
    const { text } = await reading;
    const first = text.split("\n")[0];
    if (!first) unanswered++;
    else {
      let kind = "unreadable";
      try {
        const message = JSON.parse(first);
        kind = message.type === "error" ? `error:${message.code}` : String(message.type);
      } catch { /* counted as unreadable */ }
      answers[kind] = (answers[kind] ?? 0) + 1;
    }
    try {
      conn.close();
    } catch { /* closed by readAll or the relay */ }
  });

  const statuses: Record<string, number> = {};
  let badAnswers = 0, badAnswer: string | null = null, httpErrors = 0;
  const specs = fc.sample(requestArb, { numRuns: options.requests, seed: options.seed + 1 });
  await pool(specs, options.concurrency, async (spec) => {
    // fetch() sets Content-Length itself; a forged one is the direct handler test's job.
    const request = toRequest(target.url, { ...spec, contentLength: null });
    if (!request) return;
    let response: Response;
    try {
      response = await fetch(request, { signal: AbortSignal.timeout(30_000) });
      await response.arrayBuffer();
    } catch {
      httpErrors++;
      return;
    }
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    const path = new URL(request.url).pathname;
    const missing = path === "/health" ? [] : missingSecurityHeaders(response.headers);
    if ((path !== "/health" && !ALLOWED_STATUSES.has(response.status)) || response.status >= 500 || missing.length) {
      badAnswers++;
      badAnswer ??= `${request.method} ${request.url} -> ${response.status} ${missing.join(",")}`;
    }
  });
  return {
    frames: frames.length,
    answers,
    unanswered,
    coordinatorConnectErrors,
    requests: specs.length,
    statuses,
    badAnswers,
    badAnswer,
    httpErrors,
    waitingAfter: await drained(target),
    relayErrors: (await target.errors()).length - errorsBefore,
    ms: performance.now() - started,
  };
}
