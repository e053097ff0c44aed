/**
 * The Redis registry: one registry shared by several relays behind a load
 * balancer. A callback at any relay claims its state in Redis in one script
 * (exactly one claim wins) and reaches the waiter at whichever relay holds
 * it. Pub/sub only wakes that relay: the claimed callback waits in Redis
 * for the resume grace period, and the owner takes it when woken and again
 * after every resubscribe, so a message lost while a subscriber reconnects
 * loses nothing. Keys, scripts and lifetimes: `redis_scripts.ts` and
 * docs/redis.md.
 *
 * @module
 */

import {
  DEFAULT_MAX_WAITERS,
  ERROR_CODES,
  MAX_TIMER_MS,
  newNonce,
  type OAuthCallbackResult,
} from "../../protocol/mod.ts";
import { type Logger, quote } from "../log.ts";
import { RedisConnection } from "./redis_connection.ts";
import type { ScriptName, ScriptReply } from "./redis_scripts.ts";
import {
  type DeliveryOutcome,
  REFUSALS,
  type Registry,
  type RegistryStatus,
  type RemoteTicket,
  type ResumeOutcome,
  type Waiter,
} from "./registry.ts";

/** Options of {@linkcode RedisRegistry.connect}. */
export interface RedisRegistryOptions {
  /** `redis://`, `rediss://` (TLS) or `unix://`, user and password in the URL (`OAUTH_REDIS_URL`). */
  url: string;
  logger: Logger;
  /** Most clients waiting at all relays together (`OAUTH_MAX_WAITERS`). Default 10,000. */
  maxWaiters?: number;
  /** Most clients waiting at this relay (its descriptor budget). Default: no limit of its own. */
  maxLocal?: number;
  /** Most remote registrations one client token holds at all relays together. Default: no limit. */
  maxWaitersPerToken?: number;
  /** Milliseconds a claimed callback, or a remote registration of a dead relay, is kept. Default 30,000. */
  graceMs?: number;
  /** How long a delivered state is remembered, to tell a replay from an unknown state. Default 10 minutes. */
  rememberDeliveredMs?: number;
  /** Milliseconds between heartbeats. Default 1000. */
  heartbeatMs?: number;
  /** A relay whose heartbeat is older than this many milliseconds counts as dead. Default 3000. */
  liveMs?: number;
  /** Milliseconds a Redis command may take on the callback and registration paths. Default 1000. */
  commandTimeoutMs?: number;
  /** Milliseconds a relay that holds a waiter may take to take its callback before the claim is retracted. */
  ackTimeoutMs?: number;
  /** Prefix of every key and channel, so several clusters can share one Redis. Default `oauth-relay:`. */
  prefix?: string;
  /** Milliseconds the first connection may take before the relay gives up starting. Default 5000. */
  startTimeoutMs?: number;
}

/** Default {@linkcode RedisRegistryOptions.prefix}. */
export const DEFAULT_REDIS_PREFIX = "oauth-relay:";
/** Default {@linkcode RedisRegistryOptions.heartbeatMs}. */
export const DEFAULT_HEARTBEAT_MS = 1000;
/** Default {@linkcode RedisRegistryOptions.liveMs}. */
export const DEFAULT_LIVE_MS = 3000;
/** Default {@linkcode RedisRegistryOptions.commandTimeoutMs}. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 1000;
/** Default {@linkcode RedisRegistryOptions.ackTimeoutMs}. */
export const DEFAULT_ACK_TIMEOUT_MS = 2000;
/**
 * Once the owner took a claimed callback, how long the claimer waits for the
 * owner's word before it answers "complete": the owner's write timeout (5 s).
 */
const DELIVERY_WAIT_MS = 6000;
/** A registration without an end of its own (a test's waiter) is kept this long. */
const DEFAULT_TTL_MS = 3600_000;

/** What a take did: handed a callback over, found its client gone, found nothing to do, or could not ask Redis. */
type Taken = "delivered" | "undelivered" | "nothing" | "failed";

interface Entry {
  waiter: Waiter;
  /** This registration's id, random: Redis checks it before it lets anyone release or take it. */
  reg: string;
}

/** 96 random bits: ids of registrations and claims, compared by the scripts. */
function newId(): string {
  return newNonce().slice(0, 16);
}

