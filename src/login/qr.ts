// This module is browser compatible.

/**
 * The authorize link as a QR code for a terminal, so a phone can open it:
 * uqr's compact rendering (two rows of modules per line of text) with its
 * colours set explicitly, so it reads the same on dark and light themes.
 *
 * @module
 */

import { renderUnicodeCompact } from "uqr";

/**
 * The colours the code is drawn in, whatever the terminal's theme: uqr draws
 * light modules with the foreground colour (full and half blocks) and dark
 * ones with the background (spaces), so the foreground is set to white and the
 * background to black. Both are fixed entries of the 256-colour table
 * (231: #ffffff, 16: #000000), which themes do not remap as they do the first 16.
 *
 * @example
 * ```ts
 * import { QR_COLORS } from "./qr.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(QR_COLORS.light, "\x1b[38;5;231m");
 * ```
 */
export const QR_COLORS: Readonly<{ light: string; dark: string; reset: string }> = Object.freeze({
  /** Light modules: the foreground, pure white. */
  light: "\x1b[38;5;231m",
  /** Dark modules: the background, pure black. */
  dark: "\x1b[48;5;16m",
  /** Back to the terminal's own colours at the end of each line. */
  reset: "\x1b[0m",
});

/** Modules of quiet zone around the code: one keeps a PAR link's code within 24 lines; phones read it. */
const BORDER = 1;

/** A QR code as lines for a terminal. */
export interface TerminalQr {
  /** The lines, each with its colours set and reset. */
  lines: string[];
  /** Terminal columns one line takes (without the colour codes). */
  columns: number;
}

/**
 * Renders `text` as a QR code for a terminal, error correction level L (the
 * smallest code: a screen is not a damaged label).
 *
 * A link of up to 154 bytes (a pushed authorization request's link is about
 * 130) becomes a code of 47 columns and 24 lines at most, so it fits an 80×24
 * terminal with room for the countdown beside its last line.
 *
 * @param text What to encode: the authorize link.
 * @returns The lines, and how wide they are.
 *
 * @example
 * ```ts
 * import { renderQr } from "./qr.ts";
 * import assert from "node:assert/strict";
 *
 * const qr = renderQr("https://provider.example/authorize?client_id=x&request_uri=urn:ietf:params:oauth:request_uri:abc");
 * assert.ok(qr.lines.length <= 24 && qr.columns <= 80);
 * assert.ok(qr.lines.every((line) => line.startsWith("\x1b[38;5;231m\x1b[48;5;16m") && line.endsWith("\x1b[0m")));
 * ```
 */
export function renderQr(text: string): TerminalQr {
  const lines = renderUnicodeCompact(text, { ecc: "L", border: BORDER }).split("\n");
  return {
    lines: lines.map((line) => `${QR_COLORS.light}${QR_COLORS.dark}${line}${QR_COLORS.reset}`),
    columns: Math.max(...lines.map((line) => line.length)),
  };
}
