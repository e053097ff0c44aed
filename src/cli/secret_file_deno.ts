/**
 * The Deno adapter of `secret_file.ts`: its file system calls with `Deno.*`.
 * `secret_file_node.ts` has the same shape for Node and Bun.
 *
 * @module
 */

import { osErrorMessage } from "../client/transport/deno.ts";
import { writeAll } from "../protocol/framing.ts";
import type { SecretFileSystem } from "./secret_file.ts";

/**
 * A secret file's calls on Deno.
 *
 * @example
 * ```ts
 * import { secretFileSystem } from "./secret_file_deno.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await secretFileSystem.createNew(`${dir}/a`, 0o600, "secret");
 * await assert.rejects(secretFileSystem.createNew(`${dir}/a`, 0o600, "again"), Deno.errors.AlreadyExists);
 * assert.equal(await secretFileSystem.isDirectory(`${dir}/b`), undefined);
 * assert.equal(await secretFileSystem.isDirectory(dir), true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export const secretFileSystem: SecretFileSystem = {
  async isDirectory(path) {
    try {
      return (await Deno.stat(path)).isDirectory;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  },
  async createNew(path, mode, text) {
    const file = await Deno.open(path, { write: true, createNew: true, mode });
    try {
      await writeAll(file, new TextEncoder().encode(text));
    } finally {
      file.close();
    }
  },
  chmod: (path, mode) => Deno.chmod(path, mode),
  rename: (from, to) => Deno.rename(from, to),
  async remove(path) {
    await Deno.remove(path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  },
  reason(error, path) {
    if (error instanceof Deno.errors.NotCapable) {
      return `run with --allow-write=${path} (and --allow-read for its directory)`;
    }
    return osErrorMessage(error);
  },
};
