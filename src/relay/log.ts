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
  /** Whether INFO lines are written: the lines of every registration and delivery are skipped unbuilt otherwise. */
  readonly infoEnabled: boolean;
  /**
   * Logs a line a stranger can repeat at will (an unmatched callback, a wrong
   * token, a shed connection): the first few of each `kind` per interval,
   * then one summary line with the count when the interval ends.
   */
  limited(level: "info" | "warn" | "error", kind: string, message: string): void;
}

/** Lines of one kind written per interval before the rest are only counted. */
export const LOG_BURST = 5;
/** The interval of {@linkcode Logger.limited}, in milliseconds. */
export const LOG_INTERVAL_MS = 10_000;

/**
 * Creates a logger that writes lines at or above `level` to `sink`.
 *
 * @param level The lowest level written.
 * @param sink Receives each formatted line; stderr by default.
 */
export function createLogger(
  level: LogLevel,
  sink: (line: string) => void = console.error,
  options: { burst?: number; intervalMs?: number } = {},
): Logger {
  const rank = LOG_LEVELS.indexOf(level);
  const at = (name: LogLevel) => {
    if (LOG_LEVELS.indexOf(name) < rank) return () => {};
    const label = name.toUpperCase();
    return (message: string) => sink(`${new Date().toISOString()} ${label} - ${message}`);
  };
  const write = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  const burst = options.burst ?? LOG_BURST;
  const intervalMs = options.intervalMs ?? LOG_INTERVAL_MS;
  const windows = new Map<string, { written: number; suppressed: number }>();
  return {
    ...write,
    debugEnabled: rank === 0,
    infoEnabled: rank <= 1,
    limited(level, kind, message) {
      let window = windows.get(kind);
      if (!window) {
        window = { written: 0, suppressed: 0 };
        windows.set(kind, window);
        const timer = setTimeout(() => {
          windows.delete(kind);
          if (window!.suppressed > 0) {
            write[level](
              `${window!.suppressed} more ${kind} in the last ${intervalMs / 1000} s (not logged one by one)`,
            );
          }
        }, intervalMs);
        // A pending summary must not keep the process alive.
        Deno.unrefTimer(timer as unknown as number);
      }
      if (window.written < burst) {
        window.written++;
        write[level](message);
      } else {
        window.suppressed++;
      }
    },
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
