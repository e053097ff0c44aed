/**
 * The QR code of the authorize link: it decodes back to the link (jsQR reads
 * an image made from the terminal text), carries its own colours, and for a
 * pushed authorization request's link fits an 80×24 terminal with the
 * countdown beside its last line, as `client.ts login` draws it.
 *
 * @module
 */

import assert from "node:assert/strict";
import jsqr from "jsqr";
import { QR_COLORS, renderQr } from "../src/login/qr.ts";
import { main } from "../src/cli/main.ts";
import { EXIT, type Terminal } from "../src/cli/io.ts";
import { startTestRelay } from "./helpers.ts";
import { PUBLIC_CLIENT, startOidcProvider } from "./support/oidc_provider.ts";

/** jsQR is CommonJS: its module is the function itself, whatever its types say. */
const jsQR = jsqr as unknown as (
  data: Uint8ClampedArray,
  width: number,
  height: number,
  options: { inversionAttempts: "dontInvert" },
) => { data: string } | null;

/** The colours and their reset around each line. */
// deno-lint-ignore no-control-regex -- ESC starts every terminal colour
const COLOURED_LINE = /^\x1b\[38;5;231m\x1b\[48;5;16m([█▀▄ ]+)\x1b\[0m$/;

/** Upper and lower module of each character: true is light (the foreground, white). */
const HALVES: Record<string, [boolean, boolean]> = {
  "█": [true, true],
  "▀": [true, false],
  "▄": [false, true],
  " ": [false, false],
};

/** The terminal lines as a picture: 4 pixels a module, and a wide quiet zone as a screen around it gives. */
function picture(lines: string[]): { data: Uint8ClampedArray; width: number; height: number } {
  const modules = lines.flatMap((line) => {
    const [, text] = line.match(COLOURED_LINE)!;
    const chars = [...text];
    return [chars.map((char) => HALVES[char][0]), chars.map((char) => HALVES[char][1])];
  });
  const scale = 4;
  const margin = 4;
  const width = (modules[0].length + 2 * margin) * scale;
  const height = (modules.length + 2 * margin) * scale;
  const data = new Uint8ClampedArray(width * height * 4).fill(255);
  for (const [y, row] of modules.entries()) {
    for (const [x, light] of row.entries()) {
      if (light) continue;
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) {
          const offset = (((y + margin) * scale + dy) * width + (x + margin) * scale + dx) * 4;
          data.fill(0, offset, offset + 3);
        }
      }
    }
  }
  return { data, width, height };
}

function decode(lines: string[]): string | undefined {
  const { data, width, height } = picture(lines);
  // As many phones read: dark modules on light, never a negative.
  return jsQR(data, width, height, { inversionAttempts: "dontInvert" })?.data;
}

Deno.test("the QR code decodes back to the link, for a short and a long link", async (t) => {
  const pushed = "http://127.0.0.1:45678/auth?client_id=login-test&request_uri=urn:ietf:params:oauth:request_uri:" +
    "RP3jJ1v3yUUPb6dfh8TRjGSvTk8DDX9pCqNN_yIwNlQ";
  const full = "https://accounts.google.com/o/oauth2/v2/auth?" + new URLSearchParams({
    client_id: "1234567890-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com",
    redirect_uri: "https://relay.example.com/oauth/callback",
    response_type: "code",
    scope: "openid email",
    state: "YuGeioKF3SuVec6685TDJbYYecZXfs4hraZTJhoyFis",
    nonce: "EYm2tYqfVYNEggt63txipejUR15hfNr985bOlsLNjDM",
    code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    code_challenge_method: "S256",
  });
  for (const link of [pushed, full]) {
    await t.step(`${link.length} bytes`, () => {
      const qr = renderQr(link);
      assert.equal(decode(qr.lines), link);
    });
  }
});

Deno.test("the QR code sets its colours on every line: white light modules, black dark ones, then resets", () => {
  const qr = renderQr("https://provider.example/authorize");
  for (const line of qr.lines) {
    assert.match(line, COLOURED_LINE);
    assert.ok(line.startsWith(QR_COLORS.light + QR_COLORS.dark));
    assert.ok(line.endsWith(QR_COLORS.reset));
  }
  // Without the colours (or inverted) it would not read on a light theme: the decoder sees a negative.
  const negative = qr.lines.map((line) =>
    line.replace(/[█▀▄ ]/g, (char) => ({ "█": " ", " ": "█", "▀": "▄", "▄": "▀" })[char]!)
  );
  assert.equal(decode(negative), undefined);
});

/** A terminal of `columns`×`rows` that records what is written. */
function terminal(columns: number, rows: number): Terminal & { writes: string[] } {
  const writes: string[] = [];
  return { writes, write: (text) => writes.push(text), size: () => ({ columns, rows }) };
}

Deno.test("on an 80×24 terminal, login draws a PAR link's QR code within 24 lines, the countdown beside it, and removes the countdown", async () => {
  await using relay = await startTestRelay();
  await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`] });
  const screen = terminal(80, 24);
  const stderr: string[] = [];
  const code = await main(
    ["login", "--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT, "--timeout", "1"],
    {
      stdout: () => assert.fail("nothing on stdout"),
      stderr: (text) => stderr.push(text),
      terminal: screen,
      env: { OAUTH_PUBLIC_URL: relay.url, OAUTH_SOCKET_PATH: relay.client.socketPath! },
    },
  );
  assert.equal(code, EXIT.TIMEOUT);
  const linkAt = stderr.findIndex((line) => line.startsWith("http://"));
  const link = stderr[linkAt];
  assert.match(link, /request_uri=urn:ietf:params:oauth:request_uri:/);
  const drawn = stderr.slice(linkAt + 1).filter((line) => COLOURED_LINE.test(line));
  // The last line of the code is drawn by the countdown, on the terminal line it updates.
  const counting = screen.writes[0];
  const [, last, countdown] = counting.match(
    // deno-lint-ignore no-control-regex -- ESC starts every terminal colour
    /^\r(\x1b\[38;5;231m\x1b\[48;5;16m[█▀▄ ]+\x1b\[0m)( {2}\d+:\d\d left to authorize)\x1b\[K$/,
  )!;
  const lines = [...drawn, last];
  assert.equal(decode(lines), link);
  assert.ok(lines.length <= 24, `${lines.length} lines`);
  const width = [...last.match(COLOURED_LINE)![1]].length;
  assert.ok(width + countdown.length <= 80, `${width + countdown.length} columns`);
  // Stopped: the countdown is gone, the code's last line stays and ends.
  assert.equal(screen.writes.at(-1), `\r${last}\x1b[K\n`);
  assert.match(stderr.at(-1)!, /^oauth-relay: No callback for this state within 1 second/);
});

Deno.test("login draws no QR code where the terminal is too narrow for it, and says so", async () => {
  await using relay = await startTestRelay();
  await using provider = await startOidcProvider({ redirectUris: [`${relay.url}/oauth/callback`], par: false });
  const screen = terminal(40, 24);
  const stderr: string[] = [];
  const code = await main(
    ["login", "--issuer", provider.issuer, "--client-id", PUBLIC_CLIENT, "--timeout", "1"],
    {
      stdout: () => {},
      stderr: (text) => stderr.push(text),
      terminal: screen,
      env: { OAUTH_PUBLIC_URL: relay.url, OAUTH_SOCKET_PATH: relay.client.socketPath! },
    },
  );
  assert.equal(code, EXIT.TIMEOUT);
  assert.ok(!stderr.some((line) => COLOURED_LINE.test(line)));
  assert.ok(stderr.some((line) => /^oauth-relay: no QR code: it needs \d+ columns, the terminal has 40$/.test(line)));
  // The countdown then has a line of its own, removed at the end.
  // deno-lint-ignore no-control-regex -- ESC starts every terminal colour
  assert.match(screen.writes[0], /^\r {2}\d+:\d\d left to authorize\x1b\[K$/);
  assert.equal(screen.writes.at(-1), "\r\x1b[K");
});
