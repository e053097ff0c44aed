/**
 * The cross-runtime suite: builds the npm package (`deno task build:npm`),
 * installs it as a program would (`npm pack`, then `npm install` of the
 * tarball in a temp directory), type-checks a program against its
 * declarations, and runs every `*.test.mjs` of this directory there under
 * `deno test`, `node --test` and `bun test`. HTTPS cases get a CA made here
 * by openssl, trusted the way each runtime is told to (`DENO_CERT`,
 * `NODE_EXTRA_CA_CERTS`), and a second CA nobody trusts. Last, with Node
 * among the runtimes, `bin_e2e.ts` (`deno test`): the package's `oauth-relay`
 * command under Node and Bun through a login in Chromium.
 *
 * Prints each runtime's tally, and last the total as `N passed, N failed`
 * (what `.ci/run` reads). Exits 1 when anything failed.
 *
 * ```sh
 * deno task test:cross-runtime [--runtimes deno,node,bun]
 * ```
 *
 * @module
 */

import { TYPESCRIPT } from "../../scripts/build_npm.ts";
import { makeCertificates, OPENSSL_AVAILABLE } from "../support/tls.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const HERE = new URL(".", import.meta.url).pathname;
const DENO = Deno.execPath();
/** How `deno test` runs the Deno-side files here, with the permissions of `deno task test`. */
const DENO_TEST = [
  DENO,
  "test",
  "--allow-env",
  "--allow-net",
  "--allow-read",
  "--allow-write=/tmp",
  "--allow-run",
  "--allow-sys=uid",
];
/** A runtime that has not finished in this long is stopped, and counts as failed. */
const RUN_TIMEOUT_MS = 5 * 60_000;

interface Tally {
  passed: number;
  failed: number;
}

