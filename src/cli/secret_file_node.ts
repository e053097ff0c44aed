/**
 * The Node adapter of `secret_file.ts`, which Bun runs as well: its file
 * system calls with `node:fs`. `secret_file_deno.ts` has the same shape for Deno.
 *
 * @module
 */

import { chmod, open, rename, rm, stat } from "node:fs/promises";
import type { SecretFileSystem } from "./secret_file.ts";

/** The system error's code (`ENOENT`), when it has one. */
function systemCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * A secret file's calls on Node and Bun.
 *
 * @example
 * ```ts
 * import { secretFileSystem } from "./secret_file_node.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await secretFileSystem.createNew(`${dir}/a`, 0o600, "secret");
 * await assert.rejects(secretFileSystem.createNew(`${dir}/a`, 0o600, "again"), (error) => {
 *   assert.equal(secretFileSystem.reason(error, `${dir}/a`), "file already exists");
 *   return true;
 * });
 * assert.equal(await secretFileSystem.isDirectory(`${dir}/b`), undefined);
 * assert.equal(await secretFileSystem.isDirectory(dir), true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export const secretFileSystem: SecretFileSystem = {
  async isDirectory(path) {
    try {
      return (await stat(path)).isDirectory();
    } catch (error) {
      if (systemCode(error) === "ENOENT") return undefined;
      throw error;
    }
  },
  async createNew(path, mode, text) {
    // "wx": O_CREAT | O_EXCL, a new file or an error; a link planted at the path is not followed.
    const file = await open(path, "wx", mode);
    try {
      await file.writeFile(text);
    } finally {
      await file.close();
    }
  },
  chmod: (path, mode) => chmod(path, mode),
  rename: (from, to) => rename(from, to),
  remove: (path) => rm(path, { force: true }),
  reason(error) {
    // "ENOENT: no such file or directory, open '…'" on Node and Bun alike: the words between the code and the call.
    const message = error instanceof Error ? error.message : String(error);
    return (message.match(/^[A-Z0-9_]+: ([^,]+),/)?.[1] ?? message).toLowerCase();
  },
};
