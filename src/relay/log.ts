/**
 * Levelled logging to stderr, and the helpers that keep secrets out of it.
 *
 * @module
 */

/** Log levels, quietest last. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Where the relay writes its log lines. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Whether DEBUG lines are written, to skip building them otherwise. */
  readonly debugEnabled: boolean;
}

/**
 * Creates a logger that writes lines at or above `level` to `sink`.
 *
 * @param level The lowest level written.
 * @param sink Receives each formatted line; stderr by default.
 */
export function createLogger(level: LogLevel, sink: (line: string) => void = console.error): Logger {
  const rank = LOG_LEVELS.indexOf(level);
  const at = (name: LogLevel) => {
    if (LOG_LEVELS.indexOf(name) < rank) return () => {};
    const label = name.toUpperCase();
    return (message: string) => sink(`${new Date().toISOString()} ${label} - ${message}`);
  };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    debugEnabled: rank === 0,
  };
}

/**
 * Quotes a value the client or provider chose (a state) for a log line:
 * control characters escaped so it cannot forge lines, long values cut.
 */
export function quote(value: string | null): string {
  if (value === null) return "(none)";
  const cut = value.length > 64 ? value.slice(0, 64) : value;
  // Only printable ASCII goes out as is: no line separators, terminal controls or bidi overrides.
  const escaped = cut.replace(
    /[^\x20-\x7e]|['\\]/g,
    (char) => char === "'" || char === "\\" ? `\\${char}` : `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `'${escaped}${value.length > 64 ? "..." : ""}'`;
}

/** Describes a code without revealing it (RFC 9700 §3, attacker A3 reads logs). */
export function redactCode(code: string | null): string {
  return code === null ? "no code" : `a code of ${code.length} characters`;
}
