/**
 * The HTML pages the person sees after the provider redirects them, and the
 * security headers every callback response carries.
 *
 * @module
 */

/** How a page looks: green for success, amber for "nothing to do", red for failure. */
export type Tone = "success" | "neutral" | "failure";

/** What a page says. Every string is escaped when rendered. */
export interface PageContent {
  status: number;
  tone: Tone;
  title: string;
  /** The visible heading when it differs from the document title. */
  heading?: string;
  message: string;
  /** Extra lines, e.g. the provider's error and its description. */
  details?: Array<[label: string, value: string]>;
}

const STYLE = `
:root{color-scheme:light dark;--bg:#f4f5f7;--card:#fff;--text:#1d2433;--muted:#5b6478;--line:#e3e6ec;--ok:#1f9d55;--warn:#c27c0e;--bad:#d0353f}
@media (prefers-color-scheme:dark){:root{--bg:#14161b;--card:#1e2128;--text:#e8eaf0;--muted:#9aa3b5;--line:#2d313b}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px;background:var(--bg);color:var(--text);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{width:100%;max-width:440px;background:var(--card);border:1px solid var(--line);border-radius:16px;padding:36px 28px;text-align:center;box-shadow:0 8px 30px rgba(0,0,0,.08)}
.icon{width:64px;height:64px;margin:0 auto 20px;border-radius:50%;display:flex;align-items:center;justify-content:center;font-size:34px;font-weight:700;color:#fff}
.success .icon{background:var(--ok)}.neutral .icon{background:var(--warn)}.failure .icon{background:var(--bad)}
h1{margin:0 0 8px;font-size:1.45rem;line-height:1.25}
p{margin:0;color:var(--muted)}
dl{margin:20px 0 0;padding:14px 16px;border:1px solid var(--line);border-radius:10px;text-align:left;font-size:.9rem}
dt{font-weight:600}dd{margin:0 0 8px;color:var(--muted);overflow-wrap:anywhere}dd:last-child{margin-bottom:0}
footer{margin-top:24px;font-size:.8rem;color:var(--muted)}
`.trim();

const ICONS: Record<Tone, string> = { success: "&#10003;", neutral: "i", failure: "!" };

async function sha256Base64(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/**
 * Content-Security-Policy of every page: nothing loads, no script runs, the
 * one inline style is allowed by its hash (RFC 9700 §4.2.4).
 */
export const CONTENT_SECURITY_POLICY = `default-src 'none'; style-src '${`sha256-${await sha256Base64(STYLE)}`}'; ` +
  "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Headers on every response of the callback path. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": CONTENT_SECURITY_POLICY,
  // RFC 6749 §5.1 by analogy: a page about a code is never cached.
  "cache-control": "no-store",
  "pragma": "no-cache",
  // RFC 9700 §4.2.4: the callback URL holds the code; never leak it in a Referer.
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
});

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML content and attribute values (RFC 6749 §10.14). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char]);
}

/** Renders a complete, self-contained page. */
export function renderPage(content: PageContent): string {
  const details = content.details?.length
    ? `<dl>${
      content.details.map(([label, value]) => `<dt>${escapeHtml(label)}</dt><dd>${escapeHtml(value)}</dd>`).join("")
    }</dl>`
    : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${escapeHtml(content.title)}</title><style>${STYLE}</style></head>
<body class="${content.tone}"><main><div class="icon" aria-hidden="true">${ICONS[content.tone]}</div>
<h1>${escapeHtml(content.heading ?? content.title)}</h1><p>${escapeHtml(content.message)}</p>${details}
<footer>oauth-relay</footer></main></body></html>
`;
}

/** A page as a response with the security headers. */
export function pageResponse(content: PageContent, headers: Record<string, string> = {}): Response {
  return new Response(renderPage(content), {
    status: content.status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8", ...headers },
  });
}

/**
 * A page that never changes, built once: each call returns a copy. Building
 * a `Response` checks every header (several microseconds a callback);
 * cloning a built one copies them as they are.
 */
export function fixedPage(content: PageContent, headers: Record<string, string> = {}): () => Response {
  const response = pageResponse(content, headers);
  return () => response.clone();
}

/** Shortens what a provider sent before it goes on a page. */
function cut(value: string, max = 300): string {
  return value.length > max ? value.slice(0, max) + "…" : value;
}

/** The code reached the waiting program. */
export function completePage(): PageContent {
  return {
    status: 200,
    tone: "success",
    title: "Authorization Complete",
    message: "The waiting program has received the authorization. You can close this tab.",
  };
}

/** The provider sent an error instead of a code, and the program was told. */
export function deniedPage(error: string | null, description: string | null): PageContent {
  const details: Array<[string, string]> = [];
  if (error) details.push(["Error", cut(error)]);
  if (description) details.push(["Description", cut(description)]);
  return {
    status: 200,
    tone: "failure",
    title: "Authorization Not Granted",
    message: "The provider did not grant access. The waiting program has been told. You can close this tab.",
    details,
  };
}

/** No program waits for this callback (unknown state, timed out, or already delivered). */
export function noClientPage(): PageContent {
  return {
    status: 404,
    tone: "failure",
    title: "Authorization Failed – No client waiting",
    heading: "Authorization Failed",
    message:
      "No client is waiting: no program is waiting for this authorization. It may have timed out, or the link was already used. Start the sign-in again from the program.",
  };
}

/** The callback was already delivered: e.g. the person reloaded the success tab. */
export function alreadyCompletedPage(): PageContent {
  return {
    status: 404,
    tone: "neutral",
    title: "Authorization Already Completed",
    message:
      "This authorization was already handed to the waiting program; the link works only once. You can close this tab.",
  };
}

/** A request the relay cannot accept. */
export function badRequestPage(status: number, problem: string): PageContent {
  return {
    status,
    tone: "failure",
    title: "Bad Request",
    message: "The relay could not accept this callback.",
    details: [["Problem", cut(problem)]],
  };
}

/**
 * The relay cannot take the callback right now (it is restarting, or its
 * shared registry is unreachable). Not 404: nothing says nobody waits; the
 * person reloads in a moment and the flow completes.
 */
export function unavailablePage(): PageContent {
  return {
    status: 503,
    tone: "neutral",
    title: "Temporarily Unavailable",
    message:
      "The relay is restarting or briefly unavailable. Reload this page in a moment to finish signing in; nothing was lost.",
  };
}

/** The {@linkcode unavailablePage} as a response, with the moment to retry. */
export const unavailableResponse: () => Response = fixedPage(unavailablePage(), { "retry-after": "5" });
