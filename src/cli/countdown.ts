/**
 * A countdown of the time left, redrawn in place on one terminal line every
 * second and removed when stopped.
 *
 * @module
 */

import type { Terminal } from "./io.ts";

/** Erases from the cursor to the end of the line (ECMA-48 EL). */
const ERASE_TO_END = "\x1b[K";

/**
 * Minutes and seconds, as a countdown shows them.
 *
 * @param seconds Whole seconds left.
 * @returns E.g. `4:05`, or `1:02:03` past an hour.
 *
 * @example
 * ```ts
 * import { formatRemaining } from "./countdown.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatRemaining(245), "4:05");
 * assert.equal(formatRemaining(3723), "1:02:03");
 * ```
 */
export function formatRemaining(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  const two = (n: number) => String(n).padStart(2, "0");
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

/**
 * Starts a countdown to `deadline` on the terminal's current line, after
 * `prefix` (e.g. the last line of a QR code, which then keeps its place).
 *
 * @param terminal Where to draw.
 * @param deadline When the time is up, in milliseconds since the epoch.
 * @param prefix What stays at the start of the line.
 * @returns A function that stops the countdown, removes it, and ends the line (`prefix` stays).
 *
 * @example
 * ```ts
 * import { startCountdown } from "./countdown.ts";
 * import assert from "node:assert/strict";
 *
 * let screen = "";
 * const stop = startCountdown({ write: (text) => screen += text, size: () => ({ columns: 80, rows: 24 }) }, Date.now() + 90_000);
 * stop();
 * assert.match(screen, /^\r {2}1:(30|29) left to authorize\x1b\[K\r\x1b\[K$/);
 * ```
 */
export function startCountdown(terminal: Terminal, deadline: number, prefix = ""): () => void {
  const draw = () => {
    terminal.write(`\r${prefix}  ${formatRemaining((deadline - Date.now()) / 1000)} left to authorize${ERASE_TO_END}`);
  };
  draw();
  const timer = setInterval(draw, 1000);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    // Remove the countdown; a prefix (the code's last line) stays, and its line ends.
    terminal.write(prefix === "" ? `\r${ERASE_TO_END}` : `\r${prefix}${ERASE_TO_END}\n`);
  };
}
