/**
 * Writing a secret to a file only its owner can read: the CLI's `--out`. The
 * file is written under a new name with mode 0600 and then renamed over the
 * target, so it never exists with wider permissions or half written, and a
 * symbolic link at the target is replaced, not followed.
 *
 * The rule is here once; the file system calls come from this runtime's
 * adapter (`secret_file_deno.ts` on Deno, `secret_file_node.ts` with
 * `node:fs` on Node and Bun), loaded on first use. Deno runs `node:fs` too,
 * but not for free: loading it adds about 5 ms and 2.6 MB to the start of
 * `client.ts` (median of 40 runs of `--help`, Deno 2.9).
 *
 * @module
 */

import { onDeno, platform } from "../client/env.ts";

/** Owner read and write, nothing for anyone else. */
export const SECRET_FILE_MODE = 0o600;

/** A file that cannot be written; `message` says where and why in one line. */
export class SecretFileError extends Error {
  /**
   * Creates the error.
   *
   * @param message One line: which file, why, what to do.
   * @param options `cause` keeps the system error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SecretFileError";
  }
}

/**
 * The file system calls a secret file needs, from a runtime adapter
 * (`secret_file_deno.ts`, `secret_file_node.ts`, both exporting `secretFileSystem`).
 */
export interface SecretFileSystem {
  /** Whether `path` is a directory; `undefined` when nothing is there. */
  isDirectory(path: string): Promise<boolean | undefined>;
  /** Creates `path` with `mode` and writes `text` to it; fails when anything is there (a link is not followed). */
  createNew(path: string, mode: number, text: string): Promise<void>;
  /** Sets exactly `mode` on `path`. */
  chmod(path: string, mode: number): Promise<void>;
  /** Renames `from` to `to`, replacing what is at `to`. */
  rename(from: string, to: string): Promise<void>;
  /** Removes the file `path`; nothing when it is gone. */
  remove(path: string): Promise<void>;
  /** Why a call about `path` failed, in a few lower-case words, or what permission to grant. */
  reason(error: unknown, path: string): string;
}

let adapter: Promise<SecretFileSystem> | undefined;

/** This runtime's file system calls: each runtime loads only its own adapter. */
function fileSystem(): Promise<SecretFileSystem> {
  return adapter ??= onDeno
    ? import("./secret_file_deno.ts").then((module) => module.secretFileSystem)
    : import("./secret_file_node.ts").then((module) => module.secretFileSystem);
}

function temporaryName(path: string): string {
  const slash = path.lastIndexOf("/");
  const random = crypto.getRandomValues(new Uint32Array(2)).join("");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${random}.tmp`;
}

/**
 * Checks that `path` can be written, before anything is asked of a person:
 * its directory exists and takes a new file, and it is not a directory.
 *
 * @param path The file to write later.
 * @throws {SecretFileError} When it cannot be written.
 *
 * @example
 * ```ts
 * import { checkSecretFile, SecretFileError } from "./secret_file.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(checkSecretFile("/nonexistent/dir/tokens.json"), SecretFileError);
 * ```
 */
export async function checkSecretFile(path: string): Promise<void> {
  const fs = await fileSystem();
  try {
    if (await fs.isDirectory(path)) throw new SecretFileError(`Cannot write ${path}: it is a directory`);
    const probe = temporaryName(path);
    await fs.createNew(probe, SECRET_FILE_MODE, "");
    await fs.remove(probe);
  } catch (error) {
    if (error instanceof SecretFileError) throw error;
    throw new SecretFileError(`Cannot write ${path}: ${fs.reason(error, path)}`, { cause: error });
  }
}

/**
 * Writes `text` to `path` with mode 0600, replacing what was there whole.
 *
 * @param path The file.
 * @param text What to write.
 * @throws {SecretFileError} When it cannot be written.
 *
 * @example
 * ```ts
 * import { writeSecretFile } from "./secret_file.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await writeSecretFile(`${dir}/tokens.json`, "{}\n");
 * assert.equal((await Deno.stat(`${dir}/tokens.json`)).mode! & 0o777, 0o600);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSecretFile(path: string, text: string): Promise<void> {
  const fs = await fileSystem();
  const temporary = temporaryName(path);
  try {
    await fs.createNew(temporary, SECRET_FILE_MODE, text);
    // The umask may have taken bits away, never added any; set exactly 0600 (Windows has no modes).
    if (platform !== "windows") await fs.chmod(temporary, SECRET_FILE_MODE);
    await fs.rename(temporary, path);
  } catch (error) {
    await fs.remove(temporary).catch(() => {});
    throw new SecretFileError(`Cannot write ${path}: ${fs.reason(error, path)}`, { cause: error });
  }
}
