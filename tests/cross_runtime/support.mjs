/**
 * What the cross-runtime test files share, in plain ESM on Node's APIs so that
 * Deno, Node and Bun run it alike: a real relay (`server.ts`) and a real
 * OpenID provider (`tests/support/oidc_provider.ts`) as Deno subprocesses, and
 * a person who signs in at the provider's development pages over HTTP.
 *
 * `run.ts` copies this file next to the test files and passes in the
 * environment: `CROSS_RUNTIME_SERVER` (the relay's `server.ts`),
 * `CROSS_RUNTIME_OIDC_PROVIDER` (the provider's module), `CROSS_RUNTIME_DENO_CONFIG`
 * (the repository's `deno.json`, which pins `oidc-provider`) and
 * `CROSS_RUNTIME_DENO` (a `deno` to run them).
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import process from "node:process";

const SERVER = process.env.CROSS_RUNTIME_SERVER;
const OIDC_PROVIDER = process.env.CROSS_RUNTIME_OIDC_PROVIDER;
const DENO_CONFIG = process.env.CROSS_RUNTIME_DENO_CONFIG;
const DENO = process.env.CROSS_RUNTIME_DENO ?? "deno";

if (!SERVER || !OIDC_PROVIDER || !DENO_CONFIG) {
  throw new Error("CROSS_RUNTIME_* is not set: run the cross-runtime tests with tests/cross_runtime/run.ts");
}

/** The public client of the test provider: no secret, PKCE required (as in `oidc_provider.ts`). */
export const PUBLIC_CLIENT = "login-test";

/** PATH, HOME and DENO_DIR of this process: what a `deno` subprocess needs to find itself and its cache. */
function baseEnv() {
  return Object.fromEntries(
    ["PATH", "HOME", "DENO_DIR"].filter((name) => process.env[name]).map((name) => [name, process.env[name]]),
  );
}

/** Collects a child's output; `seen(pattern)` resolves at the first match, `exited` with the exit code. */
function watch(child, stream) {
  let text = "";
  const watchers = new Set();
  const exited = new Promise((resolve) => child.once("exit", resolve));
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    text += chunk;
    for (const watcher of watchers) {
      if (watcher.pattern.test(text)) {
        watchers.delete(watcher);
        watcher.resolve();
      }
    }
  });
  const seen = (pattern) =>
    pattern.test(text) ? Promise.resolve() : new Promise((resolve) => watchers.add({ pattern, resolve }));
  return { seen, exited, text: () => text };
}

/**
 * `server.ts` as a subprocess with `env` on top of a clean environment; resolves once it has
 * said where it listens. `logged(pattern)` resolves at the first log line that matches.
 */
