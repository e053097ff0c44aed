/**
 * A minimal Chrome DevTools Protocol client for the browser tests: it starts
 * Debian's headless Chromium with a throwaway profile and drives pages over
 * Deno's built-in WebSocket, so the tests need no npm dependency.
 *
 * @module
 */

/** Where Debian's `chromium` package installs the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  // Containers and CI runners rarely allow the user namespaces Chromium's sandbox needs.
  "--no-sandbox",
  "--disable-gpu",
  // The test machine has no network: no update checks, sync, component downloads or QUIC probes.
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-quic",
  "--hide-scrollbars",
  // Port 0: Chromium picks a free loopback port and prints it on stderr.
  "--remote-debugging-port=0",
];

/** How long one DevTools step may take before the test fails instead of hanging. */
const STEP_TIMEOUT_MS = 30_000;

/** Rejects with a clear message when `promise` has not settled after `ms` milliseconds. */
async function within<T>(promise: Promise<T>, what: string, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type Params = Record<string, unknown>;

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Params;
  result?: Params;
  error?: { code: number; message: string };
  sessionId?: string;
}

interface PendingCall {
  method: string;
  resolve: (result: Params) => void;
  reject: (error: Error) => void;
}

/** One WebSocket to the browser; page sessions share it ("flattened" sessions). */
class Connection {
  readonly #socket: WebSocket;
  readonly #calls = new Map<number, PendingCall>();
  readonly #listeners = new Set<(message: CdpMessage) => void>();
  #nextId = 1;
  /** Settles once the socket is closed, by either side. */
  readonly closed: Promise<void>;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", () => {
        for (const call of this.#calls.values()) {
          call.reject(new Error(`DevTools connection closed during ${call.method}`));
        }
        this.#calls.clear();
        resolve();
      });
    });
    socket.addEventListener("message", (event) => this.#receive(JSON.parse(event.data) as CdpMessage));
  }

  static async open(url: string): Promise<Connection> {
    const socket = new WebSocket(url);
    const opened = new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`Cannot connect to DevTools at ${url}`)), {
        once: true,
      });
    });
    await within(opened, `connecting to DevTools at ${url}`);
    return new Connection(socket);
  }

  #receive(message: CdpMessage): void {
    if (message.id === undefined) {
      for (const listener of this.#listeners) listener(message);
      return;
    }
    const call = this.#calls.get(message.id);
    if (!call) return;
    this.#calls.delete(message.id);
    if (message.error) call.reject(new Error(`${call.method} failed: ${message.error.message}`));
    else call.resolve(message.result ?? {});
  }

  send<T = Params>(method: string, params: Params = {}, sessionId?: string): Promise<T> {
    const id = this.#nextId++;
    const result = new Promise<Params>((resolve, reject) => this.#calls.set(id, { method, resolve, reject }));
    this.#socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return within(result, method) as Promise<T>;
  }

  /** Calls `listener` with every event; returns the function that stops it. */
  on(listener: (message: CdpMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    if (this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING) {
      this.#socket.close();
    }
  }
}

/** Something the page reported: a log entry, a console call, an uncaught exception or a DevTools issue. */
export interface PageMessage {
  /** `Log.entryAdded`'s source (`security`, `network`, …), or `console`, `exception`, `issue`. */
  source: string;
  level: string;
  text: string;
  url?: string;
}

/** The HTTP response of the document Chromium loaded, as Chromium saw it. */
export interface DocumentResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
}

interface LifecycleEvent {
  loaderId: string;
  name: string;
}

interface ResponseEvent {
  loaderId: string;
  type: string;
  response: { status: number; headers: Record<string, string> };
}

function consoleText(args: Array<{ value?: unknown; description?: string }>): string {
  return args.map((arg) => arg.description ?? String(arg.value)).join(" ");
}

/** One tab, attached over a flattened DevTools session. */
export class Page {
  /** What the page reported since the last {@linkcode Page.navigate}. */
  readonly messages: PageMessage[] = [];
  /** Messages of `alert()`, `confirm()` and `prompt()` dialogs since the last navigation. */
  readonly dialogs: string[] = [];
  readonly #connection: Connection;
  readonly #sessionId: string;
  readonly #loads = new Map<string, PromiseWithResolvers<void>>();
  readonly #documents = new Map<string, DocumentResponse>();

  constructor(connection: Connection, sessionId: string) {
    this.#connection = connection;
    this.#sessionId = sessionId;
    connection.on((message) => {
      if (message.sessionId === sessionId) this.#event(message.method ?? "", message.params ?? {});
    });
  }

