import assert from "node:assert/strict";
import { createLogger, LOG_BURST } from "../src/relay/log.ts";
import { body, startTestRelay } from "./helpers.ts";

Deno.test("limited lines: the first few of a kind are written, then one summary with the count", async () => {
  const lines: string[] = [];
  const { promise: summarized, resolve } = Promise.withResolvers<string>();
  const logger = createLogger("info", (line) => {
    lines.push(line);
    if (line.includes("more")) resolve(line);
  }, { burst: 3, intervalMs: 20 });
  for (let i = 0; i < 10; i++) logger.limited("warn", "wrong tokens", `wrong token ${i}`);
  logger.limited("info", "other things", "another kind is counted on its own");
  assert.equal(lines.filter((line) => line.includes("WARN - wrong token")).length, 3);
  assert.ok(lines.some((line) => line.endsWith("INFO - another kind is counted on its own")));
  // The summary timer does not keep a process alive; this test must stay alive to see it.
  const alive = setInterval(() => {}, 1000);
  try {
    assert.match(await summarized, /WARN - 7 more wrong tokens in the last 0\.02 s \(not logged one by one\)$/);
  } finally {
    clearInterval(alive);
  }
});

Deno.test("a flood of callbacks nobody waits for writes only a few log lines", async () => {
  await using relay = await startTestRelay();
  for (let i = 0; i < 50; i++) await body(await relay.callback({ code: "X", state: `nobody-${i}` }));
  const unmatched = relay.logs.filter((line) => line.includes("No client waiting for state"));
  assert.equal(unmatched.length, LOG_BURST);
});
