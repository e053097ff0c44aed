/**
 * `deno task build:npm`: the package for Node and Bun in `dist/npm/`, for
 * `npm install ./dist/npm` today (JSR serves the same code from source once
 * published).
 *
 * Each source file becomes one JavaScript file and one `.d.ts` beside it, in
 * the source's own layout (`src/client/wait.ts` → `src/client/wait.js`), by
 * the TypeScript compiler pinned below: types stripped, comments and shape
 * kept, so a reader of `dist/npm` recognises the source. A per-file build
 * rather than one bundle per entry: `.` and `./login` share one copy of each
 * module, so an `OAuthRelayError` thrown under `./login` is an instance of
 * the class `.` exports. Types were checked by `deno check` already; `tsc`
 * only emits (`noCheck`), so it needs neither Deno's nor Node's type
 * declarations.
 *
 * An entry is built when its source file exists (see `ENTRIES`). A bare
 * import (`oauth4webapi`) becomes a dependency pinned to the version in
 * `deno.json`'s `imports`; the core entry must have none. The CLI is the
 * package's `bin`, `oauth-relay` (see `BIN`): `npx oauth-relay login …`.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname;
const OUT = `${ROOT}dist/npm`;
/** The compiler, pinned: the TypeScript that Deno 2.9 itself embeds. */
export const TYPESCRIPT = "npm:typescript@6.0.3";

/** The package's entries: export path → source file; `optional` ones are built once their file exists. */
const ENTRIES: { path: string; source: string; optional?: boolean }[] = [
  { path: ".", source: "mod.ts" },
  { path: "./login", source: "login.ts", optional: true },
];

/** The package's command: `npx oauth-relay`, `bunx oauth-relay`. Its source starts with `#!/usr/bin/env node`. */
const BIN = { name: "oauth-relay", source: "src/cli/bin.ts" };

/** What the package asks of the runtime: `AbortSignal.any` came in Node 20.3. */
const ENGINES = { node: ">=20.3.0", bun: ">=1.4.0" };

/**
 * An import or export of another module in emitted JavaScript or declarations: tsc starts each
 * statement at the beginning of a line and quotes with `"`. Group 1: `from "x"` or `import "x"`;
 * group 2: `import("x")`, which may stand anywhere (a line in a comment is skipped, see below).
 */
const SPECIFIER = /^(?:import|export)(?:[\w\s{},*$]*?\bfrom)?\s*"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/gm;

/** Whether the match at `offset` stands in a comment (a JSDoc example), by what precedes it on its line. */
function inComment(text: string, offset: number): boolean {
  const line = text.slice(text.lastIndexOf("\n", offset) + 1, offset).trimStart();
  return line.startsWith("*") || line.startsWith("/") || /\/\/|\/\*/.test(line);
}

/** The modules `text` imports; `dynamic` for `import("x")`. */
function specifiersOf(text: string): { specifier: string; dynamic: boolean }[] {
  return [...text.matchAll(SPECIFIER)]
    .filter((match) => !inComment(text, match.index))
    .map((match) => ({ specifier: match[1] ?? match[2], dynamic: match[1] === undefined }));
}

if (import.meta.main) await build();

