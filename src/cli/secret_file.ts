/**
 * Writing a secret to a file only its owner can read: the Deno adapter of the
 * CLI's `--out`. The file is written under a new name with mode 0600 and then
 * renamed over the target, so it never exists with wider permissions or half written,
 * and a symbolic link at the target is replaced, not followed.
 *
 * @module
 */

import { osErrorMessage } from "../client/transport/deno.ts";
import { writeAll } from "../protocol/framing.ts";

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

function temporaryName(path: string): string {
  const slash = path.lastIndexOf("/");
  const random = crypto.getRandomValues(new Uint32Array(2)).join("");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${random}.tmp`;
}

function describe(path: string, error: unknown): SecretFileError {
  if (error instanceof Deno.errors.NotCapable) {
    return new SecretFileError(
      `Cannot write ${path}: run with --allow-write=${path} (and --allow-read for its directory)`,
      {
        cause: error,
      },
    );
  }
  return new SecretFileError(`Cannot write ${path}: ${osErrorMessage(error)}`, { cause: error });
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
  try {
    const info = await Deno.stat(path).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    });
    if (info?.isDirectory) throw new SecretFileError(`Cannot write ${path}: it is a directory`);
    const probe = temporaryName(path);
    const file = await Deno.open(probe, { write: true, createNew: true, mode: SECRET_FILE_MODE });
    file.close();
    await Deno.remove(probe);
  } catch (error) {
    if (error instanceof SecretFileError) throw error;
    throw describe(path, error);
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
  const temporary = temporaryName(path);
  try {
    const file = await Deno.open(temporary, { write: true, createNew: true, mode: SECRET_FILE_MODE });
    try {
      await writeAll(file, new TextEncoder().encode(text));
    } finally {
      file.close();
    }
    // The umask may have taken bits away, never added any; set exactly 0600 (Windows has no modes).
    if (Deno.build.os !== "windows") await Deno.chmod(temporary, SECRET_FILE_MODE);
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw describe(path, error);
  }
}
