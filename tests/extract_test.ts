import assert from "node:assert/strict";
import { addParam, AmbiguousCallbackError, type CallbackParams, extractCallback } from "../src/relay/http/extract.ts";
import { quote } from "../src/relay/log.ts";

const KEYS = ["code", "authorization_code"];

function query(search: string): CallbackParams {
  const params: CallbackParams = {};
  for (const [key, value] of new URLSearchParams(search)) addParam(params, key, value);
  return params;
}

Deno.test("extractCallback() finds the code and state", async (t) => {
  const cases: Array<
    [name: string, params: CallbackParams, keys: string[], code: string | null, state: string | null]
  > = [
    ["a plain query", query("code=VALUE&state=s1"), KEYS, "VALUE", "s1"],
    ["an upper-case key", query("CODE=VALUE&STATE=s1"), KEYS, "VALUE", "s1"],
    ["a mixed-case key", query("Code=VALUE&sTaTe=s1"), KEYS, "VALUE", "s1"],
    ["the alternative key", query("authorization_code=ALT&state=s1"), KEYS, "ALT", "s1"],
    ["a repeated query key (first wins)", query("code=first&code=second"), KEYS, "first", null],
    ["a JSON array", { code: ["one", "two"], state: "s" }, KEYS, "one", "s"],
    ["a JSON array starting with a non-string", { code: [7, "text"] }, KEYS, "text", null],
    ["a custom key", query("access_code=CUSTOM"), ["code", "auth_code", "access_code"], "CUSTOM", null],
    ["the first configured key before later ones", query("authorization_code=B&code=A"), KEYS, "A", null],
    ["an empty code then an alternative", query("code=&authorization_code=ALT"), KEYS, "ALT", null],
    ["an empty code then a repeated real one", query("code=&code=REAL&state=S"), KEYS, "REAL", "S"],
    ["an empty string first in a JSON array", { code: ["", "REAL"], state: "S" }, KEYS, "REAL", "S"],
    ["no state at all (single slot)", query("code=X"), KEYS, "X", null],
    ["the same state twice", query("code=X&state=s&state=s"), KEYS, "X", "s"],
  ];
  for (const [name, params, keys, code, state] of cases) {
    await t.step(name, () => {
      const result = extractCallback(params, keys);
      assert.equal(result.code, code);
      assert.equal(result.state, state);
      assert.equal(result.success, code !== null);
    });
  }
});

Deno.test("extractCallback() falls back to the raw payload when no code is found", async (t) => {
  const cases: Array<[name: string, params: CallbackParams]> = [
    ["an error callback", query("error=access_denied&error_description=User+said+no&state=s")],
    ["an empty code", query("code=&state=s")],
    ["a non-string code", { code: 12345, state: "s" }],
    ["a key that is not configured", query("auth_code=X&state=s")],
  ];
  for (const [name, params] of cases) {
    await t.step(name, () => {
      const result = extractCallback(params, KEYS);
      assert.equal(result.success, false);
      assert.equal(result.code, null);
      assert.equal(result.state, "s");
      assert.deepEqual(result.raw, params);
    });
  }
});

Deno.test("extractCallback() keeps every parameter in raw, including iss (RFC 9207)", () => {
  const params = query("code=C&state=s&iss=https%3A%2F%2Fissuer.example&other=value&other=again");
  const result = extractCallback(params, KEYS);
  assert.deepEqual(result.raw, {
    code: "C",
    state: "s",
    iss: "https://issuer.example",
    other: ["value", "again"],
  });
});

Deno.test("extractCallback() refuses two different state values (RFC 6749 §3.1)", () => {
  assert.throws(() => extractCallback(query("code=C&state=a&state=b"), KEYS), AmbiguousCallbackError);
  assert.throws(() => extractCallback(query("code=C&state=a&STATE=b"), KEYS), AmbiguousCallbackError);
});

Deno.test("quote() lets only printable ASCII through, so a state cannot forge or hide log lines", () => {
  assert.equal(quote("my-flow"), "'my-flow'");
  assert.equal(quote("a\nINFO - forged"), "'a\\u000aINFO - forged'");
  assert.equal(quote("a\u2028b\u0085c\u009bd\u202ee\u007ff"), "'a\\u2028b\\u0085c\\u009bd\\u202ee\\u007ff'");
  assert.equal(quote("it's"), "'it\\'s'");
  assert.equal(quote("x".repeat(70)), `'${"x".repeat(64)}...'`);
  assert.equal(quote(null), "(none)");
});
