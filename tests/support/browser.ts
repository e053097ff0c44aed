/**
 * Headless Chromium for the tests, driven by `puppeteer-core`: the one
 * launcher of the repository. The login tests use it as the person, who opens
 * the authorize link, signs in and consents at the provider's development
 * pages and follows the redirect to the relay; the page tests use it to load
 * the relay's own pages and watch what Chromium reports about them.
 *
 * @module
 */

import puppeteer, { type Browser, type Page, type Viewport } from "puppeteer-core";

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

/**
 * Starts Chromium headless with a fresh profile.
 *
 * @throws {Error} With one clear line when the `chromium` package is not installed.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  if (!HAS_CHROMIUM) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: install the Debian package "chromium" (apt-get install chromium)`,
    );
  }
  const profile = await Deno.makeTempDir({ prefix: "oauth-relay-chromium-" });
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
      // Screenshots show the page, not a scrollbar the headless window would not have on a phone.
      "--hide-scrollbars",
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

/** Something a page reported: a console line (Chromium's own log entries included), a DevTools issue, an exception. */
export interface PageMessage {
  /** `console` (console calls and Chromium's log, such as "Refused to …"), `issue` (DevTools), `exception`. */
  source: "console" | "issue" | "exception";
  /** The console level, the issue's code, or `error`. */
  level: string;
  text: string;
  /** The document or resource the message is about, when Chromium names one. */
  url?: string;
}

/** The HTTP response of the document Chromium loaded, as Chromium saw it. */
export interface DocumentResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
}

/** A tab whose messages and dialogs are recorded; see {@linkcode watchPage}. */
export interface WatchedPage {
  /** The puppeteer page, for evaluation, media emulation and screenshots. */
  page: Page;
  /** What the page reported since the last {@linkcode WatchedPage.open}. */
  messages: PageMessage[];
  /** Messages of `alert()`, `confirm()` and `prompt()` dialogs since the last open. */
  dialogs: string[];
  /**
   * Loads `url`, clearing `messages` and `dialogs` first, and resolves once its
   * load event fired, with the document's HTTP status and headers.
   */
  open(url: string): Promise<DocumentResponse>;
}

/**
 * Opens a tab at `viewport` that records everything the page reports.
 *
 * @param browser The running browser.
 * @param viewport The size of the tab, in CSS pixels (`isMobile` for a phone's layout viewport).
 * @returns The tab and its records.
 */
export async function watchPage(browser: TestBrowser, viewport: Viewport): Promise<WatchedPage> {
  const page = await browser.browser.newPage();
  // Before the first load: a change of `isMobile` reloads the page, which would repeat a callback.
  await page.setViewport(viewport);
  const messages: PageMessage[] = [];
  const dialogs: string[] = [];
  page.on("console", (message) => {
    messages.push({ source: "console", level: message.type(), text: message.text(), url: message.location().url });
  });
  page.on("issue", (issue) => {
    messages.push({ source: "issue", level: issue.code, text: `${issue.code} ${JSON.stringify(issue.details)}` });
  });
  page.on("pageerror", (error) => {
    messages.push({ source: "exception", level: "error", text: String(error) });
  });
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    // An open dialog blocks the page; dismiss it so the test fails on the assertion, not on a hang.
    dialog.dismiss().catch(() => {});
  });
  return {
    page,
    messages,
    dialogs,
    async open(url) {
      messages.length = 0;
      dialogs.length = 0;
      const response = await page.goto(url, { waitUntil: "load" });
      if (!response) throw new Error(`Cannot load ${url}: no new document`);
      return { status: response.status(), headers: response.headers() };
    },
  };
}
