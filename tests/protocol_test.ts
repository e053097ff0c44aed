import assert from "node:assert/strict";
import { decodeClientMessage, decodeRelayMessage, encode, ProtocolError } from "../src/protocol.ts";

const line = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

Deno.test("decodeRelayMessage() refuses relay messages that lack what the client relies on", () => {
  const bad = [
    { v: 1, type: "callback" },
    { v: 1, type: "callback", result: { success: "yes", code: "x", state: null, raw: {} } },
    { v: 1, type: "callback", result: { success: true, code: 1, state: null, raw: {} } },
    { v: 1, type: "callback", result: { success: true, code: "x", state: null, raw: [] } },
    { v: 1, type: "error", code: "timeout" },
    { v: 1, type: "hello" },
  ];
  for (const message of bad) {
    assert.throws(() => decodeRelayMessage(line(message)), ProtocolError, JSON.stringify(message));
  }
  const good = {
    v: 1,
    type: "callback",
    result: { success: true, code: "x", state: "s", raw: { code: "x" } },
  } as const;
  assert.deepEqual(decodeRelayMessage(line(good)), good);
});

Deno.test("a register message round-trips through encode and decodeClientMessage", () => {
  const message = { v: 1, type: "register", state: "s", timeout: 12.5, token: "t".repeat(20) } as const;
  const bytes = encode(message);
  assert.equal(bytes.at(-1), 10);
  assert.deepEqual(decodeClientMessage(bytes.subarray(0, -1)), message);
});

Deno.test("a wrong version is told apart from other protocol errors", () => {
  assert.throws(() => decodeClientMessage(line({ v: 2, type: "register" })), { code: "unsupported_version" });
  assert.throws(() => decodeClientMessage(line({ v: 1, type: "other" })), { code: "protocol" });
});
