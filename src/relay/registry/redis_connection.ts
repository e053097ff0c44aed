/**
 * The Redis registry's two connections (commands, and a subscriber for its
 * wake-ups) with what the registry needs on top of node-redis: a timeout on
 * every command (node-redis's own `timeout` stops counting once a command is
 * written, so a stopped Redis would hang it), whether Redis answers now, and
 * one line for a person when it does not. Nothing here knows about states.
 *
 * @module
 */

import { createClient } from "redis";
import { ConfigError } from "../../client/settings.ts";
import { redactRedisUrl } from "../config.ts";
import type { Logger } from "../log.ts";
import { type ScriptName, type ScriptReply, SCRIPTS } from "./redis_scripts.ts";

/** A command that did not answer in time. */
export class RedisTimeoutError extends Error {
  /** @param ms The timeout. */
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
    this.name = "RedisTimeoutError";
  }
}

/** The shape of node-redis's client the registry uses. */
interface Client {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  duplicate(overrides?: { name?: string }): Client;
  on(event: string, listener: (...args: unknown[]) => void): Client;
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
  publish(channel: string, message: string): Promise<number>;
  sendCommand(args: string[]): Promise<unknown>;
}

type ScriptCalls = { [K in ScriptName]: (key: string, args: string[]) => Promise<ScriptReply> };

/** Options of {@linkcode RedisConnection.open}. */
export interface RedisConnectionOptions {
  /** `redis://`, `rediss://` or `unix://`, with user and password if any. */
  url: string;
  logger: Logger;
  /** The channel this relay is woken on, and what to do with each message. */
  channel: string;
  /** Names the connections in Redis's `CLIENT LIST` (`NAME-commands`, `NAME-subscriber`), for operators. */
  name: string;
  onMessage(message: string): void;
  /** Called when a connection is ready again after it was lost (not at the first connect). */
  onReconnect(which: "commands" | "subscriber"): void;
  /** Milliseconds the first connection may take before the relay gives up starting. Default 5000. */
  startTimeoutMs?: number;
}

/** Two connections to one Redis, and whether it answers. */
export class RedisConnection {
  readonly #client: Client;
  readonly #subscriber: Client;
  readonly #logger: Logger;
  /** The URL with its password hidden, for log lines and `/health`. */
  readonly where: string;
  #closed = false;
  /** Set when a command timed out; cleared when one answers in time. */
  #stalled: string | undefined;
  #lastError = "";
  #down = false;

  private constructor(client: Client, subscriber: Client, options: RedisConnectionOptions) {
    this.#client = client;
    this.#subscriber = subscriber;
    this.#logger = options.logger;
    this.where = redactRedisUrl(options.url);
  }

  /**
   * Connects both connections and subscribes to `options.channel`.
   *
   * @throws {ConfigError} When Redis cannot be reached within the start timeout (one line naming OAUTH_REDIS_URL).
   */
  static async open(options: RedisConnectionOptions): Promise<RedisConnection> {
    const startBy = Date.now() + (options.startTimeoutMs ?? 5000);
    let started = false;
    const client = createClient({
      url: options.url,
      name: `${options.name}-commands`,
      // A command sent while the connection is down fails at once: the relay answers 503 rather than wait.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 2000,
        reconnectStrategy: (retries: number, cause: Error) => {
          // At start, a Redis that cannot be reached is a setup problem: say so rather than wait forever.
          if (!started && Date.now() > startBy) return cause;
          return Math.min(50 * 2 ** retries, 1000);
        },
      },
      scripts: SCRIPTS,
    }) as unknown as Client;
    const subscriber = client.duplicate({ name: `${options.name}-subscriber` });
    const self = new RedisConnection(client, subscriber, options);
    for (const [which, each] of [["commands", client], ["subscriber", subscriber]] as const) {
      let ready = false;
      each.on("error", (error) => self.#failed(error));
      each.on("ready", () => {
        if (ready) options.onReconnect(which);
        ready = true;
        self.#recovered();
      });
    }
    try {
      await client.connect();
      await subscriber.connect();
      await subscriber.subscribe(options.channel, (message) => options.onMessage(message));
    } catch (error) {
      for (const each of [client, subscriber]) {
        try {
          each.destroy();
        } catch { /* closed already */ }
      }
      throw new ConfigError(
        "OAUTH_REDIS_URL",
        `Cannot connect to Redis at OAUTH_REDIS_URL=${self.where}: ${firstLine(error)}; start Redis or fix the URL`,
      );
    }
    started = true;
    return self;
  }

