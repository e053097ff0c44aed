/**
 * The benchmark's child processes as the parent sees them: spawn, send a
 * command, await its reply, read `/proc`, stop. Every wait is bounded, and a
 * child that dies fails the waits on it at once, with the end of its stderr.
 *
 * @module
 */

import { type Message, textLines } from "./common.ts";

const encoder = new TextEncoder();
/** Longest wait for one reply. Registering 20,000 clients takes seconds; a minute means something broke. */
const REPLY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 10_000;
/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time of a process, in user space and in the kernel. */
export interface CpuTime {
  user: number;
  system: number;
}

/**
 * Reads `/proc/<path>`. Deno lets only `--allow-all` read most of `/proc`, so `cat` reads it
 * (`--allow-run` suffices); this runs between measurements, never during one.
 */
export async function readProc(path: string): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("cat", { args: [`/proc/${path}`] }).output();
  if (!success) throw new Error(`Cannot read /proc/${path}: ${new TextDecoder().decode(stderr).trim()}`);
  return new TextDecoder().decode(stdout);
}

/** A child process: a `deno run` of one of the benchmark's scripts, or the relay. */
export class Child {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #nextId = 1;
  readonly #waiting = new Map<string, (message: Message) => void>();
  readonly #arrived = new Map<string, Message>();
  readonly #failures = new Set<(error: Error) => void>();
  #failure: Error | undefined;
  #stopping = false;
  #stderr = "";

  /**
   * @param name For messages, e.g. `relay (unix)`.
   * @param args Arguments of the program.
   * @param env Variables added to this process's environment.
   * @param command The program: Deno (this one) unless named, e.g. `node`.
   */
  constructor(name: string, args: string[], env: Record<string, string> = {}, command: string = Deno.execPath()) {
    this.name = name;
    this.process = new Deno.Command(command, {
      args,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.process.stdin.getWriter();
    this.#readStdout();
    this.#readStderr();
    this.process.status.then((status) => {
      if (!this.#stopping) this.#fail(new Error(`${name} exited with code ${status.code}${this.#tail()}`));
    });
  }

  /** The process id, for `/proc`. */
  get pid(): number {
    return this.process.pid;
  }

  /** Sends a command; returns its id for {@linkcode Child.reply}. */
  send(command: Record<string, unknown>): number {
    const id = this.#nextId++;
    this.#writer!.write(encoder.encode(JSON.stringify({ ...command, id }) + "\n")).catch(() => {});
    return id;
  }

  /** Resolves with the reply `ev` to command `id` (an `error` reply rejects). */
  reply(id: number, ev: string, timeoutMs: number = REPLY_TIMEOUT_MS): Promise<Message> {
    const key = `${id}:${ev}`;
    const early = this.#arrived.get(key) ?? this.#arrived.get(`${id}:error`);
    if (early) {
      this.#arrived.delete(key);
      return early.ev === "error" ? Promise.reject(this.#errorOf(early)) : Promise.resolve(early);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name} sent no "${ev}" within ${timeoutMs / 1000} s${this.#tail()}`));
      }, timeoutMs);
      const fail = (error: Error) => {
        done();
        reject(error);
      };
      const done = () => {
        clearTimeout(timer);
        this.#waiting.delete(key);
        this.#waiting.delete(`${id}:error`);
        this.#failures.delete(fail);
      };
      this.#failures.add(fail);
      this.#waiting.set(key, (message) => {
        done();
        resolve(message);
      });
      this.#waiting.set(`${id}:error`, (message) => fail(this.#errorOf(message)));
    });
  }

  /** Sends a command and awaits its reply `ev`. */
  request(command: Record<string, unknown>, ev = "done"): Promise<Message> {
    return this.reply(this.send(command), ev);
  }

  /** Resident set size, in bytes. */
  async rss(): Promise<number> {
    const status = await readProc(`${this.pid}/status`);
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (!kib) throw new Error(`No VmRSS for ${this.name}`);
    return Number(kib[1]) * 1024;
  }

  /** CPU time used so far in user space and in the kernel, in milliseconds (10 ms resolution). */
  async cpuMs(): Promise<CpuTime> {
    const stat = await readProc(`${this.pid}/stat`);
    // The command name (field 2) may hold spaces; the fields after its ")" are fixed (utime is field 14).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) * 1000 / TICKS_PER_SECOND, system: Number(fields[12]) * 1000 / TICKS_PER_SECOND };
  }

  /**
   * Stops the child: `signal` (e.g. SIGTERM for the relay), else closes its
   * stdin; kills it if it has not exited in time. Resolves with its exit code.
   */
  async stop(signal?: Deno.Signal): Promise<number> {
    this.#stopping = true;
    try {
      if (signal) this.process.kill(signal);
      else await this.#writer?.close();
    } catch { /* already gone */ }
    this.#writer = undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), STOP_TIMEOUT_MS));
    const outcome = await Promise.race([this.process.status, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      try {
        this.process.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      return (await this.process.status).code;
    }
    return outcome.code;
  }

  /** Kills the child at once (after a failure). */
  kill(): void {
    this.#stopping = true;
    try {
      this.process.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  /** The last lines the child wrote to stderr. */
  get stderr(): string {
    return this.#stderr;
  }

  #tail(): string {
    const text = this.#stderr.trim();
    return text ? `; its stderr ends with:\n${text.split("\n").slice(-15).join("\n")}` : "";
  }

  #errorOf(message: Message): Error {
    return new Error(`${this.name} failed: ${message.message}`);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const fail of [...this.#failures]) fail(error);
  }

  async #readStdout(): Promise<void> {
    for await (const line of textLines(this.process.stdout)) {
      if (!line.startsWith("{")) continue;
      const message = JSON.parse(line) as Message;
      const key = `${message.id}:${message.ev}`;
      const waiter = this.#waiting.get(key);
      if (waiter) waiter(message);
      else this.#arrived.set(key, message);
    }
  }

  async #readStderr(): Promise<void> {
    for await (const chunk of this.process.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr = (this.#stderr + chunk).slice(-8192);
    }
  }
}
