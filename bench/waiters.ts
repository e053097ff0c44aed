/**
 * A process of waiting clients: real `waitForCode` calls, many per process,
 * grouped so the parent can register, await and release them together.
 *
 * Usage: `waiters.ts '<client settings as JSON>' [--bare]`; with `--bare`, each client is a plain
 * connection to `bare_relay.ts` instead of a `waitForCode` call. Commands (JSON lines on stdin):
 * - `register {prefix, from, to, idle}`: starts one `waitForCode` per state of the group and replies
 *   `registered` once the relay acknowledged every one (`onRegistered`, never a sleep). A group that
 *   is not `idle` then replies `resolved` when every wait has resolved, with the resolve times; each
 *   code is checked against the one the load generator sends for its state.
 * - `release {group, atOnce?}`: aborts an idle group's waits, `atOnce` at a time (default all), each
 *   few once the previous have ended, and replies `released` once all ended. A remote wait sends a
 *   `DELETE` on a new connection when aborted, and the relay's HTTP connections are capped.
 *
 * @module
 */

import { waitForCode } from "../src/client/wait.ts";
import type { Settings } from "../src/client/settings.ts";
import { codeOf, type Message, now, reply, serveCommands, stateOf } from "./common.ts";

const settings: Partial<Settings> = JSON.parse(Deno.args[0]);
const wait = Deno.args[1] === "--bare" ? bareWait : waitForCode;
/** Registrations in flight at once: more would overflow the listener's accept backlog. */
const REGISTERING_AT_ONCE = 128;
/** Seconds each wait lasts at most; the benchmark ends them long before. */
const TIMEOUT = 600;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The least a client can do, for the delivery floor: connect, send the state,
 * read `ok`, then read the code. Same contract as `waitForCode` as far as the
 * benchmark needs.
 */
async function bareWait(
  options: { state: string; signal: AbortSignal; onRegistered: () => void },
): Promise<{ success: boolean; code: string; state: string }> {
  if (settings.relayUrl) return await bareRemoteWait(options);
  const conn = settings.useTcp
    ? await Deno.connect({ hostname: "127.0.0.1", port: settings.tcpFallbackPort! })
    : await Deno.connect({ transport: "unix", path: settings.socketPath! });
  const abort = () => conn.close();
  options.signal.addEventListener("abort", abort, { once: true });
  try {
    await conn.write(encoder.encode(`${options.state}\n`));
    const buffer = new Uint8Array(256);
    let text = "";
    let registered = false;
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("The bare relay closed the connection");
      text += decoder.decode(buffer.subarray(0, n));
      if (!registered && text.startsWith("ok\n")) {
        registered = true;
        text = text.slice(3);
        options.onRegistered();
      }
      const end = text.indexOf("\n");
      if (registered && end !== -1) return { success: true, code: text.slice(0, end), state: options.state };
    }
  } finally {
    options.signal.removeEventListener("abort", abort);
    try {
      conn.close();
    } catch { /* closed on abort */ }
  }
}

/**
 * The least a remote client can do: `POST /v1/wait` with `fetch`, then read
 * the event stream until the `callback` event and take the code from it.
 */
async function bareRemoteWait(
  options: { state: string; signal: AbortSignal; onRegistered: () => void },
): Promise<{ success: boolean; code: string; state: string }> {
  const response = await fetch(`${settings.relayUrl}/v1/wait`, {
    method: "POST",
    body: JSON.stringify({ state: options.state }),
    signal: options.signal,
  });
  const reader = response.body!.getReader();
  let text = "";
  let registered = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error("The bare relay ended the stream");
      text += decoder.decode(value, { stream: true });
      if (!registered && text.includes("\n\n")) {
        registered = true;
        text = text.slice(text.indexOf("\n\n") + 2);
        options.onRegistered();
      }
      const start = text.indexOf('"code":"');
      const end = start === -1 ? -1 : text.indexOf('"', start + 8);
      if (registered && end !== -1) return { success: true, code: text.slice(start + 8, end), state: options.state };
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

const idleGroups = new Map<number, { controllers: AbortController[]; results: Promise<unknown>[] }>();

function register(command: Message): void {
  const prefix = command.prefix as string;
  const from = command.from as number;
  const count = (command.to as number) - from;
  const idle = command.idle === true;
  /** One controller per waiter, so that `release` can end them a few at a time. */
  const controllers: AbortController[] = [];
  const aborted = () => controllers.some((controller) => controller.signal.aborted);

  const times: number[] = [];
  const errors: string[] = [];
  let wrong = 0;
  let started = 0;
  let acknowledged = 0;
  let settledCount = 0;
  let registrationFailures = 0;
  let last = 0;
  const results: Promise<unknown>[] = [];

  const onAcknowledged = () => {
    if (++acknowledged === count) {
      reply({ id: command.id, ev: "registered", failed: registrationFailures, errors });
    } else launch();
  };
  const onSettled = () => {
    if (++settledCount === count && !idle) {
      reply({
        id: command.id,
        ev: "resolved",
        count: times.length,
        last,
        times: count <= 1000 ? times : [],
        wrong,
        errors,
      });
    }
  };

  const start = (i: number) => {
    const state = stateOf(prefix, from + i);
    let registered = false;
    const controller = new AbortController();
    controllers.push(controller);
    const result = wait({
      state,
      timeout: TIMEOUT,
      signal: controller.signal,
      settings,
      onRegistered: () => {
        registered = true;
        onAcknowledged();
      },
    }).then((result) => {
      const at = now();
      times.push(at);
      if (at > last) last = at;
      if (result.code !== codeOf(state) || result.state !== state || !result.success) wrong++;
      onSettled();
    }, (error) => {
      if (!aborted() && errors.length < 5) errors.push(String(error?.message ?? error));
      if (!registered) {
        registrationFailures++;
        onAcknowledged();
      }
      onSettled();
    });
    results.push(result);
  };

  function launch() {
    while (started < count && started - acknowledged < REGISTERING_AT_ONCE) start(started++);
  }
  if (count === 0) {
    reply({ id: command.id, ev: "registered", failed: 0 });
    return;
  }
  launch();
  if (idle) {
    idleGroups.set(command.id, { controllers, results });
  }
}

async function release(command: Message): Promise<void> {
  const group = idleGroups.get(command.group as number);
  if (!group) throw new Error(`No idle group ${command.group}`);
  idleGroups.delete(command.group as number);
  const atOnce = (command.atOnce as number | undefined) ?? Infinity;
  for (let from = 0; from < group.controllers.length; from += atOnce) {
    const to = Math.min(from + atOnce, group.controllers.length);
    for (let i = from; i < to; i++) group.controllers[i].abort();
    await Promise.all(group.results.slice(from, to));
  }
  reply({ id: command.id, ev: "released" });
}

await serveCommands((command) => {
  if (command.op === "register") return register(command);
  if (command.op === "release") return release(command);
  throw new Error(`Unknown command ${command.op}`);
});
for (const group of idleGroups.values()) group.controllers.forEach((controller) => controller.abort());
