import assert from "node:assert/strict";
import { decodeClientMessage, decodeRelayMessage, encode, LineSplitter, ProtocolError } from "../src/protocol/mod.ts";

const line = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

Deno.test("decodeRelayMessage() refuses relay messages that lack what the client relies on", () => {
  const bad = [
    { v: 2, type: "callback" },
    { v: 2, type: "callback", result: { success: "yes", code: "x", state: null, raw: {} } },
    { v: 2, type: "callback", result: { success: true, code: 1, state: null, raw: {} } },
    { v: 2, type: "callback", result: { success: true, code: "x", state: null, raw: [] } },
    { v: 2, type: "error", code: "timeout" },
    { v: 2, type: "hello" },
  ];
  for (const message of bad) {
    assert.throws(() => decodeRelayMessage(line(message)), ProtocolError, JSON.stringify(message));
  }
  const good = {
    v: 2,
    type: "callback",
    result: { success: true, code: "x", state: "s", raw: { code: "x" } },
  } as const;
  assert.deepEqual(decodeRelayMessage(line(good)), good);
});

Deno.test("a register message round-trips through encode and decodeClientMessage", () => {
  const message = { v: 2, type: "register", state: "s", timeout: 12.5, proof: "p".repeat(43) } as const;
  const bytes = encode(message);
  assert.equal(bytes.at(-1), 10);
  assert.deepEqual(decodeClientMessage(bytes.subarray(0, -1)), message);
});

Deno.test("a hello message round-trips, and a nonce that is not 32 bytes of base64url is refused", () => {
  const hello = { v: 2, type: "hello", nonce: "n".repeat(43) } as const;
  assert.deepEqual(decodeClientMessage(encode(hello).subarray(0, -1)), hello);
  assert.throws(() => decodeClientMessage(line({ v: 2, type: "hello", nonce: "short" })), { code: "protocol" });
});

Deno.test("a wrong version is told apart from other protocol errors", () => {
  // A version 1 client (before the token handshake) is told so, not left hanging.
  assert.throws(() => decodeClientMessage(line({ v: 1, type: "register" })), { code: "unsupported_version" });
  assert.throws(() => decodeClientMessage(line({ v: 2, type: "other" })), { code: "protocol" });
});

Deno.test("LineSplitter holds an unfinished line in one buffer, however it is dribbled", () => {
  const splitters = Array.from({ length: 100 }, () => new LineSplitter(16 * 1024));
  const byte = new Uint8Array([120]);
  const before = Deno.memoryUsage().heapUsed;
  // One byte at a time: a buffer (or a copy) per push would hold about 100 bytes each, 100 MB in all.
  for (let i = 0; i < 10_000; i++) for (const splitter of splitters) splitter.push(byte);
  const grown = Deno.memoryUsage().heapUsed - before;
  assert.ok(grown < 20 * 1024 * 1024, `grew ${(grown / 2 ** 20).toFixed(1)} MiB for 100 × 10,000 bytes`);
  assert.equal(splitters[0].pending, 10_000);
  assert.deepEqual(splitters[0].push(new Uint8Array([10])).map((line) => line.length), [10_000]);
});