/** A duration as Redis takes it (PX, PEXPIRE): whole milliseconds, at least one. */
function wholeMs(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

function texts(reply: ScriptReply): string[] {
  return (Array.isArray(reply) ? reply : [reply]).map((item) => item === null ? "" : String(item));
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/**
 * A {@linkcode Registry} in Redis, shared by every relay that names the same
 * Redis (and prefix). Each relay start is a new instance with a fresh id.
 *
 * @example
 * ```ts ignore
 * import { RedisRegistry } from "./redis.ts";
 * import { createLogger } from "../log.ts";
 *
 * const registry = await RedisRegistry.connect({ url: "redis://127.0.0.1:6379", logger: createLogger("info") });
 * console.log((await registry.status()).details);
 * await registry.close();
 * ```
 */
export class RedisRegistry implements Registry {
  /** This relay's instance id, new at each start. */
  readonly id: string = crypto.randomUUID();
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #maxWaiters: number;
  readonly #maxLocal: number;
  readonly #maxPerToken: number;
  readonly #graceMs: number;
  readonly #rememberMs: number;
  readonly #liveMs: number;
  readonly #timeoutMs: number;
  readonly #ackTimeoutMs: number;
  #redis!: RedisConnection;
  /** The registrations this relay holds, by state (`""`: the single slot). */
  readonly #local = new Map<string, Entry>();
  /** Claims of this relay waiting for the owner's word, by claim id. */
  readonly #acks = new Map<string, (delivered: boolean) => void>();
  /** One take at a time per state, so a wake-up and a sweep never both act on one registration. */
  readonly #takes = new Map<string, Promise<void>>();
  /** One resume at a time per state: overlapping ones would put back each other's waiters in `#local`. */
  readonly #resumes = new Map<string, Promise<unknown>>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #beating: Promise<void> | undefined;
  #beats = 0;
  /** Redis may disagree with this relay (an outage, a lost key): re-assert at the next chance. */
  #dirty = false;
  #retiring = false;

  private constructor(options: RedisRegistryOptions) {
    this.#logger = options.logger;
    this.#prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.#maxWaiters = options.maxWaiters ?? DEFAULT_MAX_WAITERS;
    this.#maxLocal = options.maxLocal ?? Infinity;
    this.#maxPerToken = options.maxWaitersPerToken ?? 0;
    // Redis takes whole milliseconds (PX, PEXPIRE): OAUTH_RESUME_GRACE=1.0005 must not fail every claim.
    this.#graceMs = wholeMs(options.graceMs ?? 30_000);
    this.#rememberMs = wholeMs(options.rememberDeliveredMs ?? 10 * 60_000);
    this.#liveMs = wholeMs(options.liveMs ?? DEFAULT_LIVE_MS);
    this.#timeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
  }

  /**
   * Connects to Redis, announces this relay and starts its heartbeat.
   *
   * @param options Where Redis is, and the limits and timings.
   * @returns The registry.
   * @throws {ConfigError} When Redis cannot be reached at start (one line naming `OAUTH_REDIS_URL`).
   */
  static async connect(options: RedisRegistryOptions): Promise<RedisRegistry> {
    const registry = new RedisRegistry(options);
    registry.#redis = await RedisConnection.open({
      url: options.url,
      logger: options.logger,
      channel: registry.#key("ch:", registry.id),
      name: `oauth-relay-${registry.id}`,
      startTimeoutMs: options.startTimeoutMs,
      onMessage: (message) => registry.#message(message),
      onReconnect: (which) => {
        // Messages published while the subscriber was away are gone: the inbox still has them.
        if (which === "subscriber") registry.#sweep().catch(() => registry.#dirty = true);
        else {
          registry.#dirty = true;
          registry.#beat();
        }
      },
    });
    await registry.#beat();
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    registry.#heartbeat = setInterval(() => registry.#beat(), heartbeatMs);
    Deno.unrefTimer(registry.#heartbeat as unknown as number);
    options.logger.info(`Shared registry: Redis at ${registry.#redis.where}, this relay is instance ${registry.id}`);
    return registry;
  }

  #key(kind: string, name = ""): string {
    return this.#prefix + kind + name;
  }

  /** The registration key of a state (`""`: the single slot). */
  #wkey(state: string): string {
    return state === "" ? this.#key("single") : this.#key("w:", state);
  }

  #run(name: ScriptName, key: string, args: Array<string | number>, timeoutMs = this.#timeoutMs) {
    return this.#redis.script(name, key, [this.#prefix, ...args.map(String)], timeoutMs);
  }

  /** Registers `waiter` in Redis, checking the cluster-wide state, replay memory and caps in one script. */
  async register(waiter: Waiter): Promise<void> {
    if (!this.#redis.usable) throw REFUSALS.unavailable();
    const key = waiter.state ?? "";
    const previous = this.#local.get(key);
    if (previous && waiter.state !== null) throw REFUSALS.stateTaken();
    if (this.#local.size - (previous ? 1 : 0) >= this.#maxLocal) throw REFUSALS.full(this.#maxLocal);
    const entry: Entry = { waiter, reg: newId() };
    // Held here before Redis answers, so a re-assertion running meanwhile keeps it.
    this.#local.set(key, entry);
    let reply: string[];
    try {
      reply = texts(
        await this.#run("oauthRegister", this.#wkey(key), [
          this.id,
          key,
          entry.reg,
          waiter.remote ? "r" : "s",
          this.#ttl(waiter.expiresAt),
          waiter.remote?.resumeHash ?? "",
          waiter.remote?.token ?? "",
          this.#maxWaiters,
          this.#maxPerToken,
          this.#liveMs,
          this.#graceMs,
          this.#end(waiter.expiresAt),
        ]),
      );
    } catch (error) {
      this.#restore(key, entry, previous);
      // It may still run once Redis answers: the next re-assertion removes what nobody holds.
      this.#dirty = true;
      this.#logger.debug(`Cannot register state ${quote(waiter.state)} in Redis: ${firstLine(error)}`);
      throw REFUSALS.unavailable();
    }
    if (reply[0] !== "ok") {
      this.#restore(key, entry, previous);
      if (reply[0] === "state_used") throw REFUSALS.stateUsed();
      if (reply[0] === "state_taken") throw REFUSALS.stateTaken();
      if (reply[0] === "too_many_per_token") throw REFUSALS.tokenFull(this.#maxPerToken);
      throw REFUSALS.full(this.#maxWaiters);
    }
    // A single-slot waiter of another relay is woken by the script and ends itself.
    previous?.waiter.end(
      ERROR_CODES.SUPERSEDED,
      "Superseded: a newer client registered without a state (single-slot mode)",
    );
  }

  /** Takes over a remote registration held anywhere in the cluster, when the resume secret matches. */
  async resume(waiter: Waiter & { remote: RemoteTicket }): Promise<ResumeOutcome> {
    if (waiter.state === null) return { kind: "refused" };
    const key = waiter.state;
    const before = this.#resumes.get(key);
    const mine = (async () => {
      if (before) await before;
      return await this.#resume(key, waiter);
    })();
    const settled = mine.catch(() => {});
    this.#resumes.set(key, settled);
    try {
      return await mine;
    } finally {
      if (this.#resumes.get(key) === settled) this.#resumes.delete(key);
    }
  }

  async #resume(key: string, waiter: Waiter & { remote: RemoteTicket }): Promise<ResumeOutcome> {
    if (!this.#redis.usable) throw REFUSALS.unavailable();
    const previous = this.#local.get(key);
    // This relay holds the state for another client (a socket waiter, or another secret): refused before
    // the stranger's waiter takes its place here, where a callback arriving meanwhile would find it.
    if (previous && previous.waiter.remote?.resumeHash !== waiter.remote.resumeHash) return { kind: "refused" };
    const entry: Entry = { waiter, reg: newId() };
    this.#local.set(key, entry);
    let reply: string[];
    try {
      reply = texts(
        await this.#run("oauthResume", this.#wkey(key), [
          this.id,
          key,
          entry.reg,
          waiter.remote.resumeHash,
          this.#liveMs,
          this.#graceMs,
        ]),
      );
    } catch (error) {
      this.#restore(key, entry, previous);
      this.#dirty = true;
      this.#logger.debug(`Cannot resume state ${quote(waiter.state)} in Redis: ${firstLine(error)}`);
      throw REFUSALS.unavailable();
    }
    // The end the client was told when it registered, so `expires_at` stays the same wherever it resumes.
    const told = (left: string, end: string) => Number(end) || Date.now() + Number(left);
    if (reply[0] === "resumed") {
      if (previous && previous.waiter !== waiter) previous.waiter.moved?.();
      return { kind: "resumed", expiresAt: told(reply[1], reply[2]) };
    }
    this.#restore(key, entry, previous);
    if (reply[0] === "kept") {
      return { kind: "kept", expiresAt: told(reply[2], reply[3]), result: JSON.parse(reply[1]) };
    }
    return { kind: reply[0] === "absent" ? "absent" : "refused" };
  }

  /** Removes `waiter`'s registration if it still holds it. */
  async release(waiter: Waiter): Promise<void> {
    const key = waiter.state ?? "";
    const entry = this.#local.get(key);
    if (!entry || entry.waiter !== waiter) return;
    this.#local.delete(key);
    // A stopping relay leaves remote registrations for another relay, where their clients resume.
    if (this.#retiring && waiter.remote) return;
    try {
      // Released without a callback: one taken whose answer was lost never reached the client either.
      await this.#run("oauthRelease", this.#wkey(key), [this.id, key, entry.reg, 0]);
    } catch {
      this.#dirty = true;
    }
  }

  /**
   * Claims the callback's state in one script. A waiter of this relay gets it
   * here; a waiter at another relay is woken to take it, and for a socket
   * waiter this relay waits for its word, so the page says what happened.
   */
  async claim(result: OAuthCallbackResult): Promise<DeliveryOutcome> {
    if (!this.#redis.usable) return "unavailable";
    const key = result.state ?? "";
    const claimId = newId();
    // Listen for the owner's word before claiming: it comes on the subscriber connection and can arrive
    // before this connection has the script's reply.
    const word = Promise.withResolvers<boolean | undefined>();
    this.#acks.set(claimId, word.resolve);
    try {
      return await this.#claim(result, key, claimId, word.promise);
    } finally {
      this.#acks.delete(claimId);
    }
  }

  async #claim(
    result: OAuthCallbackResult,
    key: string,
    claimId: string,
    word: Promise<boolean | undefined>,
  ): Promise<DeliveryOutcome> {
    let reply: string[];
    try {
      reply = texts(
        await this.#run("oauthClaim", this.#wkey(key), [
          this.id,
          key,
          JSON.stringify(result),
          claimId,
          this.#graceMs,
          this.#rememberMs,
          this.#liveMs,
        ]),
      );
    } catch (error) {
      // It may still run once Redis answers, for a waiter of this relay, which nobody wakes: the next
      // re-assertion takes the inbox.
      this.#dirty = true;
      this.#logger.limited(
        "warn",
        "callbacks answered 503 for Redis",
        `Cannot claim state ${quote(result.state)} in Redis: ${firstLine(error)}; answered 503 (reload)`,
      );
      return "unavailable";
    }
    switch (reply[0]) {
      case "none":
        return "no_waiter";
      case "settling":
        this.#logger.limited(
          "info",
          "callbacks answered 503 while the relays re-assert",
          `No registration for state ${quote(result.state)} while the relays re-assert theirs after Redis lost them; ` +
            "answered 503 (reload)",
        );
        return "unavailable";
      case "already":
        return "already_delivered";
      case "kept":
        // Kept in Redis for the grace period: complete whether the stream is open here, elsewhere or not at all.
        if (reply[1] === this.id) await this.#take(key);
        return "delivered";
      case "mine": {
        const taken = await this.#take(key);
        if (taken === "failed") return "unavailable";
        // The client went away: the state stays unused, as at a single relay.
        return taken === "delivered" ? "delivered" : "no_waiter";
      }
      default:
        return await this.#awaitDelivery(key, reply[1], claimId, word);
    }
  }

  /** A claim for a socket waiter of another relay: wait for that relay's word on the delivery. */
  async #awaitDelivery(
    key: string,
    owner: string,
    claimId: string,
    word: Promise<boolean | undefined>,
  ): Promise<DeliveryOutcome> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), this.#ackTimeoutMs));
    try {
      let delivered = await Promise.race([word, late]).finally(() => clearTimeout(timer));
      if (delivered === undefined) {
        let retracted: string;
        try {
          retracted = texts(await this.#run("oauthRetract", this.#wkey(key), [this.id, key, claimId]))[0];
        } catch {
          return "unavailable";
        }
        if (retracted === "retracted") {
          this.#logger.limited(
            "warn",
            "callbacks another relay did not take",
            `Relay ${owner} did not take the callback for state ${quote(key || null)} in time; answered 503 (reload)`,
          );
          return "unavailable";
        }
        // The owner took it and is writing it: its word comes within its write timeout.
        let wait: ReturnType<typeof setTimeout> | undefined;
        const overdue = new Promise<undefined>((resolve) =>
          wait = setTimeout(() => resolve(undefined), DELIVERY_WAIT_MS)
        );
        delivered = await Promise.race([word, overdue]).finally(() => clearTimeout(wait));
      }
      // No word at all: the owner took it and went away while writing; at most once, as at a single relay.
      return delivered === false ? "no_waiter" : "delivered";
    } finally {
      this.#acks.delete(claimId);
    }
  }

  #message(message: string): void {
    if (message.startsWith("w")) {
      this.#take(message.slice(1));
    } else if (message.startsWith("a")) {
      const colon = message.lastIndexOf(":");
      this.#acks.get(message.slice(1, colon))?.(message.slice(colon + 1) === "1");
    }
  }

  /**
   * Asks Redis what happened to this relay's registration of `key`, one take
   * at a time per state, and acts on it: hands a claimed callback to the
   * waiter, or lets go of a registration that moved.
   */
  #take(key: string): Promise<Taken> {
    const next = (this.#takes.get(key) ?? Promise.resolve()).then(() => this.#takeNow(key)).catch((): Taken => {
      this.#dirty = true;
      return "failed";
    });
    const settled = next.then(() => {});
    this.#takes.set(key, settled);
    settled.finally(() => {
      if (this.#takes.get(key) === settled) this.#takes.delete(key);
    });
    return next;
  }

  async #takeNow(key: string): Promise<Taken> {
    const entry = this.#local.get(key);
    const reply = texts(
      await this.#run("oauthTake", this.#wkey(key), [
        this.id,
        key,
        entry?.reg ?? "",
        this.#rememberMs,
        this.#liveMs,
        this.#graceMs,
      ]),
    );
    if (reply[0] === "waiting") return "nothing";
    const current = entry !== undefined && this.#local.get(key) === entry;
    if (reply[0] === "gone") {
      if (current) {
        this.#local.delete(key);
        this.#lost(entry.waiter);
      }
      return "nothing";
    }
    // Taken: it reaches the waiter, or the claimer hears that it did not.
    if (current) this.#local.delete(key);
    const delivered = current && await entry.waiter.deliver(JSON.parse(reply[1]));
    const [kind, claimer, claimId] = [reply[2], reply[3], reply[4]];
    // A socket waiter's callback leaves Redis once written; a client that went away leaves the state unused, before
    // its claimer hears so (it may register the state again at once).
    if (kind === "s" && entry) {
      await this.#run("oauthRelease", this.#wkey(key), [this.id, key, entry.reg, delivered ? 1 : 0]).catch(() => {});
    }
    if (claimer) {
      await this.#redis.publish(this.#key("ch:", claimer), `a${claimId}:${delivered ? 1 : 0}`, this.#timeoutMs)
        .catch(() => {});
    }
    return delivered ? "delivered" : "undelivered";
  }

  /** A registration of this relay that Redis gave to someone else. */
  #lost(waiter: Waiter): void {
    if (waiter.remote) {
      // Its client resumed at another relay: the registration lives on there.
      waiter.moved?.();
    } else if (waiter.state === null) {
      waiter.end(ERROR_CODES.SUPERSEDED, "Superseded: a newer client registered without a state (single-slot mode)");
    } else {
      waiter.end(
        ERROR_CODES.STATE_TAKEN,
        "Another client took this state while this relay could not reach Redis; start again with a fresh state",
      );
    }
  }

  /** Takes whatever the inbox holds: callbacks and moves whose wake-up was lost. */
  async #sweep(): Promise<void> {
    const states = await this.#redis.command(["SMEMBERS", this.#key("in:", this.id)], this.#timeoutMs);
    await Promise.all((states as string[]).map((state) => this.#take(state)));
  }

  #restore(key: string, entry: Entry, previous: Entry | undefined): void {
    if (this.#local.get(key) !== entry) return;
    if (previous) this.#local.set(key, previous);
    else this.#local.delete(key);
  }

  #end(expiresAt: number | undefined): number {
    return expiresAt ?? Date.now() + DEFAULT_TTL_MS;
  }

  #ttl(expiresAt: number | undefined): number {
    // A client's `"timeout": 10.0005` ends at a fraction of a millisecond; PEXPIRE takes whole ones.
    return wholeMs(Math.min(MAX_TIMER_MS, (expiresAt ?? Date.now() + DEFAULT_TTL_MS) - Date.now()));
  }

  #beat(): Promise<void> {
    // A stopping relay has marked itself dead: a reconnect meanwhile must not make it alive again.
    if (this.#retiring) return Promise.resolve();
    this.#beating ??= (async () => {
      try {
        const had = await this.#run("oauthHeartbeat", this.#key("i:", this.id), [
          this.id,
          this.#liveMs,
          this.#graceMs,
          "beat",
          this.#beats > 0 ? "known" : "new",
        ]);
        // Redis lost this relay's keys (restarted empty, flushed, or cut off for longer than the grace period),
        // or this relay was late enough for the others to count it dead and drop its socket registrations.
        if (had !== 1 && this.#beats > 0) this.#dirty = true;
        this.#beats++;
        if (this.#dirty) await this.#resync();
      } catch {
        this.#dirty = true;
      } finally {
        this.#beating = undefined;
      }
    })();
    return this.#beating;
  }

  /** Re-asserts every registration this relay holds, drops what it no longer holds, and takes its inbox. */
  async #resync(): Promise<void> {
    if (this.#retiring) return;
    this.#dirty = false;
    const args: Array<string | number> = [this.id, this.#liveMs, this.#graceMs];
    for (const [key, { waiter, reg }] of this.#local) {
      args.push(
        key,
        reg,
        waiter.remote ? "r" : "s",
        this.#ttl(waiter.expiresAt),
        waiter.remote?.resumeHash ?? "",
        waiter.remote?.token ?? "",
        this.#end(waiter.expiresAt),
      );
    }
    let lost: string[];
    try {
      lost = texts(await this.#run("oauthResync", this.#key("i:", this.id), args, Math.max(this.#timeoutMs, 5000)));
    } catch (error) {
      this.#dirty = true;
      throw error;
    }
    for (let i = 0; i + 1 < lost.length; i += 2) {
      const entry = this.#local.get(lost[i]);
      if (entry?.reg !== lost[i + 1]) continue;
      this.#local.delete(lost[i]);
      this.#lost(entry.waiter);
    }
    this.#logger.info(
      `Re-asserted the ${this.#local.size} registration(s) this relay holds in Redis` +
        (lost.length ? `; ${lost.length / 2} were taken by other clients meanwhile` : ""),
    );
    await this.#sweep();
  }

  /** Clients waiting at every relay sharing this Redis. */
  async count(): Promise<number> {
    return Number(await this.#run("oauthCount", this.#key("instances"), [this.#liveMs]));
  }

  /** The waiters this relay holds. */
  local(): Waiter[] {
    return [...this.#local.values()].map((entry) => entry.waiter);
  }

  /** Whether Redis answers, the cluster-wide count, and this relay's own. */
  async status(): Promise<RegistryStatus> {
    const details = () => ({
      instance: { id: this.id, waiting: this.#local.size },
      redis: this.#redis.state,
    });
    let problem = this.#redis.problem;
    if (problem === undefined) {
      try {
        return { ok: true, waiting: await this.count(), details: details() };
      } catch (error) {
        problem = this.#redis.problem ?? firstLine(error);
      }
    }
    return { ok: false, waiting: null, reason: problem, details: details() };
  }

  /**
   * Marks this relay as gone at once: its socket registrations stop blocking
   * their states, its remote ones wait the grace period for their clients to
   * resume at another relay.
   */
  async retire(): Promise<void> {
    if (this.#retiring) return;
    this.#retiring = true;
    clearInterval(this.#heartbeat);
    await this.#beating;
    await this.#run("oauthHeartbeat", this.#key("i:", this.id), [this.id, this.#liveMs, this.#graceMs, "retire"])
      .catch(() => {});
  }

  /** Closes the connections. */
  async close(): Promise<void> {
    this.#retiring = true;
    clearInterval(this.#heartbeat);
    for (const resolve of this.#acks.values()) resolve(false);
    await this.#beating;
    await this.#redis.close();
  }
}