/** How each runtime runs the test files, and where its summary says how many passed and failed. */
const RUNTIMES: Record<string, {
  command: (files: string[]) => string[];
  /** Where this runtime takes an extra CA from. */
  caVariable: string;
  tally: (output: string) => Tally | undefined;
}> = {
  deno: {
    command: (files) => [
      ...DENO_TEST,
      // Plain JavaScript: nothing to type-check, and the package's declarations are checked apart (below).
      "--no-check",
      "--no-lock",
      ...files,
    ],
    caVariable: "DENO_CERT",
    // "ok | 15 passed | 0 failed (3s)", or "FAILED | 14 passed | 1 failed | 1 ignored (3s)".
    tally: (output) => {
      const match = output.match(/^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/m);
      return match ? { passed: Number(match[1]), failed: Number(match[2]) } : undefined;
    },
  },
  node: {
    command: (files) => ["node", "--test", "--test-reporter=spec", ...files],
    caVariable: "NODE_EXTRA_CA_CERTS",
    // "ℹ pass 15" and "ℹ fail 0" (spec reporter), or "# pass 15" (tap).
    tally: (output) => {
      const passed = output.match(/^[ℹ#] pass (\d+)$/m);
      const failed = output.match(/^[ℹ#] fail (\d+)$/m);
      return passed && failed ? { passed: Number(passed[1]), failed: Number(failed[1]) } : undefined;
    },
  },
  bun: {
    // Bun gives a test 5 s by default; the 200 waits and the relays' start take longer on a busy machine.
    command: (files) => ["bun", "test", "--timeout", "60000", ...files.map((file) => `./${file}`)],
    caVariable: "NODE_EXTRA_CA_CERTS",
    // " 15 pass" and " 0 fail".
    tally: (output) => {
      const passed = output.match(/^\s*(\d+) pass$/m);
      const failed = output.match(/^\s*(\d+) fail$/m);
      return passed && failed ? { passed: Number(passed[1]), failed: Number(failed[1]) } : undefined;
    },
  },
};

const runtimeArg = Deno.args.indexOf("--runtimes");
const chosen = runtimeArg === -1 ? Object.keys(RUNTIMES) : Deno.args[runtimeArg + 1].split(",");
for (const name of chosen) {
  if (!(name in RUNTIMES)) throw new Error(`Unknown runtime "${name}": one of ${Object.keys(RUNTIMES).join(", ")}`);
}

/** Runs `args`, its output passed through; resolves with the exit code and the output. */
async function run(args: string[], options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {}) {
  const child = new Deno.Command(args[0], {
    args: args.slice(1),
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    console.error(`\ncross-runtime: ${args[0]} did not finish within ${RUN_TIMEOUT_MS / 1000} s; stopping it`);
    child.kill("SIGKILL");
  }, RUN_TIMEOUT_MS);
  let output = "";
  const pipe = async (stream: ReadableStream<Uint8Array>, to: { write(bytes: Uint8Array): Promise<number> }) => {
    for await (const chunk of stream) {
      output += new TextDecoder().decode(chunk, { stream: true });
      await to.write(chunk);
    }
  };
  await Promise.all([pipe(child.stdout, Deno.stdout), pipe(child.stderr, Deno.stderr)]);
  const { code } = await child.status;
  clearTimeout(timer);
  // deno-lint-ignore no-control-regex -- ANSI colour codes, dropped before the summary is read.
  return { code, output: output.replace(/\x1b\[[0-9;]*m/g, "") };
}

/**
 * Type-checks a program that imports every entry of the installed package, with the pinned
 * TypeScript the build uses, strict, Node's module resolution, no Node or Deno types: the
 * package's declarations must stand on their own.
 */
async function checkTypes(dir: string): Promise<Tally> {
  const { exports } = JSON.parse(await Deno.readTextFile(`${dir}/node_modules/@org/oauth-relay/package.json`));
  const entries = Object.keys(exports).map((path, i) =>
    `import * as entry${i} from "@org/oauth-relay${path.slice(1)}";\nconsole.log(entry${i});`
  );
  await Deno.writeTextFile(
    `${dir}/types.ts`,
    [
      ...entries,
      'import { type OAuthCallbackResult, OAuthRelayError, OAuthTimeoutError, waitForCode } from "@org/oauth-relay";',
      'const result: Promise<OAuthCallbackResult> = waitForCode({ state: "s", timeout: 1, signal: AbortSignal.timeout(1) });',
      'const error: OAuthRelayError = new OAuthTimeoutError("late");',
      "console.log(result, error.code);",
    ].join("\n") + "\n",
  );
  await Deno.writeTextFile(
    `${dir}/tsconfig.json`,
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022", "DOM"],
        types: [],
      },
      files: ["types.ts"],
    }),
  );
  console.log(`\n== cross-runtime: the package's declarations (tsc, ${Object.keys(exports).join(" ")})`);
  const tsc = await run(
    [
      DENO,
      "run",
      "--quiet",
      "--allow-read",
      "--allow-env",
      `${TYPESCRIPT}/bin/tsc`,
      "--project",
      `${dir}/tsconfig.json`,
    ],
    { cwd: ROOT },
  );
  if (tsc.code === 0) console.log("ok");
  return tsc.code === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 };
}

async function installed(command: string): Promise<boolean> {
  try {
    return (await new Deno.Command(command, { args: ["--version"], stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

const consumer = await Deno.makeTempDir({ prefix: "oauth-relay-consumer-" });
const tallies: Record<string, Tally> = {};
try {
  // 1. The package, built and installed as a user of it would.
  const build = await run([DENO, "task", "build:npm"], { cwd: ROOT });
  if (build.code !== 0) throw new Error("deno task build:npm failed");
  const pack = await new Deno.Command("npm", {
    args: ["pack", "--json", "--pack-destination", consumer, `${ROOT}dist/npm`],
    stderr: "inherit",
  }).output();
  if (!pack.success) throw new Error("npm pack dist/npm failed");
  const [{ filename }] = JSON.parse(new TextDecoder().decode(pack.stdout));
  await Deno.writeTextFile(
    `${consumer}/package.json`,
    JSON.stringify({ name: "oauth-relay-cross-runtime", private: true, type: "module" }),
  );
  const install = await run(
    ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock", `./${filename}`],
    { cwd: consumer },
  );
  if (install.code !== 0) throw new Error(`npm install ${filename} failed`);
  // Every module here goes along (a test file may share helpers); the `*.test.mjs` ones are run.
  const files: string[] = [];
  for await (const entry of Deno.readDir(HERE)) {
    if (!entry.isFile || !entry.name.endsWith(".mjs")) continue;
    await Deno.copyFile(`${HERE}${entry.name}`, `${consumer}/${entry.name}`);
    if (entry.name.endsWith(".test.mjs")) files.push(entry.name);
  }
  files.sort();

  // 2. The declarations, as a TypeScript program on Node would use them: through the package's exports.
  tallies.types = await checkTypes(consumer);

  // 3. A CA each runtime trusts, with a certificate of the relay, and one it does not.
  const env: Record<string, string> = {
    ...Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([name]) => !name.startsWith("OAUTH_"))),
    CROSS_RUNTIME_SERVER: `${ROOT}server.ts`,
    CROSS_RUNTIME_OIDC_PROVIDER: `${ROOT}tests/support/oidc_provider.ts`,
    CROSS_RUNTIME_DENO_CONFIG: `${ROOT}deno.json`,
    CROSS_RUNTIME_DENO: DENO,
  };
  let caFile: string | undefined;
  if (OPENSSL_AVAILABLE) {
    const tls = `${consumer}/tls`;
    await Deno.mkdir(tls);
    for (const name of ["server", "untrusted"]) {
      await using certificates = await makeCertificates();
      await Deno.copyFile(certificates.certFile, `${tls}/${name}.crt`);
      await Deno.copyFile(certificates.keyFile, `${tls}/${name}.key`);
      if (name === "server") await Deno.copyFile(certificates.caCertFile, caFile = `${tls}/ca.crt`);
    }
    env.CROSS_RUNTIME_TLS = tls;
  } else {
    console.error("cross-runtime: openssl is not installed; the HTTPS cases are skipped");
  }

  // 4. The same files on every runtime.
  for (const name of chosen) {
    const runtime = RUNTIMES[name];
    const command = runtime.command(files);
    console.log(`\n== cross-runtime: ${name} (${command.slice(0, 3).join(" ")} …)`);
    if (!await installed(command[0])) {
      console.log(`cross-runtime: ${command[0]} is not installed`);
      tallies[name] = { passed: 0, failed: 1 };
      continue;
    }
    const { code, output } = await run(command, {
      cwd: consumer,
      env: { ...env, ...(caFile ? { [runtime.caVariable]: caFile } : {}) },
      clearEnv: true,
    });
    const tally = runtime.tally(output) ?? { passed: 0, failed: 0 };
    // A run that failed without a failed test (a crash, a hook that threw) still counts.
    if (code !== 0 && tally.failed === 0) tally.failed = 1;
    tallies[name] = tally;
  }

  // 5. The login e2e once more with the CLI under Node (and Bun): the command npm linked, Chromium as the person.
  if (chosen.includes("node")) {
    console.log("\n== cross-runtime: bin (oauth-relay login under node and bun, Chromium signing in; bin_e2e.ts)");
    const { code, output } = await run([...DENO_TEST, `${HERE}bin_e2e.ts`], {
      cwd: ROOT,
      env: { ...env, CROSS_RUNTIME_BIN: `${consumer}/node_modules/.bin/oauth-relay` },
      clearEnv: true,
    });
    const tally = RUNTIMES.deno.tally(output) ?? { passed: 0, failed: 0 };
    if (code !== 0 && tally.failed === 0) tally.failed = 1;
    tallies.bin = tally;
  }
} finally {
  await Deno.remove(consumer, { recursive: true }).catch(() => {});
}

console.log();
let passed = 0;
let failed = 0;
for (const [name, tally] of Object.entries(tallies)) {
  console.log(`cross-runtime ${name}: ${tally.passed} passed, ${tally.failed} failed`);
  passed += tally.passed;
  failed += tally.failed;
}
console.log(`${passed} passed, ${failed} failed`);
Deno.exitCode = failed > 0 || passed === 0 ? 1 : 0;
