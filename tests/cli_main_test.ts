/**
 * The CLI in-process: `main(args, io)` with a captured `io` and an injected
 * environment, for the table of arguments and exit codes, against real relays.
 *
 * @module
 */

import assert from "node:assert/strict";
import { main } from "../src/cli/main.ts";
import { EXIT } from "../src/cli/io.ts";
import { body, startTestRelay, tempDir, wait } from "./helpers.ts";

/** One `main` call: its exit code, what it wrote, and when it is waiting for the callback. */
interface Run {
  exit: Promise<number>;
  stdout: string[];
  stderr: string[];
  /** Resolves on the "waiting for the callback" line; rejects if `main` returns first. */
  waiting: Promise<void>;
}

/** Runs `main(args)` with `env` as its whole environment, so the test runner's `OAUTH_*` never leak in. */
function run(args: string[], env: Record<string, string> = {}): Run {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const { promise: waiting, resolve, reject } = Promise.withResolvers<void>();
  const exit = main(args, {
    stdout: (text) => stdout.push(text),
    stderr: (text) => {
      stderr.push(text);
      if (text.includes("waiting for the callback")) resolve();
    },
    env,
  });
  exit.then((code) => reject(new Error(`main returned ${code} before waiting: ${stderr.join("\n")}`)), reject);
  waiting.catch(() => {});
  return { exit, stdout, stderr, waiting };
}

Deno.test("--help prints the default command's usage and the list of commands on stdout and exits 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const cli = run([flag]);
    assert.equal(await cli.exit, EXIT.CODE);
    assert.deepEqual(cli.stderr, []);
    assert.equal(cli.stdout.length, 1);
    const [help] = cli.stdout;
    assert.match(help, /^Usage: .*client\.ts \[command\] \[options\]\n/);
    assert.match(help, /--state <state>/);
    assert.match(help, /Exit codes/);
    assert.match(
      help,
      /\nCommands \(the first argument; without one, wait\):\n {2}wait {5}Wait for one OAuth callback.*\n {2}login {4}Sign in/,
    );
  }
});

Deno.test("wait --help prints the usage of wait alone", async () => {
  const cli = run(["wait", "--help"]);
  assert.equal(await cli.exit, EXIT.CODE);
  assert.match(cli.stdout[0], /^Usage: .*client\.ts wait \[options\]\n/);
  assert.match(cli.stdout[0], /--state <state>/);
  assert.doesNotMatch(cli.stdout[0], /Commands/);
});

Deno.test("--help after other options still prints the help", async () => {
  const cli = run(["--state", "s", "--help"]);
  assert.equal(await cli.exit, EXIT.CODE);
  assert.match(cli.stdout[0], /Commands/);
});

Deno.test("bad usage exits 2 with one line on stderr and nothing on stdout", async (t) => {
  const cases: [string[], RegExp, Record<string, string>?][] = [
    [["--bogus"], /Unknown option '--bogus'/],
    [["wait", "--bogus"], /Unknown option '--bogus'/],
    [["--state", ""], /--state must not be empty/],
    [["--state="], /--state must not be empty/],
    [["--timeout=-5"], /--timeout must be a positive number of seconds, at most 2147483, got "-5"/],
    [["--timeout", "-5"], /ambiguous.*--timeout=-XYZ/],
    [["--timeout", "abc"], /--timeout must be a positive number of seconds, at most 2147483, got "abc"/],
    [["--timeout", "0"], /--timeout must be a positive number of seconds, at most 2147483, got "0"/],
    [["--timeout", "99999999"], /--timeout must be a positive number of seconds, at most 2147483, got "99999999"/],
    [["--port", "99999"], /--port must be a port number from 0 to 65535, got "99999"/],
    [["--port", "80a"], /--port must be a port number from 0 to 65535, got "80a"/],
    [["--socket", ""], /--socket must be an absolute path starting with "\/", got ""/],
    [["--socket", "rel.sock"], /--socket must be an absolute path starting with "\/", got "rel.sock"/],
    [["extra"], /unknown command "extra" \(commands: wait, login\)/],
    [["logout", "--state", "s"], /unknown command "logout" \(commands: wait, login\)/],
    [["line\nbreak"], /unknown command "line\\nbreak"/],
    [["wait", "extra"], /Unexpected argument 'extra'/],
    [["--state", "s", "extra"], /Unexpected argument 'extra'/],
    [["--state", "s"], /OAUTH_SOCKET_PATH must be an absolute path/, { OAUTH_SOCKET_PATH: "relay.sock" }],
  ];
  for (const [args, message, env] of cases) {
    await t.step(JSON.stringify(args), async () => {
      const cli = run(args, env);
      assert.equal(await cli.exit, EXIT.USAGE);
      assert.deepEqual(cli.stdout, []);
      assert.equal(cli.stderr.length, 1);
      assert.doesNotMatch(cli.stderr[0], /\n/);
      assert.match(cli.stderr[0], /^oauth-relay: .*; see --help$/);
      assert.match(cli.stderr[0], message);
    });
  }
});