/** Builds the package into {@linkcode OUT}. */
async function build(): Promise<void> {
  const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as {
    name: string;
    version: string;
    license: string;
    imports?: Record<string, string>;
  };

  const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

  const entries = [];
  for (const entry of ENTRIES) {
    if (await exists(`${ROOT}${entry.source}`)) entries.push(entry);
    else if (!entry.optional) throw new Error(`build:npm: ${entry.source} is missing`);
  }

  await Deno.remove(OUT, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await Deno.mkdir(OUT, { recursive: true });

  // 1. One .js and one .d.ts per source file reachable from the entries.
  // Beside the package, not in it: dist/ is the build's only place to write.
  const tsconfig = `${ROOT}dist/tsconfig.npm.json`;
  try {
    await Deno.writeTextFile(
      tsconfig,
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "ESNext",
          moduleResolution: "bundler",
          allowImportingTsExtensions: true,
          // ./wait.ts → ./wait.js in every relative import, dynamic ones included.
          rewriteRelativeImportExtensions: true,
          declaration: true,
          noCheck: true,
          skipLibCheck: true,
          types: [],
          rootDir: ROOT,
          outDir: OUT,
          newLine: "lf",
        },
        files: [...entries.map((entry) => entry.source), BIN.source].map((source) => `${ROOT}${source}`),
      }),
    );
    const tsc = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-read",
        `--allow-write=${OUT}`,
        "--allow-env",
        `${TYPESCRIPT}/bin/tsc`,
        "--project",
        tsconfig,
      ],
      cwd: ROOT,
      stdin: "null",
    }).output();
    if (!tsc.success) {
      const text = new TextDecoder().decode(tsc.stdout) + new TextDecoder().decode(tsc.stderr);
      throw new Error(`build:npm: tsc failed:\n${text.trim()}`);
    }
  } finally {
    await Deno.remove(tsconfig);
  }

  // tsc rewrites `.ts` to `.js` in JavaScript only; a declaration file imports the declarations of the `.js` file.
  const files = await listFiles(OUT);
  for (const file of files.filter((file) => file.endsWith(".d.ts"))) {
    const text = await Deno.readTextFile(`${OUT}/${file}`);
    await Deno.writeTextFile(
      `${OUT}/${file}`,
      text.replace(
        SPECIFIER,
        (match, _static, _dynamic, offset: number) =>
          inComment(text, offset) ? match : match.replace(/"(\.{1,2}\/[^"]*)\.ts"/, '"$1.js"'),
      ),
    );
  }
  // The source's own formatting (tsc indents by four).
  const fmt = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", "--no-config", "--line-width=120", OUT],
    stdin: "null",
  }).output();
  if (!fmt.success) throw new Error(`build:npm: deno fmt failed:\n${new TextDecoder().decode(fmt.stderr).trim()}`);

  // 2. Bare imports: each must be a package pinned in deno.json, and becomes a dependency at that version.
  const dependencies: Record<string, string> = {};
  for (const file of files) {
    if (!file.endsWith(".js") && !file.endsWith(".d.ts")) continue;
    const text = await Deno.readTextFile(`${OUT}/${file}`);
    for (const { specifier } of specifiersOf(text)) {
      if (specifier.startsWith(".")) {
        if (/\.tsx?$/.test(specifier)) throw new Error(`build:npm: ${file} still imports ${specifier}`);
        continue;
      }
      if (specifier.startsWith("node:")) continue;
      const { name, version } = pinned(denoJson.imports ?? {}, specifier, file);
      dependencies[name] = version;
    }
  }

  // 3. The core entry's static imports reach no package outside Node's own.
  const coreImports = staticClosure(files, ENTRIES[0].source.replace(/\.ts$/, ".js")).filter((specifier) =>
    !specifier.startsWith("node:")
  );
  if (coreImports.length > 0) {
    throw new Error(`build:npm: the core entry must have no dependencies, but imports ${coreImports.join(", ")}`);
  }

  // 4. The command: tsc keeps the source's first line, the `#!` that makes the file a program.
  const bin = BIN.source.replace(/\.ts$/, ".js");
  if (!(await Deno.readTextFile(`${OUT}/${bin}`)).startsWith("#!/usr/bin/env node\n")) {
    throw new Error(`build:npm: ${bin} does not start with #!/usr/bin/env node`);
  }
  await Deno.chmod(`${OUT}/${bin}`, 0o755);

  // 5. package.json, README, LICENSE.
  const exportsMap = Object.fromEntries(entries.map((entry) => {
    const base = entry.source.replace(/\.ts$/, "");
    return [entry.path, { types: `./${base}.d.ts`, default: `./${base}.js` }];
  }));
  const packageJson = {
    name: denoJson.name,
    version: denoJson.version,
    description: "Headless OAuth: wait for the authorization code a provider redirects to an oauth-relay server",
    license: denoJson.license,
    type: "module",
    exports: exportsMap,
    bin: { [BIN.name]: `./${bin}` },
    engines: ENGINES,
    ...(Object.keys(dependencies).length > 0 ? { dependencies: sortedKeys(dependencies) } : {}),
  };
  await Deno.writeTextFile(`${OUT}/package.json`, JSON.stringify(packageJson, null, 2) + "\n");
  await Deno.copyFile(`${ROOT}README.md`, `${OUT}/README.md`);
  await Deno.copyFile(`${ROOT}LICENSE`, `${OUT}/LICENSE`);

  console.log(
    `dist/npm: ${packageJson.name}@${packageJson.version}, ${files.length + 3} files, exports ${
      entries.map((entry) => entry.path).join(" ")
    }, bin ${BIN.name}, dependencies: ${
      Object.entries(dependencies).map(([name, version]) => `${name}@${version}`).join(", ") || "none"
    }`,
  );
}

// ---------------------------------------------------------------------------------------------

/** The npm package and pinned version a bare specifier names, from deno.json's `imports`. */
function pinned(imports: Record<string, string>, specifier: string, file: string): { name: string; version: string } {
  const key = Object.keys(imports).find((key) => specifier === key || specifier.startsWith(`${key}/`));
  const target = key === undefined ? undefined : imports[key];
  const match = target?.match(/^npm:((?:@[^/@]+\/)?[^/@]+)@([^/]+)$/);
  if (!match || match[1] !== key) {
    throw new Error(
      `build:npm: ${file} imports "${specifier}", which deno.json's "imports" does not pin as an npm package of that name`,
    );
  }
  return { name: match[1], version: match[2] };
}

/** Every bare or `node:` specifier that `entry` reaches through static imports. */
function staticClosure(files: string[], entry: string): string[] {
  const seen = new Set<string>();
  const outside = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = files.includes(file) ? Deno.readTextFileSync(`${OUT}/${file}`) : "";
    for (const { specifier, dynamic } of specifiersOf(text)) {
      if (dynamic) continue; // import("…"): loaded only when used.
      if (specifier.startsWith(".")) visit(new URL(specifier, `file:///${file}`).pathname.slice(1));
      else outside.add(specifier);
    }
  };
  visit(entry);
  return [...outside];
}

function sortedKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

/** Paths of every file under `dir`, relative to it, with `/`. */
async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) found.push(...await listFiles(dir, `${path}/`));
    else found.push(path);
  }
  return found.sort();
}