export async function startRelay(env) {
  const child = spawn(
    DENO,
    ["run", "--quiet", "--allow-env", "--allow-net", "--allow-read=/tmp", "--allow-write=/tmp", SERVER],
    {
      cwd: tmpdir(),
      env: { ...baseEnv(), HOST: "127.0.0.1", PORT: "0", OAUTH_LOG_LEVEL: "debug", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  const log = watch(child, child.stderr);
  await Promise.race([
    log.seen(/HTTP listening on \S+/),
    log.exited.then((code) => Promise.reject(new Error(`relay exited with ${code} before listening:\n${log.text()}`))),
  ]);
  return {
    url: log.text().match(/HTTP listening on (\S+)/)[1],
    coordinator: log.text().match(/OAuth coordinator listening on (\S+)/)?.[1],
    logged: log.seen,
    async stop() {
      child.kill("SIGTERM");
      await log.exited;
    },
  };
}

/**
 * The login tests' OpenID provider (`oidc-provider`, PAR on, a public client that must use PKCE,
 * development login pages) started the way `tests/support/oidc_provider.ts` starts it: its own
 * module run by Deno with the repository's configuration; it prints its issuer on stdout.
 */
export async function startOidcProvider(options) {
  const child = spawn(
    DENO,
    [
      "run",
      "-q",
      `--config=${DENO_CONFIG}`,
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      OIDC_PROVIDER,
      JSON.stringify(options),
    ],
    { cwd: tmpdir(), env: baseEnv(), stdio: ["ignore", "pipe", "pipe"] },
  );
  const out = watch(child, child.stdout);
  const errors = watch(child, child.stderr);
  await Promise.race([
    out.seen(/\n/),
    out.exited.then((code) => Promise.reject(new Error(`provider exited with ${code}:\n${errors.text()}`))),
  ]);
  return {
    issuer: out.text().trim(),
    async stop() {
      child.kill("SIGKILL");
      await out.exited;
    },
  };
}

/** The provider's userinfo for `accessToken` (asserting it answers 200): the token is real. */
export async function userinfo(issuer, accessToken) {
  const response = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body;
}

/** A browser's cookie store, as much of RFC 6265 as the provider's pages use: name, value, path, expiry. */
class CookieJar {
  #cookies = new Map();

  /** Takes the `Set-Cookie` headers of a response to `url`. */
  store(url, response) {
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(";").map((part) => part.trim());
      const equals = pair.indexOf("=");
      const name = pair.slice(0, equals);
      const value = pair.slice(equals + 1);
      const attribute = (key) =>
        attributes.find((part) => part.toLowerCase().startsWith(`${key}=`))?.slice(key.length + 1);
      const path = attribute("path") ?? new URL(".", url).pathname;
      const expires = attribute("expires");
      const key = `${name};${path}`;
      // RFC 6265 §5.3: a cookie whose expiry has passed is removed.
      if (value === "" || (expires && Date.parse(expires) <= Date.now())) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  /** The `Cookie` header for `url`: RFC 6265 §5.1.4 path match. */
  header(url) {
    const path = new URL(url).pathname;
    return [...this.#cookies.values()]
      .filter((cookie) =>
        path === cookie.path || path.startsWith(cookie.path.endsWith("/") ? cookie.path : `${cookie.path}/`)
      )
      .map((cookie) => `${cookie.name}=${cookie.value}`)
      .join("; ");
  }
}

/** An attribute value as written in the provider's HTML (its template escapes `&`, `<`, `>`, `"`, `'`). */
function unescapeHtml(text) {
  return text.replace(/&(amp|lt|gt|quot|#39|#x27|#x2F);/g, (_, entity) =>
    ({
      amp: "&",
      lt: "<",
      gt: ">",
      quot: '"',
      "#39": "'",
      "#x27": "'",
      "#x2F": "/",
    })[entity]);
}

/**
 * The person, with a browser that is `fetch` and a cookie jar: opens `link`, signs in as `login`
 * at `oidc-provider`'s development pages (any password), then consents or cancels, following each
 * redirect as a browser does. The provider's last redirect goes to the relay's callback; `tamper`
 * may change that URL first (what an attacker in the middle of a mix-up would send). Resolves with
 * the relay's answer.
 *
 * @param {string} link The authorize link the login showed.
 * @param {{ login?: string, decision?: "consent" | "cancel", relay: string, tamper?: (url: URL) => void }} options
 * @returns {Promise<{ status: number, url: string, text: string }>}
 */
export async function signIn(link, { login = "alice", decision = "consent", relay, tamper }) {
  const jar = new CookieJar();
  const request = async (url, init = {}) => {
    const response = await fetch(url, {
      ...init,
      redirect: "manual",
      headers: { ...init.headers, cookie: jar.header(url) },
    });
    jar.store(url, response);
    return response;
  };
  /** Follows redirects from `response` to a page; a redirect to the relay ends the walk there. */
  const follow = async (url, response) => {
    for (let hops = 0; response.status >= 300 && response.status < 400; hops++) {
      assert.ok(hops < 10, "too many redirects");
      await response.body?.cancel();
      const next = new URL(response.headers.get("location"), url);
      if (next.origin === relay) {
        tamper?.(next);
        const answer = await fetch(next);
        return { done: true, status: answer.status, url: next.href, text: await answer.text() };
      }
      url = next.href;
      response = await request(url);
    }
    assert.equal(response.status, 200, `${url} answered ${response.status}`);
    return { done: false, url, html: await response.text() };
  };
  /** Submits the page's form with its hidden fields and `fields`, as pressing its submit button does. */
  const submit = async (page, fields) => {
    const action = page.html.match(/<form[^>]*\saction="([^"]+)"/)?.[1];
    assert.ok(action, `a form at ${page.url}`);
    const hidden = Object.fromEntries(
      [...page.html.matchAll(/<input[^>]*type="hidden"[^>]*>/g)].map(([input]) => [
        input.match(/name="([^"]+)"/)[1],
        unescapeHtml(input.match(/value="([^"]*)"/)?.[1] ?? ""),
      ]),
    );
    const url = new URL(unescapeHtml(action), page.url).href;
    const body = new URLSearchParams({ ...hidden, ...fields });
    return await follow(url, await request(url, { method: "POST", body }));
  };

  let page = await follow(link, await request(link));
  assert.match(page.html, /name="login"/, "the sign-in page");
  page = await submit(page, { login, password: "any password" });
  if (page.done) return page;
  assert.match(page.html, /name="prompt" value="consent"/, "the consent page");
  if (decision === "cancel") {
    // The layout's "[ Cancel ]" link aborts the interaction: RFC 6749 §4.1.2.1 access_denied.
    const abort = page.html.match(/href="([^"]*\/abort)"/)?.[1];
    assert.ok(abort, "a cancel link");
    const url = new URL(unescapeHtml(abort), page.url).href;
    page = await follow(url, await request(url));
  } else {
    page = await submit(page, {});
  }
  assert.ok(page.done, `the provider redirected to the relay, not to ${page.url}`);
  return page;
}
