// This module is browser compatible.

/**
 * What the client reads from the runtime it runs on, found without importing
 * anything runtime-specific: the environment, the operating system and the
 * process's uid. On Deno each is read only when the program was granted the
 * permission (`--allow-env`, `--allow-sys=uid`): the client never prompts.
 * On Node and Bun they come from `process`.
 *
 * @module
 */

/** Reads one environment variable. */
export interface Env {
  /** The variable's value, or `undefined` when it is unset. */
  get(name: string): string | undefined;
}

interface DenoLike {
  env: Env;
  build: { os: string };
  permissions: { querySync(descriptor: { name: "env" } | { name: "sys"; kind: "uid" }): { state: string } };
  uid(): number | null;
}

interface ProcessLike {
  env: Record<string, string | undefined>;
  platform: string;
  getuid?: () => number;
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

/**
 * This process's user id, to tell whether a Unix socket is its own: on Deno
 * only with `--allow-sys=uid` (never prompts), on Node and Bun from
 * `process.getuid()`.
 *
 * @returns The uid, or `undefined` when it may not be asked or the system has none (Windows).
 *
 * @example
 * ```ts
 * import { ownUid } from "./env.ts";
 *
 * const uid = ownUid();
 * console.log(uid === undefined ? "uid unknown" : `uid ${uid}`);
 * ```
 */
export function ownUid(): number | undefined {
  try {
    if (deno) {
      if (deno.permissions.querySync({ name: "sys", kind: "uid" }).state !== "granted") return undefined;
      return deno.uid() ?? undefined;
    }
    return process?.getuid?.();
  } catch {
    return undefined;
  }
}

/** Whether this is Deno (whose own APIs the client then uses), rather than Node, Bun or another runtime. */
export const onDeno: boolean = deno !== undefined;

/** The operating system as `Deno.build.os` names it (`"windows"` turns on TCP mode), or `"unknown"`. */
export const platform: string = deno?.build.os ??
  (process?.platform === "win32" ? "windows" : process?.platform) ?? "unknown";