  /** Whether commands can be sent and answer in time now. */
  get usable(): boolean {
    return !this.#closed && this.#client.isReady && this.#stalled === undefined;
  }

  /** What is wrong, one line; `undefined` when both connections work. */
  get problem(): string | undefined {
    if (this.#closed) return "The relay is stopping";
    if (!this.#client.isReady) return `Redis at ${this.where} is unreachable: ${this.#lastError || "connecting"}`;
    if (this.#stalled !== undefined) return `Redis at ${this.where} is not answering: ${this.#stalled}`;
    if (!this.#subscriber.isReady) return `Redis at ${this.where}: the subscription is reconnecting`;
    return undefined;
  }

  /** One word for `/health`. */
  get state(): "ready" | "unreachable" | "not answering" | "subscribing" | "closed" {
    if (this.#closed) return "closed";
    if (!this.#client.isReady) return "unreachable";
    if (this.#stalled !== undefined) return "not answering";
    return this.#subscriber.isReady ? "ready" : "subscribing";
  }

  /**
   * Runs one of the registry's scripts, rejecting after `timeoutMs`.
   *
   * @throws {RedisTimeoutError} When Redis does not answer in time.
   */
  script(name: ScriptName, key: string, args: string[], timeoutMs: number): Promise<ScriptReply> {
    const calls = this.#client as unknown as ScriptCalls;
    return this.#timed(calls[name](key, args), timeoutMs);
  }

  /**
   * Sends one plain command, rejecting after `timeoutMs`.
   *
   * @throws {RedisTimeoutError} When Redis does not answer in time.
   */
  command(args: string[], timeoutMs: number): Promise<unknown> {
    return this.#timed(this.#client.sendCommand(args), timeoutMs);
  }

  /**
   * Publishes `message` on `channel`.
   *
   * @throws {RedisTimeoutError} When Redis does not answer in time.
   */
  publish(channel: string, message: string, timeoutMs: number): Promise<unknown> {
    return this.#timed(this.#client.publish(channel, message), timeoutMs);
  }

  async #timed<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RedisTimeoutError(timeoutMs)), timeoutMs);
    });
    // The command may still answer after its timeout: nobody waits for it then.
    promise.catch(() => {});
    try {
      const value = await Promise.race([promise, late]);
      if (this.#stalled !== undefined) {
        this.#stalled = undefined;
        this.#recovered();
      }
      return value;
    } catch (error) {
      if (error instanceof RedisTimeoutError && this.#stalled === undefined) {
        this.#stalled = error.message;
        this.#failed(error);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  #failed(error: unknown): void {
    const repeated = firstLine(error) === this.#lastError;
    this.#lastError = firstLine(error);
    if (this.#closed) return;
    if (!this.#down) {
      this.#down = true;
      this.#logger.error(
        `Redis at ${this.where} failed: ${this.#lastError}; callbacks get 503 and new registrations 'unavailable' until it answers again`,
      );
    } else if (!repeated) {
      // Each reconnection attempt of both connections fails alike: say only what changed.
      this.#logger.limited("warn", "Redis connection errors", `Redis at ${this.where}: ${this.#lastError}`);
    }
  }

  #recovered(): void {
    if (!this.#down || !this.#client.isReady || this.#stalled !== undefined) return;
    this.#down = false;
    this.#logger.info(`Redis at ${this.where} answers again`);
  }

  /** Closes both connections; commands still pending are given up after a second. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closing = Promise.all([this.#client.close(), this.#subscriber.close()]).catch(() => {});
    await Promise.race([closing, new Promise((resolve) => timer = setTimeout(resolve, 1000))]);
    clearTimeout(timer);
    for (const each of [this.#client, this.#subscriber]) {
      try {
        each.destroy();
      } catch { /* closed already */ }
    }
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0].trim() || (error instanceof Error ? error.name : "unknown error");
}