  #loaded(loaderId: string): PromiseWithResolvers<void> {
    let load = this.#loads.get(loaderId);
    if (!load) {
      load = Promise.withResolvers<void>();
      this.#loads.set(loaderId, load);
    }
    return load;
  }

  #event(method: string, params: Params): void {
    switch (method) {
      case "Log.entryAdded": {
        const entry = params.entry as PageMessage;
        this.messages.push({ source: entry.source, level: entry.level, text: entry.text, url: entry.url });
        break;
      }
      case "Runtime.consoleAPICalled":
        this.messages.push({
          source: "console",
          level: String(params.type),
          text: consoleText(params.args as Array<{ value?: unknown; description?: string }>),
        });
        break;
      case "Runtime.exceptionThrown": {
        const details = params.exceptionDetails as { text: string; exception?: { description?: string } };
        this.messages.push({
          source: "exception",
          level: "error",
          text: `${details.text} ${details.exception?.description ?? ""}`.trim(),
        });
        break;
      }
      case "Audits.issueAdded": {
        const issue = params.issue as { code: string; details: unknown };
        this.messages.push({
          source: "issue",
          level: "warning",
          text: `${issue.code} ${JSON.stringify(issue.details)}`,
        });
        break;
      }
      case "Page.javascriptDialogOpening":
        this.dialogs.push(String(params.message));
        // An open dialog blocks the page; dismiss it so the test fails on the assertion, not on a hang.
        this.send("Page.handleJavaScriptDialog", { accept: false }).catch(() => {});
        break;
      case "Network.responseReceived": {
        const { loaderId, type, response } = params as unknown as ResponseEvent;
        if (type !== "Document") break;
        const headers = Object.fromEntries(
          Object.entries(response.headers).map(([name, value]) => [name.toLowerCase(), value]),
        );
        this.#documents.set(loaderId, { status: response.status, headers });
        break;
      }
      case "Page.lifecycleEvent": {
        const { loaderId, name } = params as unknown as LifecycleEvent;
        if (name === "load") this.#loaded(loaderId).resolve();
        break;
      }
    }
  }

  /** Sends a DevTools command to this page. */
  send<T = Params>(method: string, params: Params = {}): Promise<T> {
    return this.#connection.send<T>(method, params, this.#sessionId);
  }

  /**
   * Loads `url` and resolves once its load event fired, with the document's
   * HTTP status and headers. Clears {@linkcode Page.messages} and {@linkcode Page.dialogs} first.
   */
  async navigate(url: string): Promise<DocumentResponse> {
    this.messages.length = 0;
    this.dialogs.length = 0;
    const { loaderId, errorText } = await this.send<{ loaderId?: string; errorText?: string }>("Page.navigate", {
      url,
    });
    if (errorText || !loaderId) throw new Error(`Cannot load ${url}: ${errorText ?? "no new document"}`);
    // The lifecycle "load" event is Page.loadEventFired tagged with its loader, so a late
    // load event of the previous document cannot be mistaken for this one.
    await within(this.#loaded(loaderId).promise, `load event of ${url}`);
    this.#loads.delete(loaderId);
    const response = this.#documents.get(loaderId);
    this.#documents.delete(loaderId);
    if (!response) throw new Error(`No document response seen for ${url}`);
    return response;
  }

  /** Evaluates `expression` in the page and returns its value (JSON-serialisable results only). */
  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.send<{
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    }>("Runtime.evaluate", { expression, returnByValue: true });
    if (exceptionDetails) {
      throw new Error(`Evaluation failed: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
    }
    return result.value as T;
  }

  /** Emulates `prefers-color-scheme`. */
  async colorScheme(scheme: "light" | "dark"): Promise<void> {
    await this.send("Emulation.setEmulatedMedia", { features: [{ name: "prefers-color-scheme", value: scheme }] });
  }

  /** Captures the viewport as PNG and writes it to `path`. */
  async screenshot(path: string): Promise<void> {
    const { data } = await this.send<{ data: string }>("Page.captureScreenshot", { format: "png" });
    await Deno.writeFile(path, Uint8Array.from(atob(data), (char) => char.charCodeAt(0)));
  }
}

/** Viewport of a page, like `Emulation.setDeviceMetricsOverride`. */
export interface Viewport {
  width: number;
  height: number;
  deviceScaleFactor?: number;
  mobile?: boolean;
}

/** A running headless Chromium; `await using` closes it and removes its profile. */
export interface Chromium extends AsyncDisposable {
  /** Opens a tab with `viewport`, its logs, console, network and lifecycle events enabled. */
  newPage(viewport: Viewport): Promise<Page>;
}

/**
 * Starts Debian's Chromium headless with a fresh profile in a temp directory.
 *
 * @throws {Error} With one clear line when the `chromium` package is not installed.
 */
export async function launchChromium(): Promise<Chromium> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: install the Debian package "chromium" (apt-get install chromium)`,
    );
  }

  const profile = await Deno.makeTempDir({ prefix: "oauth-relay-chromium-" });
  const child = new Deno.Command(CHROMIUM_PATH, {
    args: [...FLAGS, `--user-data-dir=${profile}`, "about:blank"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();

  // Chromium announces its DevTools endpoint on stderr; read until then, keep the
  // rest draining so the pipe never fills, and keep its tail for error messages.
  const endpoint = Promise.withResolvers<string>();
  let stderrTail = "";
  const stderrDone = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderrTail = (stderrTail + decoder.decode(chunk, { stream: true })).slice(-4000);
      const match = stderrTail.match(/DevTools listening on (ws:\/\/\S+)/);
      if (match) endpoint.resolve(match[1]);
    }
    endpoint.reject(new Error(`Chromium exited before DevTools listened:\n${stderrTail}`));
  })();

  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await stderrDone;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };

  let browser: Connection;
  try {
    browser = await Connection.open(await within(endpoint.promise, "Chromium's DevTools endpoint"));
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    async newPage(viewport) {
      const { targetId } = await browser.send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await browser.send<{ sessionId: string }>("Target.attachToTarget", {
        targetId,
        flatten: true,
      });
      const page = new Page(browser, sessionId);
      await Promise.all([
        page.send("Page.enable"),
        page.send("Page.setLifecycleEventsEnabled", { enabled: true }),
        page.send("Runtime.enable"),
        page.send("Log.enable"),
        page.send("Network.enable"),
        page.send("Audits.enable"),
        page.send("Emulation.setDeviceMetricsOverride", {
          deviceScaleFactor: 1,
          mobile: false,
          ...viewport,
        }),
      ]);
      return page;
    },
    async [Symbol.asyncDispose]() {
      // Browser.close ends Chromium cleanly; it may drop the socket before it answers.
      await browser.send("Browser.close").catch(() => {});
      browser.close();
      // A browser that does not exit in time is killed; that is cleanup, not a test failure.
      await within(Promise.all([browser.closed, child.status]), "Chromium to exit", 10_000).catch(() => {});
      await stop();
    },
  };
}
