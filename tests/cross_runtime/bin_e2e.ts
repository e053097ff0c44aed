/**
 * The `login` end to end once more, with the CLI under Node: the npm
 * package's command, `oauth-relay`, installed from the packed package and run
 * by `node` (and by `bun`) as a subprocess, against a real relay and a real
 * OpenID provider (`oidc-provider`, PAR, PKCE required), with headless
 * Chromium as the person who opens the link, signs in and consents or cancels.
 * The same checks as `tests/login_e2e_test.ts` makes of `client.ts` on Deno.
 *
 * Run by `run.ts` (`deno test`, after the package is installed), which passes
 * `CROSS_RUNTIME_BIN`: the command as npm links it, `node_modules/.bin/oauth-relay`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { EXIT } from "../../src/cli/io.ts";
import { HAS_CHROMIUM, launchBrowser } from "../support/browser.ts";
import { cancelEndToEnd, loginWorld as setup, signInEndToEnd } from "../support/login_cli.ts";

const BIN = Deno.env.get("CROSS_RUNTIME_BIN");
if (!BIN) throw new Error("CROSS_RUNTIME_BIN is not set: run this file with tests/cross_runtime/run.ts");

/** Whether `command --version` runs. */
function installed(command: string): boolean {
  try {
    return new Deno.Command(command, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

if (!HAS_CHROMIUM) console.warn("Skipping the login tests of the package's command: chromium is not installed");
const HAS_BUN = installed("bun");
if (!HAS_BUN) console.warn("Skipping the login test of the package's command under Bun: bun is not installed");

for (const runtime of ["node", "bun"]) {
  Deno.test({
    name: `oauth-relay login under ${runtime} prints the token response once a person signs in with Chromium`,
    ignore: !HAS_CHROMIUM || (runtime === "bun" && !HAS_BUN),
    async fn() {
      await using world = await setup();
      await using browser = await launchBrowser();
      const { stderr } = await signInEndToEnd(world, browser, "erin", [runtime, BIN]);
      assert.match(stderr, /^oauth-relay: open this link in a browser, on any device, to authorize:\n/);
    },
  });
}

Deno.test({
  name: "oauth-relay login under node: a person who cancels at the provider gets exit 6 and the provider's error",
  ignore: !HAS_CHROMIUM,
  async fn() {
    await using world = await setup();
    await using browser = await launchBrowser();
    await cancelEndToEnd(world, browser, ["node", BIN]);
  },
});

Deno.test("npx oauth-relay runs the installed package's command, as the README says", async () => {
  // node_modules/.bin/oauth-relay → the project is two levels up.
  const project = new URL("../..", `file://${BIN}`).pathname;
  const output = await new Deno.Command("npx", {
    args: ["--no-install", "oauth-relay", "login", "--help"],
    cwd: project,
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, EXIT.CODE, new TextDecoder().decode(output.stderr));
  assert.match(stdout, /^Usage: oauth-relay login \[options\]\n/);
  assert.match(stdout, /--issuer <url>/);
});
