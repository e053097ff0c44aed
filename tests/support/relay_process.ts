/**
 * The parent's side of a relay child (./relay_child.ts): starts it, asks it
 * for its stats, and stops it. A crash of the relay is seen as `crashed`
 * instead of ending the measurement.
 *
 * @module
 */

import type { CoordinatorAddress, Settings } from "../../src/client/settings.ts";
import { textLines } from "./lines.ts";
import type { Target } from "./load.ts";
import type { ChildOptions, ChildPeek, ChildReady, ChildStats } from "./relay_child.ts";

export type { ChildOptions, ChildPeek, ChildReady, ChildStats };

const CHILD = new URL("./relay_child.ts", import.meta.url).pathname;

/** A relay child as the parent sees it: a {@linkcode Target} plus stats and stop. */
export class RelayProcess implements Target, AsyncDisposable {
  url = "";
  callbackPath = "";
  client: Partial<Settings> = {};
  coordinator!: CoordinatorAddress;
  /** The file limit the relay read and the caps it cut from it. */
  caps!: ChildReady["caps"];
  /** Set when the child ended before `stop()`: the relay crashed. */
  crashed: string | null = null;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: Promise<string>;
  readonly #exit: Promise<Deno.CommandStatus>;
  #stopping = false;
  #dir = "";
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#lines = textLines(child.stdout);
    this.#stderr = (async () => {
      let text = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text = (text + chunk).slice(-4000);
      return text;
    })();
    this.#exit = child.status.then(async (status) => {
      if (!this.#stopping) this.crashed = `exit code ${status.code}: ${(await this.#stderr).trim().slice(-1500)}`;
      return status;
    });
  }

  /** Starts a relay child and waits until it listens. */
  static async start(options: ChildOptions): Promise<RelayProcess> {
    const args = [
      "run",
      "--allow-env",
      "--allow-net",
      "--allow-read",
      "--allow-write=/tmp",
      // As `deno task serve` grants it: the relay reads its file limit with `sh -c "ulimit -n"`.
      "--allow-run=sh",
      "--v8-flags=--expose-gc",
      CHILD,
      JSON.stringify(options),
    ];
    // bash's exec keeps the pid, so killing the child kills the relay.
    const [program, argv] = options.fileLimit === undefined
      ? [Deno.execPath(), args]
      : ["bash", ["-c", `ulimit -n ${options.fileLimit} && exec "$0" "$@"`, Deno.execPath(), ...args]];
    const child = new Deno.Command(program, {
      args: argv,
      env: options.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const relay = new RelayProcess(child);
    const ready: ChildReady = await relay.#read();
    relay.url = ready.url;
    relay.caps = ready.caps;
    relay.callbackPath = ready.callbackPath;
    relay.#dir = ready.dir;
    relay.coordinator = ready.coordinator;
    relay.client = ready.coordinator.transport === "tcp"
      ? { useTcp: true, tcpFallbackPort: ready.coordinator.port, tcpHost: ready.coordinator.hostname }
      : { useTcp: false, socketPath: ready.coordinator.path };
    return relay;
  }

  async #read() {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error(`Relay child ended: ${this.crashed ?? (await this.#stderr)}`);
    return JSON.parse(value);
  }

  /** Sends `command` and reads its one-line answer; commands are serialised. */
  #ask(command: string): Promise<Record<string, unknown>> {
    const answer = this.#queue.then(async () => {
      await this.#stdin.write(new TextEncoder().encode(command + "\n"));
      return await this.#read();
    });
    this.#queue = answer.catch(() => {});
    return answer;
  }

  /** The relay's process id (bash execs it, so it is the same process under a file limit). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves when the child has ended, for whatever reason. */
  get exited(): Promise<Deno.CommandStatus> {
    return this.#exit;
  }

  /** The relay's waiters, heap and ERROR lines; rejects when the child is gone. */
  async stats(): Promise<ChildStats> {
    return await this.#ask("stats") as unknown as ChildStats;
  }

  /** The relay's waiters, HTTP counters and memory hand-backs, without a garbage collection. */
  async peek(): Promise<ChildPeek> {
    return await this.#ask("peek") as unknown as ChildPeek;
  }

  async waiting(): Promise<number> {
    return (await this.stats()).waiting;
  }

  async errors(): Promise<string[]> {
    const { errors, errorCount } = await this.stats();
    // Keep the count exact even though the child sends only the first few lines.
    return Array.from({ length: errorCount }, (_, i) => errors[i] ?? errors.at(-1) ?? "");
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (!this.crashed) await this.#ask("stop").catch(() => {});
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill();
      } catch { /* ended */ }
    }, 10_000);
    await this.#exit;
    clearTimeout(timer);
    // A relay that crashed left its temp directory behind.
    if (this.#dir) await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
