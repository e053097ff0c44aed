/**
 * The callback pages in a real browser: Debian's headless Chromium, driven by
 * `puppeteer-core`, loads each page from a real relay, so the response's own
 * Content-Security-Policy is the one enforced. A page fails when it is
 * unstyled, overflows the viewport's width, runs script, or Chromium reports a
 * CSP violation. Every page is checked and photographed on a phone and on a
 * desktop, light and dark: the screenshots go to `$OAUTH_RELAY_SCREENSHOTS`,
 * else to a fresh temp directory, and the test prints where.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Viewport } from "puppeteer-core";
import { completePage, CONTENT_SECURITY_POLICY, renderPage, type Tone } from "../src/relay/http/pages.ts";
import {
  CHROMIUM_PATH,
  HAS_CHROMIUM,
  launchBrowser,
  type PageMessage,
  type WatchedPage,
  watchPage,
} from "./support/browser.ts";
import { startTestRelay, wait } from "./helpers.ts";

/** The viewports every page is checked and photographed on. */
const VIEWPORTS = {
  /** A phone: iPhone 12-15 CSS pixels. */
  phone: { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  desktop: { width: 1280, height: 800, deviceScaleFactor: 1 },
} satisfies Record<string, Viewport>;
type ViewportName = keyof typeof VIEWPORTS;

/**
 * Where the screenshots go, created once per run. The suite may write only
 * under /tmp (`--allow-write=/tmp`), so the default is a fresh temp directory.
 */
const screenshotDir = (() => {
  let dir: Promise<string> | undefined;
  return () =>
    dir ??= (async () => {
      const chosen = Deno.env.get("OAUTH_RELAY_SCREENSHOTS");
      const path = chosen
        ? (await Deno.mkdir(chosen, { recursive: true }), chosen)
        : await Deno.makeTempDir({ prefix: "oauth-relay-screenshots-" });
      console.log(`Screenshots of the callback pages in ${path}`);
      return path;
    })();
})();

/** `--icon` background of each tone in pages.ts: --ok, --warn, --bad. */
const ICON_COLORS: Record<Tone, string> = {
  success: "rgb(31, 157, 85)",
  neutral: "rgb(194, 124, 14)",
  failure: "rgb(208, 53, 63)",
};
/** `--card` in light and dark mode. */
const CARD_COLORS = { light: "rgb(255, 255, 255)", dark: "rgb(30, 33, 40)" };

/** What the page looks like, read from the DOM and computed styles. */
interface Rendered {
  bodyDisplay: string;
  bodyClass: string;
  mainRadius: string;
  mainMaxWidth: string;
  mainBackground: string;
  mainLeft: number;
  mainRight: number;
  iconBackground: string;
  viewportWidth: number;
  scrollWidth: number;
  title: string;
  details: string[];
  scripts: number;
}

const READ_PAGE = `(() => {
  const main = document.querySelector("main");
  const icon = document.querySelector(".icon");
  const body = getComputedStyle(document.body);
  const card = getComputedStyle(main);
  const box = main.getBoundingClientRect();
  return {
    bodyDisplay: body.display,
    bodyClass: document.body.className,
    mainRadius: card.borderTopLeftRadius,
    mainMaxWidth: card.maxWidth,
    mainBackground: card.backgroundColor,
    mainLeft: box.left,
    mainRight: box.right,
    iconBackground: getComputedStyle(icon).backgroundColor,
    viewportWidth: document.documentElement.clientWidth,
    scrollWidth: document.documentElement.scrollWidth,
    title: document.title,
    details: [...document.querySelectorAll("dd")].map((dd) => dd.textContent),
    scripts: document.scripts.length,
  };
})()`;

/** Why the page does not look as pages.ts styles it; empty when it does. */
function styleProblems(page: Rendered, tone: Tone, scheme: "light" | "dark"): string[] {
  const problems: string[] = [];
  const expect = (what: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) {
      problems.push(`${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
    }
  };
  expect("body display", page.bodyDisplay, "flex");
  expect("main border-radius", page.mainRadius, "16px");
  expect("main max-width", page.mainMaxWidth, "440px");
  expect(`main background (${scheme})`, page.mainBackground, CARD_COLORS[scheme]);
  expect(`icon background (${tone})`, page.iconBackground, ICON_COLORS[tone]);
  if (page.scrollWidth > page.viewportWidth) {
    problems.push(`page scrolls sideways: ${page.scrollWidth}px wide in a ${page.viewportWidth}px viewport`);
  }
  if (page.mainLeft < 0 || page.mainRight > page.viewportWidth) {
    problems.push(`card spans ${page.mainLeft}-${page.mainRight}px, outside the ${page.viewportWidth}px viewport`);
  }
  return problems;
}

/** Console lines and DevTools issues that say the CSP blocked something. */
function cspViolations(messages: PageMessage[]): PageMessage[] {
  return messages.filter((message) =>
    message.level === "ContentSecurityPolicyIssue" || /Content[- ]Security[- ]Policy|Refused to/i.test(message.text)
  );
}

/** Everything else the page reported, apart from Chromium noting the document's own 4xx status. */
function otherMessages(messages: PageMessage[], url: string, status: number): PageMessage[] {
  const violations = new Set(cspViolations(messages));
  return messages.filter((message) =>
    !violations.has(message) &&
    !(message.url === url && message.text.includes(`responded with a status of ${status}`))
  );
}

function describe(message: PageMessage): string {
  return `[${message.source} ${message.level}] ${message.text}`;
}

interface Expected {
  /** File name of the screenshots, without the viewport, scheme and `.png`. */
  name: string;
  status: number;
  tone: Tone;
  title: string;
}

/**
 * Loads `url`, checks what Chromium received and rendered, and saves a light
 * and a dark screenshot. Returns what the page shows, for extra checks.
 */
async function checkPage(
  tab: WatchedPage,
  viewport: ViewportName,
  url: string,
  expected: Expected,
): Promise<Rendered> {
  const response = await tab.open(url);
  assert.equal(response.status, expected.status);
  // The policy Chromium enforced is the one the relay sent.
  assert.equal(response.headers["content-security-policy"], CONTENT_SECURITY_POLICY);

  // Every reason at once, so one run tells both "unstyled" and "why" (usually a CSP violation).
  const problems: string[] = [];
  let rendered: Rendered | undefined;
  for (const scheme of ["light", "dark"] as const) {
    await tab.page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: scheme }]);
    rendered = await tab.page.evaluate(READ_PAGE) as Rendered;
    const path = `${await screenshotDir()}/${expected.name}-${viewport}-${scheme}.png`;
    await Deno.writeFile(path, await tab.page.screenshot());
    problems.push(...styleProblems(rendered, expected.tone, scheme).map((problem) => `${problem} (see ${path})`));
  }
  await tab.page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);
  assert.ok(rendered);
  if (rendered.scripts > 0) problems.push(`the page has ${rendered.scripts} <script> element(s)`);
  problems.push(...tab.dialogs.map((message) => `a dialog opened, so script ran: ${message}`));
  problems.push(...cspViolations(tab.messages).map((message) => `CSP violation: ${describe(message)}`));
  problems.push(
    ...otherMessages(tab.messages, url, expected.status).map((message) =>
      `unexpected console entry: ${describe(message)}`
    ),
  );
  assert.ok(problems.length === 0, `The ${expected.name} page on a ${viewport} has problems:\n${problems.join("\n")}`);

  assert.equal(rendered.title, expected.title);
  assert.equal(rendered.bodyClass, expected.tone);
  return rendered;
}

// CI installs Chromium and must run these checks (a missing browser fails there with one line).
// Elsewhere, a machine without Chromium skips them with a notice so `deno task test` still works.
const SKIP = !Deno.env.get("CI") && !HAS_CHROMIUM;
if (SKIP) {
  console.warn(`Skipping the browser page checks: no Chromium at ${CHROMIUM_PATH} (apt-get install chromium)`);
}

Deno.test({
  name: "each callback page renders styled in headless Chromium under its CSP without violations",
  ignore: SKIP,
}, async (t) => {
  await using relay = await startTestRelay();
  await using browser = await launchBrowser();
  const callback = (query: string[][]) => `${relay.url}/oauth/callback?${new URLSearchParams(query)}`;

  for (const viewport of Object.keys(VIEWPORTS) as ViewportName[]) {
    await t.step(`on a ${viewport}`, async (t) => {
      // Set before the first load, so the viewport never reloads a callback.
      const tab = await watchPage(browser, VIEWPORTS[viewport]);
      const completeUrl = callback([["code", `code-${viewport}`], ["state", `complete-${viewport}`]]);

      await t.step("the complete page", async () => {
        const pending = wait(relay, { state: `complete-${viewport}` });
        await pending.registered;
        await checkPage(tab, viewport, completeUrl, {
          name: "complete",
          status: 200,
          tone: "success",
          title: "Authorization Complete",
        });
        assert.equal((await pending.result).code, `code-${viewport}`);
      });

      await t.step("the already completed page, when the complete URL is loaded again", async () => {
        await checkPage(tab, viewport, completeUrl, {
          name: "already-completed",
          status: 404,
          tone: "neutral",
          title: "Authorization Already Completed",
        });
      });

      await t.step("the denied page shows the provider's description as text and runs none of it", async () => {
        const description = "<script>alert(1)</script>";
        const pending = wait(relay, { state: `denied-${viewport}` });
        await pending.registered;
        const rendered = await checkPage(
          tab,
          viewport,
          callback([["error", "access_denied"], ["error_description", description], ["state", `denied-${viewport}`]]),
          { name: "denied", status: 200, tone: "failure", title: "Authorization Not Granted" },
        );
        assert.deepEqual(rendered.details, ["access_denied", description]);
        const result = await pending.result;
        assert.deepEqual([result.success, result.raw.error], [false, "access_denied"]);
      });

      await t.step("the no client page, for an unknown state", async () => {
        await checkPage(tab, viewport, callback([["code", "code-nobody"], ["state", `nobody-${viewport}`]]), {
          name: "no-client",
          status: 404,
          tone: "failure",
          title: "Authorization Failed – No client waiting",
        });
      });

      await t.step("the bad request page, for a callback with two different states", async () => {
        const rendered = await checkPage(tab, viewport, callback([["state", "a"], ["state", "b"], ["code", "x"]]), {
          name: "bad-request",
          status: 400,
          tone: "failure",
          title: "Bad Request",
        });
        assert.equal(rendered.details.length, 1);
      });
    });
  }
});

Deno.test(
  { name: "the browser check reports a page whose CSP blocks its style or script", ignore: SKIP },
  async (t) => {
    // A tiny server serving the real page HTML under a chosen CSP, to prove the detector works.
    const wrongHash = CONTENT_SECURITY_POLICY.replace(/'sha256-[^']+'/, `'sha256-${"A".repeat(43)}='`);
    assert.ok(wrongHash !== CONTENT_SECURITY_POLICY);
    const html = renderPage(completePage());
    const controller = new AbortController();
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen: () => {} },
      (request) => {
        const path = new URL(request.url).pathname;
        const script = path === "/script" || path === "/no-policy";
        const headers: Record<string, string> = { "content-type": "text/html; charset=utf-8" };
        if (path !== "/no-policy") headers["content-security-policy"] = script ? CONTENT_SECURITY_POLICY : wrongHash;
        return new Response(script ? html.replace("</main>", "</main><script>alert(1)</script>") : html, { headers });
      },
    );
    try {
      await using browser = await launchBrowser();
      const tab = await watchPage(browser, VIEWPORTS.phone);
      const base = `http://127.0.0.1:${server.addr.port}`;

      await t.step("a wrong style hash leaves the page unstyled and logs a violation", async () => {
        await tab.open(`${base}/wrong-hash`);
        const rendered = await tab.page.evaluate(READ_PAGE) as Rendered;
        await Deno.writeFile(`${await screenshotDir()}/selfcheck-wrong-hash.png`, await tab.page.screenshot());
        const problems = styleProblems(rendered, "success", "light");
        assert.ok(problems.includes('body display is "block", expected "flex"'), problems.join("\n"));
        assertBothChannels(tab.messages);
      });

      await t.step("an injected inline script is blocked and logs a violation", async () => {
        await tab.open(`${base}/script`);
        const rendered = await tab.page.evaluate(READ_PAGE) as Rendered;
        assert.deepEqual(styleProblems(rendered, "success", "light"), []);
        assert.equal(rendered.scripts, 1);
        assert.deepEqual(tab.dialogs, []);
        assertBothChannels(tab.messages);
      });

      await t.step("without the policy the same script runs, and its dialog is seen", async () => {
        await tab.open(`${base}/no-policy`);
        assert.deepEqual(tab.dialogs, ["1"]);
        assert.deepEqual(cspViolations(tab.messages), []);
      });
    } finally {
      controller.abort();
      await server.finished;
    }
  },
);

/** Each way the detector hears of a violation works on its own: the console line and the DevTools issue. */
function assertBothChannels(messages: PageMessage[]): void {
  const violations = cspViolations(messages);
  assert.ok(violations.some((message) => message.source === "console"), `no console line:\n${messages.map(describe)}`);
  assert.ok(violations.some((message) => message.source === "issue"), `no DevTools issue:\n${messages.map(describe)}`);
}
