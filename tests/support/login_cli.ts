/**
 * `client.ts login` as a subprocess, as a person runs it: the test reads the
 * authorize link from its stderr, and its exit code, stdout and stderr at the end.
 * Another program may stand in for `client.ts` (the npm package's command under Node).
 *
 * @module
 */

const CLIENT = new URL("../../client.ts", import.meta.url).pathname;

/** The permissions of the `login` task. */
export const LOGIN_PERMISSIONS = [
  "--allow-env",
  "--allow-net",
  "--allow-read=/tmp",
  "--allow-write=/tmp",
  "--allow-sys=uid",
];

/** A running `client.ts login`. */
export interface LoginProcess extends AsyncDisposable {
  /** Resolves with the authorize link, once the CLI shows it; rejects if it exits first. */
  link: Promise<string>;
  /** Exit code, stdout and stderr once it ends. */
  output: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** `client.ts` run by Deno with the `login` task's permissions: the program {@linkcode runLogin} runs by default. */
export const DENO_CLIENT: readonly string[] = [Deno.execPath(), "run", "-q", ...LOGIN_PERMISSIONS, CLIENT];

/**
 * Runs `PROGRAM login ARGS` with `env` added to the environment.
 *
 * @param program The command and its first arguments, e.g. `["node", "…/bin.js"]`. Default: `client.ts` on Deno.
 */
export function runLogin(
  args: string[],
  env: Record<string, string> = {},
  program: readonly string[] = DENO_CLIENT,
): LoginProcess {
  const child = new Deno.Command(program[0], {
    args: [...program.slice(1), "login", ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { promise: link, resolve, reject } = Promise.withResolvers<string>();
  link.catch(() => {});
  const stderr = (async () => {
    let text = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      // The link stands alone on its line.
      const line = text.split("\n").slice(0, -1).find((line) => /^https?:\/\/\S+$/.test(line));
      if (line) resolve(line);
    }
    return text;
  })();
  const output = (async () => {
    const [stdout, status, err] = await Promise.all([new Response(child.stdout).text(), child.status, stderr]);
    reject(new Error(`login exited with ${status.code} before showing a link: ${err}`));
    return { code: status.code, stdout, stderr: err };
  })();
  return {
    link,
    output,
    async [Symbol.asyncDispose]() {
      try {
        child.kill();
      } catch { /* exited */ }
      await output;
    },
  };
}
