// This module is browser compatible.

/**
 * What the client reads from the runtime it runs on, found without importing
 * anything runtime-specific: the environment and the operating system.
 *
 * @module
 */

/** Reads one environment variable. */
export interface Env {
  get(name: string): string | undefined;
}

interface DenoLike {
  env: Env;
  build: { os: string };
  permissions: { querySync(descriptor: { name: "env" }): { state: string } };
}

interface ProcessLike {
  env: Record<string, string | undefined>;
  platform: string;
}

const deno = (globalThis as { Deno?: DenoLike }).Deno;
const process = (globalThis as { process?: ProcessLike }).process;

/**
 * The environment when the program may read it, else `undefined`: on Deno
 * without `--allow-env` the client works on defaults and never prompts; on
 * Node and Bun it is `process.env`.
 *
 * @returns A reader of environment variables, or `undefined`.
 *
 * @example
 * ```ts
 * import { readableEnv } from "./env.ts";
 *
 * const socketPath = readableEnv()?.get("OAUTH_SOCKET_PATH") ?? "/tmp/poast-relay-oauth.sock";
 * console.log(socketPath);
 * ```
 */
export function readableEnv(): Env | undefined {
  if (deno) {
    try {
      return deno.permissions.querySync({ name: "env" }).state === "granted" ? deno.env : undefined;
    } catch {
      return undefined;
    }
  }
  if (process?.env) {
    const env = process.env;
    return { get: (name) => env[name] };
  }
  return undefined;
}

/** The operating system as `Deno.build.os` names it (`"windows"` turns on TCP mode), or `"unknown"`. */
export const platform: string = deno?.build.os ??
  (process?.platform === "win32" ? "windows" : process?.platform) ?? "unknown";
