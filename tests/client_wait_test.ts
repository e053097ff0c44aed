/**
 * `waitForCode()`'s deadline, reconnect and checks, over a scripted
 * transport (a test double of the transport seam; the relay itself is never
 * mocked — the same behaviour against a real relay is in relay_test.ts and
 * restart_test.ts).
 */

import assert from "node:assert/strict";
import { OAuthConnectionError, OAuthRelayError, OAuthTimeoutError } from "../src/client/errors.ts";
import {
  ConnectError,
  type Registration,
  type RelayChannel,
  type Transport,
} from "../src/client/transport/transport.ts";
import { waitForCode } from "../src/client/wait.ts";
import type { RelayMessage } from "../src/protocol/mod.ts";

/** One scripted connection: messages in order, then `null` (closed), or `"hang"` to stay open. */
type Script = Array<RelayMessage | null | "hang"> | "unreachable";

class ScriptedTransport implements Transport {
  readonly registrations: Registration[] = [];
  closed = 0;
  constructor(readonly scripts: Script[]) {}
  open(_address: unknown, registration: Registration): Promise<RelayChannel> {
    const script = this.scripts.shift() ?? "unreachable";
    if (script === "unreachable") return Promise.reject(new ConnectError("connection refused", { absent: true }));
    this.registrations.push(registration);
    const hang = Promise.withResolvers<null>();
    return Promise.resolve({
      read: () => {
        const next = script.length ? script.shift()! : null;
        return next === "hang" ? hang.promise : Promise.resolve(next);
      },
      close: () => {
        this.closed++;
        hang.resolve(null);
      },
    });
  }
}

const registered = (state: string | null): RelayMessage => ({ v: 2, type: "registered", state });
const callback = (state: string | null, code = "c0de"): RelayMessage => ({
  v: 2,
  type: "callback",
  result: { success: true, code, state, raw: { code, state } },
});
const error = (code: string): RelayMessage => ({ v: 2, type: "error", code, message: `the relay says ${code}` });

Deno.test("waitForCode() rejects with OAuthConnectionError at once when the relay is unreachable at the start", async () => {
  const transport = new ScriptedTransport(["unreachable"]);
  await assert.rejects(waitForCode({ state: "s", timeout: 60, transport }), (e: unknown) => {
    assert.ok(e instanceof OAuthConnectionError);
    assert.match(e.message, /^Cannot connect to relay at .*: connection refused; is the relay running\?$/);
    return true;
  });
});

Deno.test("waitForCode() reconnects after a drop, registers again with the time left, and announces itself once", async () => {
  const transport = new ScriptedTransport([
    [registered("s"), null],
    "unreachable",
    [registered("s"), error("shutdown")],
    [registered("s"), callback("s")],
  ]);
  let announced = 0;
  const result = await waitForCode({ state: "s", timeout: 60, transport, onRegistered: () => announced++ });
  assert.equal(result.code, "c0de");
  assert.equal(announced, 1);
  assert.equal(transport.registrations.length, 3);
  assert.ok(transport.registrations.every((r) => r.state === "s" && r.timeout > 0 && r.timeout <= 60));
});

Deno.test("waitForCode() stops at a refusal from the relay and does not reconnect", async () => {
  const transport = new ScriptedTransport([[error("state_taken")], [registered("s"), callback("s")]]);
  await assert.rejects(waitForCode({ state: "s", transport }), (e: unknown) => {
    assert.ok(e instanceof OAuthRelayError);
    assert.equal(e.code, "state_taken");
    return true;
  });
  assert.equal(transport.registrations.length, 1);
});

Deno.test("waitForCode() keeps trying while the relay is unavailable after registering, not before", async () => {
  const after = new ScriptedTransport([
    [registered("s"), null],
    [error("unavailable")],
    [error("unavailable")],
    [registered("s"), callback("s")],
  ]);
  assert.equal((await waitForCode({ state: "s", timeout: 60, transport: after })).code, "c0de");
  assert.equal(after.registrations.length, 4);

  const before = new ScriptedTransport([[error("unavailable")], [registered("s"), callback("s")]]);
  await assert.rejects(waitForCode({ state: "s", timeout: 60, transport: before }), (e: unknown) => {
    assert.ok(e instanceof OAuthRelayError);
    assert.equal(e.code, "unavailable");
    return true;
  });
  assert.equal(before.registrations.length, 1);
});

Deno.test("waitForCode() refuses a callback for another state", async () => {
  const transport = new ScriptedTransport([[registered("mine"), callback("theirs")]]);
  await assert.rejects(waitForCode({ state: "mine", transport }), (e: unknown) => {
    assert.ok(e instanceof OAuthRelayError);
    assert.equal(e.code, "protocol");
    return true;
  });
});

Deno.test("waitForCode() rejects with OAuthTimeoutError when it is registered and nothing comes", async () => {
  const transport = new ScriptedTransport([[registered("s"), "hang"]]);
  await assert.rejects(waitForCode({ state: "s", timeout: 0.05, transport }), OAuthTimeoutError);
  assert.ok(transport.closed > 0, "the channel was closed");
});

Deno.test("waitForCode() rejects with OAuthConnectionError when the relay went away and never came back", async () => {
  const transport = new ScriptedTransport([[registered("s"), null]]);
  await assert.rejects(waitForCode({ state: "s", timeout: 0.3, transport }), OAuthConnectionError);
});

Deno.test("waitForCode() rejects with the signal's reason when cancelled, and closes the channel", async () => {
  const transport = new ScriptedTransport([[registered("s"), "hang"]]);
  const controller = new AbortController();
  const reason = new Error("cancelled by the test");
  const waiting = waitForCode({
    state: "s",
    transport,
    signal: controller.signal,
    onRegistered: () => controller.abort(reason),
  });
  await assert.rejects(waiting, (e: unknown) => e === reason);
  assert.ok(transport.closed > 0, "the channel was closed");
});

Deno.test("waitForCode() retries a relay that drops it before registering, busy or silent", async () => {
  const transport = new ScriptedTransport([[error("busy")], [null], [error("busy")], [registered("s"), callback("s")]]);
  let announced = 0;
  assert.equal((await waitForCode({ state: "s", transport, onRegistered: () => announced++ })).code, "c0de");
  assert.equal(announced, 1);
  assert.equal(transport.registrations.length, 4);
});

Deno.test("waitForCode() treats a relay that keeps closing before registering as a setup problem", async () => {
  const transport = new ScriptedTransport(Array.from({ length: 8 }, () => [null]));
  await assert.rejects(waitForCode({ state: "s", transport }), (e: unknown) => {
    assert.ok(e instanceof OAuthConnectionError);
    assert.match(e.message, /closed the connection before registering/);
    return true;
  });
});
