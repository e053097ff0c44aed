/**
 * Stress scenario 3a, second half: generated requests straight into the HTTP
 * handler (no socket), half of them with tight limits. Every answer must have
 * an allowed status and the security headers.
 *
 * @module
 */

import fc from "fast-check";
import { checkHandlerAnswer, fuzzHandler, requestArb, TIGHT_LIMITS, toRequest } from "../generators.ts";

/** Figures of {@linkcode fuzzHandlerDirect}. */
export interface HandlerFigures {
  requests: number;
  statuses: Record<string, number>;
  /** Throws, disallowed statuses or missing security headers. */
  failures: number;
  failure: string | null;
  ms: number;
}

/** Calls the HTTP handler directly (no socket) with generated requests. */
export async function fuzzHandlerDirect(options: { requests: number; seed: number }): Promise<HandlerFigures> {
  const statuses: Record<string, number> = {};
  let requests = 0, failure: string | null = null;
  const started = performance.now();
  try {
    await fc.assert(
      fc.asyncProperty(requestArb, fc.boolean(), async (spec, tight) => {
        const request = toRequest("http://127.0.0.1:8000", spec);
        if (!request) return;
        requests++;
        const status = await checkHandlerAnswer(fuzzHandler(tight ? TIGHT_LIMITS : undefined), request);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }),
      { numRuns: options.requests, seed: options.seed, endOnFailure: true },
    );
  } catch (error) {
    failure = error instanceof Error ? error.message.split("\n").slice(0, 6).join(" | ") : String(error);
  }
  return { requests, statuses, failures: failure ? 1 : 0, failure, ms: performance.now() - started };
}
