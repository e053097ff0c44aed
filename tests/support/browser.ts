/**
 * The person in the login tests: Debian's headless Chromium, driven by
 * `puppeteer-core`, opens the authorize link, signs in and consents at the
 * provider's development pages, and follows the redirect to the relay.
 *
 * @module
 */

import puppeteer, { type Browser, type Page } from "puppeteer-core";

/** Where Debian's `chromium` package installs the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Whether Chromium is installed; tests that need it are skipped with a notice without it. */
export const HAS_CHROMIUM: boolean = (() => {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile;
  } catch {
    return false;
  }
})();

/** A running headless Chromium; `await using` closes it and removes its profile. */
export interface TestBrowser extends AsyncDisposable {
  browser: Browser;
}

/** Starts Chromium headless with a fresh profile. */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = await Deno.makeTempDir({ prefix: "oauth-relay-login-chromium-" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM_PATH,
    userDataDir: profile,
    // Containers and CI runners rarely allow the user namespaces Chromium's sandbox needs.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--headless=new",
      // The test machine has no network: no update checks, sync or component downloads.
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      // Only loopback resolves: the provider's dev pages import a web font, which would wait on DNS otherwise.
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ],
    headless: true,
    // Puppeteer's own signal handlers would outlive the test.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  return {
    browser,
    async [Symbol.asyncDispose]() {
      await browser.close().catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/** What the person does at the provider's consent page. */
export type Decision = "consent" | "cancel";

/**
 * Opens `link` and goes through `oidc-provider`'s development pages: signs in
 * as `login` (any password does), then consents, or cancels at the consent
 * page. Resolves with the page the relay showed at the end.
 *
 * @param browser The running browser.
 * @param link The authorize link the login printed.
 * @param decision Consent, or cancel (the provider then redirects with `access_denied`).
 * @returns The relay's page title and text.
 */
export async function authorizeInBrowser(
  browser: TestBrowser,
  link: string,
  decision: Decision = "consent",
  login = "alice",
): Promise<{ url: string; text: string }> {
  const page = await browser.browser.newPage();
  try {
    await page.goto(link, { waitUntil: "load" });
    await page.waitForSelector('input[name="login"]');
    await page.type('input[name="login"]', login);
    await page.type('input[name="password"]', "any password");
    await submitAndWait(page, "button[type=submit]");
    if (decision === "cancel") {
      // The layout's "[ Cancel ]" link aborts the interaction: RFC 6749 §4.1.2.1 access_denied.
      await submitAndWait(page, 'a[href*="/abort"]');
    } else {
      await page.waitForSelector('input[name="prompt"][value="consent"]');
      await submitAndWait(page, "button[type=submit]");
    }
    return { url: page.url(), text: await page.evaluate("document.body.innerText") as string };
  } finally {
    await page.close().catch(() => {});
  }
}

/** Clicks `selector` and waits until the navigation it starts (and its redirects) has loaded. */
async function submitAndWait(page: Page, selector: string): Promise<void> {
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click(selector)]);
}
