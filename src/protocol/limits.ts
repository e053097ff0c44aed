// This module is browser compatible.

/**
 * Every limit and default both sides rely on, defined once.
 *
 * @module
 */

/**
 * Longest line the relay accepts from a client, in bytes, newline excluded. A
 * register message is small; the bound keeps what a connection can make the
 * relay hold before it registers small too.
 */
export const MAX_LINE_BYTES = 16 * 1024;

/**
 * Longest line a client accepts from the relay. A callback message carries
 * what a stranger sent (URL up to 16 KiB, body up to
 * {@linkcode MAX_BODY_BYTES_LIMIT}), JSON-escaped (at most 6 bytes per byte)
 * with `code` and `state` twice: under 2 MiB.
 */
export const MAX_RELAY_LINE_BYTES = 4 * 1024 * 1024;

/** Default largest callback body, in bytes (`OAUTH_MAX_BODY_BYTES`). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** Largest `OAUTH_MAX_BODY_BYTES`: a delivered callback must fit {@linkcode MAX_RELAY_LINE_BYTES}. */
export const MAX_BODY_BYTES_LIMIT = 256 * 1024;

/** Default most clients waiting at once (`OAUTH_MAX_WAITERS`). */
export const DEFAULT_MAX_WAITERS = 10_000;

/**
 * Milliseconds a coordinator connection may stay silent before it registers.
 * A client registers as soon as it connects, so this is short: silent
 * connections are what a flood is made of.
 */
export const REGISTER_TIMEOUT_MS = 3_000;

/** Default longest registration, in seconds (`OAUTH_MAX_TIMEOUT`); longer requests are clamped. */
export const DEFAULT_MAX_TIMEOUT_SECONDS = 3600;

/** `setTimeout` takes a signed 32-bit number of milliseconds; longer delays fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Longest timeout in seconds either side accepts: {@linkcode MAX_TIMER_MS} (about 24 days). */
export const MAX_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** Highest TCP port number. Port 0 asks the system for a free port when listening. */
export const MAX_PORT = 65535;
