/**
 * Where a delivery's time goes, stage by stage: one real relay, one waiter
 * process and the Node sender (`loadgen_node.mjs`), one callback at a time,
 * with timestamps taken around the relay and the client from the outside
 * (`trace/relay.ts`, `trace/waiter.ts`), never inside their code. All on one
 * clock (`performance.timeOrigin + performance.now()` in every process).
 *
 * Usage: `deno task bench:trace [--mode unix|http] [--client deno|node] [--count N]`
 * (`--client node` needs `deno task build:npm` first). Prints the median of
 * every stage over the samples after the first 10 %.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { textLines } from "../tests/support/lines.ts";
import { CLIENT_TOKEN, traceState } from "./trace/common.ts";
import { percentile } from "../tests/support/stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mode: { type: "string", default: "unix" },
    client: { type: "string", default: "deno" },
    count: { type: "string", default: "2000" },
  },
});
const mode = values.mode!;
const count = Number(values.count);
if (mode !== "unix" && mode !== "http") throw new Error(`--mode is unix or http, not ${mode}`);
const here = (path: string) => new URL(path, import.meta.url).pathname;

/** A child speaking JSON lines. */
function child(command: string, args: string[]) {
  const process = new Deno.Command(command, { args, stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
  const lines = textLines(process.stdout)[Symbol.asyncIterator]();
  const writer = process.stdin.getWriter();
  const encoder = new TextEncoder();
  return {
    process,
    next: async () => (await lines.next()).value as string,
    send: (message: unknown) => writer.write(encoder.encode(JSON.stringify(message) + "\n")),
    close: () => writer.close(),
  };
}

const relay = child(Deno.execPath(), ["run", "-A", here("./trace/relay.ts"), mode]);
const { port, socket } = JSON.parse(await relay.next());
const sender = child("node", [here("./loadgen_node.mjs")]);
await sender.send({ id: 1, op: "connect", port, connections: 1 });
await sender.next();

const settings = mode === "unix"
  ? { socketPath: socket, useTcp: false }
  : { relayUrl: `http://127.0.0.1:${port}`, clientToken: CLIENT_TOKEN };
const waiter = values.client === "node"
  ? child("node", [here("./trace/waiter_node.mjs"), JSON.stringify(settings), String(count)])
  : child(Deno.execPath(), ["run", "-A", here("./trace/waiter.ts"), JSON.stringify(settings), String(count)]);

const sent: number[] = [];
const answered: number[] = [];
for (let i = 0; i < count; i++) {
  await waiter.next(); // "registered i"
  await sender.send({
    id: i + 2,
    op: "one",
    path: `/oauth/callback?code=${"c".repeat(64)}&state=${traceState(i)}`,
    expectStatus: 200,
  });
  const reply = JSON.parse(await sender.next());
  if (reply.bad) throw new Error(`The callback was answered ${reply.status}`);
  sent.push(reply.sentAt);
  answered.push(reply.doneAt);
}
const client = JSON.parse(await waiter.next());
await relay.close();
const server = JSON.parse(await relay.next());
await sender.close();
await Promise.all([relay.process.status, waiter.process.status, sender.process.status]);

const skip = Math.floor(count / 10);
function stage(name: string, from: number[], to: number[]) {
  const spans = to.slice(skip).map((at, i) => (at - from.slice(skip)[i]) * 1000).sort((a, b) => a - b);
  const cell = (p: number) => `${percentile(spans, p).toFixed(1).padStart(7)} µs`;
  console.log(`| ${name.padEnd(48)} | ${cell(0.5)} | ${cell(0.9)} |`);
}
console.log(`Trace: ${mode}, ${values.client} client, ${count - skip} samples (medians)\n`);
console.log(`| ${"stage".padEnd(48)} |     p50    |     p90    |\n|${"-".repeat(50)}|-----------:|-----------:|`);
stage("callback sent → relay handler entered", sent, server.entry);
stage("handler entered → write to the waiter starts", server.entry, server.write);
if (mode === "unix") stage("write starts → the relay's write op resolves", server.write, server.written);
stage("write starts → the waiter's read returns", server.write, client.read);
stage("read returns → waitForCode() resolved", client.read, client.resolved);
stage("callback sent → waitForCode() resolved (total)", sent, client.resolved);
stage("handler entered → response ready", server.entry, server.answered);
stage("callback sent → its response received", sent, answered);
