/**
 * Finding the code and the state in what the provider sent.
 *
 * @module
 */

import type { OAuthCallbackResult } from "../../protocol/mod.ts";

/** Parameters of a callback: one value, or several when a key repeats (or a JSON array). */
export type CallbackParams = Record<string, unknown>;

/** Thrown when a callback's state is ambiguous or unusable; the HTTP side answers 400 and delivers nothing. */
export class AmbiguousCallbackError extends Error {
  /** @param message What is ambiguous. */
  constructor(message: string) {
    super(message);
    this.name = "AmbiguousCallbackError";
  }
}

/** Adds `value` under `key`, turning a repeated key into a list (query/form semantics). */
export function addParam(params: CallbackParams, key: string, value: unknown): void {
  if (!Object.hasOwn(params, key)) {
    params[key] = value;
    return;
  }
  const existing = params[key];
  const list = Array.isArray(existing) ? existing : [existing];
  params[key] = list.concat(value);
}

/** The first non-empty string of a value or list: an empty code is no code, wherever it stands. */
function firstString(value: unknown): string | null {
  if (typeof value === "string") return value || null;
  if (Array.isArray(value)) {
    for (const item of value) if (typeof item === "string" && item !== "") return item;
  }
  return null;
}

/**
 * Extracts the code and the state from callback parameters.
 *
 * Keys are matched case-insensitively; `codeKeys` is tried in order and, for
 * each key, a list value yields its first non-empty string. An empty code is no code.
 *
 * @param params Query and body parameters, merged.
 * @param codeKeys Lower-case parameter names that may hold the code.
 * @returns The result to deliver; `raw` is always the full payload.
 * @throws {AmbiguousCallbackError} When the callback names two different states (RFC 6749 §3.1),
 *   or a state that is empty or not a string.
 *
 * @example
 * ```ts
 * import { extractCallback } from "./extract.ts";
 * import assert from "node:assert/strict";
 *
 * const result = extractCallback({ CODE: "abc", State: "s1" }, ["code"]);
 * assert.equal(result.code, "abc");
 * assert.equal(result.state, "s1");
 * ```
 */
export function extractCallback(params: CallbackParams, codeKeys: readonly string[]): OAuthCallbackResult {
  const byLowerKey = new Map<string, unknown[]>();
  for (const [key, value] of Object.entries(params)) {
    const lower = key.toLowerCase();
    const found = byLowerKey.get(lower);
    if (found) found.push(value);
    else byLowerKey.set(lower, [value]);
  }

  let code: string | null = null;
  for (const key of codeKeys) {
    for (const value of byLowerKey.get(key) ?? []) {
      code = firstString(value);
      if (code) break;
    }
    if (code) break;
  }

  let state: string | null = null;
  const states = new Set<string>();
  for (const value of byLowerKey.get("state") ?? []) {
    for (const item of Array.isArray(value) && value.length > 0 ? value : [value]) {
      // A state that is there but unusable must not turn the callback into a stateless one.
      if (typeof item !== "string" || item === "") {
        throw new AmbiguousCallbackError("The callback's state is empty or not a string");
      }
      states.add(item);
    }
  }
  if (states.size > 1) {
    throw new AmbiguousCallbackError("The callback carries more than one state value");
  }
  for (const item of states) state = item;

  return { success: code !== null && code !== "", code: code || null, state, raw: params };
}
