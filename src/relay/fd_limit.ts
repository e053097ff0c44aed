/**
 * The process's file limit (the soft `RLIMIT_NOFILE`), read once at start so
 * the relay can size its connection caps to it (./fd_budget.ts).
 *
 * Deno 2.9 has no `getrlimit`, and reading `/proc/self/limits` needs
 * `--allow-all` even with `--allow-read=/proc`. A child `sh -c "ulimit -n"`
 * inherits the limit and prints it, with only `--allow-run=sh`: that is the
 * one way in, and the reason `deno task serve` grants it.
 *
 * @module
 */

/** Where a {@linkcode FileLimit} came from. */
export type FileLimitSource =
  /** Printed by `sh -c "ulimit -n"`. */
  | "sh"
  /** Given by the caller (tests, or a deployment that knows better). */
  | "given"
  /** Windows has no per-process limit of this kind. */
  | "none"
  /** Not readable here: the relay assumes {@linkcode ASSUMED_FILE_LIMIT}. */
  | "assumed";

/** The file limit the relay sizes its caps to. */
export interface FileLimit {
  /** Descriptors the process may hold at once; `Infinity` when there is no limit. */
  limit: number;
  /** How the relay knows it. */
  source: FileLimitSource;
  /** Why the limit could not be read, when `source` is `"assumed"`. */
  why?: string;
}

/** What the relay assumes when it cannot read the limit: the usual soft default on Linux. */
export const ASSUMED_FILE_LIMIT = 1024;

/** Parses what `ulimit -n` prints: a count or `unlimited`. */
export function parseUlimit(text: string): number | undefined {
  const value = text.trim();
  if (value === "unlimited") return Infinity;
  if (!/^\d+$/.test(value)) return undefined;
  const limit = Number(value);
  return limit > 0 ? limit : undefined;
}

let read: Promise<FileLimit> | undefined;

/**
 * The file limit, read once per process (it cannot change under Deno). Never
 * prompts: the permission is queried first, and without it the limit is
 * assumed ({@linkcode ASSUMED_FILE_LIMIT}) and `why` says what to grant.
 */
export function readFileLimit(): Promise<FileLimit> {
  return read ??= readOnce();
}

async function readOnce(): Promise<FileLimit> {
  if (Deno.build.os === "windows") return { limit: Infinity, source: "none" };
  const assumed = (why: string): FileLimit => ({ limit: ASSUMED_FILE_LIMIT, source: "assumed", why });
  let state: Deno.PermissionState;
  try {
    state = (await Deno.permissions.query({ name: "run", command: "sh" })).state;
  } catch {
    state = "denied";
  }
  if (state !== "granted") return assumed("run with --allow-run=sh to read it");
  try {
    // An empty environment: `ulimit` is a shell builtin, and nothing of ours reaches the child.
    const { stdout, success } = await new Deno.Command("sh", {
      args: ["-c", "ulimit -n"],
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const limit = success ? parseUlimit(new TextDecoder().decode(stdout)) : undefined;
    return limit === undefined ? assumed("`sh -c 'ulimit -n'` printed no limit") : { limit, source: "sh" };
  } catch (error) {
    return assumed(`\`sh -c 'ulimit -n'\` failed: ${error instanceof Error ? error.message.split("\n")[0] : error}`);
  }
}