Deno.test("a code arrives: exit 0 with only the code on stdout", async () => {
  await using relay = await startTestRelay();
  const cli = run(["--state", "in-process", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  await body(await relay.callback({ code: "CODE_1", state: "in-process" }));
  assert.equal(await cli.exit, EXIT.CODE);
  assert.deepEqual(cli.stdout, ["CODE_1"]);
  assert.deepEqual(cli.stderr, ["oauth-relay: waiting for the callback"]);
});

Deno.test("the wait subcommand is the same as no subcommand", async () => {
  await using relay = await startTestRelay();
  const cli = run(["wait", "--state", "sub", "--socket", relay.client.socketPath!]);
  await relay.logged(/Client registered for state: 'sub'/);
  await body(await relay.callback({ code: "SUB", state: "sub" }));
  assert.equal(await cli.exit, EXIT.CODE);
  assert.deepEqual(cli.stdout, ["SUB"]);
});

Deno.test("without a state the CLI refuses to wait unless --single-slot says so", async () => {
  const refused = run(["--socket", "/nonexistent/relay.sock"]);
  assert.equal(await refused.exit, EXIT.USAGE);
  assert.deepEqual(refused.stderr, [
    "oauth-relay: no state: pass --state (or OAUTH_STATE) with the authorization's state, or --single-slot to accept any stateless callback; see --help",
  ]);
  const both = run(["--state", "s", "--single-slot"]);
  assert.equal(await both.exit, EXIT.USAGE);
  assert.match(both.stderr[0], /--state and --single-slot exclude each other/);
});

Deno.test("with --single-slot the CLI waits in single-slot mode", async () => {
  await using relay = await startTestRelay();
  const cli = run(["--single-slot", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  assert.deepEqual(cli.stderr, ["oauth-relay: waiting for the callback (single-slot mode)"]);
  await body(await relay.callback({ code: "SLOT" }));
  assert.equal(await cli.exit, EXIT.CODE);
  assert.deepEqual(cli.stdout, ["SLOT"]);
});

Deno.test("the state and the settings come from the environment given in io.env", async () => {
  await using relay = await startTestRelay();
  const cli = run([], { OAUTH_STATE: "from-env", OAUTH_SOCKET_PATH: relay.client.socketPath! });
  await relay.logged(/Client registered for state: 'from-env'/);
  await body(await relay.callback({ code: "ENV", state: "from-env" }));
  assert.equal(await cli.exit, EXIT.CODE);
  assert.deepEqual(cli.stdout, ["ENV"]);
});

Deno.test("--json over TCP prints the whole result", async () => {
  await using relay = await startTestRelay({ mode: "tcp" });
  const cli = run(["--state", "j", "--port", String(relay.client.tcpFallbackPort), "--json"]);
  await cli.waiting;
  await body(await relay.callback({ code: "J", state: "j", iss: "https://issuer.example" }));
  assert.equal(await cli.exit, EXIT.CODE);
  assert.equal(cli.stdout.length, 1);
  assert.deepEqual(JSON.parse(cli.stdout[0]), {
    success: true,
    code: "J",
    state: "j",
    raw: { code: "J", state: "j", iss: "https://issuer.example" },
  });
});

Deno.test("a callback without a code exits 1 and prints the payload", async () => {
  await using relay = await startTestRelay();
  const cli = run(["--state", "no", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  await body(await relay.callback({ error: "access_denied", state: "no" }));
  assert.equal(await cli.exit, EXIT.NO_CODE);
  assert.equal(cli.stdout.length, 1);
  assert.deepEqual(JSON.parse(cli.stdout[0]), { error: "access_denied", state: "no" });
  assert.deepEqual(cli.stderr, [
    "oauth-relay: waiting for the callback",
    "oauth-relay: the callback carried no code: access_denied",
  ]);
});

Deno.test("a code with terminal control characters exits 1 and is not written to stdout", async () => {
  await using relay = await startTestRelay();
  const cli = run(["--state", "esc", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  await body(await relay.callback("code=%1B%5B31mRED&state=esc"));
  assert.equal(await cli.exit, EXIT.NO_CODE);
  assert.deepEqual(cli.stdout, []);
  assert.match(cli.stderr.at(-1)!, /outside printable ASCII \(RFC 6749 VSCHAR\); use --json/);
});

Deno.test("a timeout too short to reach the relay is a timeout, not a relay that went away", async () => {
  await using relay = await startTestRelay();
  const cli = run(["--state", "tiny", "--timeout", "1e-9", "--socket", relay.client.socketPath!]);
  assert.equal(await cli.exit, EXIT.TIMEOUT);
  assert.match(cli.stderr.at(-1)!, /No callback for this state within 1e-9 seconds/);
  assert.doesNotMatch(cli.stderr.join("\n"), /went away/);
});

Deno.test("--help lists the environment variables that the usage errors refer to", async () => {
  const cli = run(["--help"]);
  assert.equal(await cli.exit, EXIT.CODE);
  for (
    const variable of [
      "OAUTH_STATE",
      "OAUTH_SOCKET_PATH",
      "OAUTH_RELAY_UID",
      "OAUTH_COORDINATOR_TOKEN",
      "OAUTH_RELAY_URL",
    ]
  ) {
    assert.match(cli.stdout[0], new RegExp(variable));
  }
});

Deno.test("no callback within --timeout exits 3", async () => {
  await using relay = await startTestRelay();
  const cli = run(["--state", "t", "--timeout", "0.05", "--socket", relay.client.socketPath!]);
  assert.equal(await cli.exit, EXIT.TIMEOUT);
  assert.deepEqual(cli.stdout, []);
  assert.match(cli.stderr.at(-1)!, /^oauth-relay: No callback for this state within 0.05 seconds/);
});

Deno.test("a socket path where no relay listens exits 4 with one line", async () => {
  await using tmp = await tempDir();
  const cli = run(["--state", "x", "--socket", `${tmp.path}/absent.sock`]);
  assert.equal(await cli.exit, EXIT.UNREACHABLE);
  assert.deepEqual(cli.stdout, []);
  assert.deepEqual(cli.stderr, [
    `oauth-relay: Cannot connect to relay at ${tmp.path}/absent.sock: no such socket; is the relay running?`,
  ]);
});

Deno.test("a state another client already waits for exits 5", async () => {
  await using relay = await startTestRelay();
  const stop = new AbortController();
  const first = wait(relay, { state: "taken", signal: stop.signal });
  await first.registered;
  const cli = run(["--state", "taken", "--socket", relay.client.socketPath!]);
  assert.equal(await cli.exit, EXIT.REFUSED);
  assert.deepEqual(cli.stdout, []);
  assert.match(cli.stderr.at(-1)!, /Another client is already waiting for this state/);
  stop.abort(new Error("test over"));
  await assert.rejects(first.result, /test over/);
});

Deno.test("--json and the no-code payload escape C1 controls and bidi overrides, and stay valid JSON", async () => {
  await using relay = await startTestRelay();
  for (const json of [true, false]) {
    const state = `bidi-${json}`;
    const cli = run(["--state", state, "--socket", relay.client.socketPath!, ...(json ? ["--json"] : [])]);
    await cli.waiting;
    // U+009B is a one-byte CSI (a terminal command); U+202E reverses the text that follows.
    const evil = "x\u009b31m\u202eevil";
    const params = new URLSearchParams({ state, error_description: evil, ...(json ? { code: "C" } : {}) });
    await body(await relay.callback(params.toString()));
    await cli.exit;
    const [line] = cli.stdout;
    assert.doesNotMatch(line, /[\u0080-\u009f\u202a-\u202e]/, "nothing raw reaches the terminal");
    assert.match(line, /\\u009b31m\\u202eevil/);
    const printed = JSON.parse(line);
    assert.equal(json ? printed.raw.error_description : printed.error_description, evil);
  }
});
