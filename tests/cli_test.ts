import assert from "node:assert/strict";
import { body, runCli, startTestRelay, tempDir } from "./helpers.ts";

Deno.test("the CLI prints only the code on stdout and exits 0", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--state", "cli-state", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  await body(await relay.callback({ code: "CLI_CODE", state: "cli-state" }));
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, 0);
  assert.equal(stdout, "CLI_CODE\n");
  assert.match(stderr, /waiting for the callback/);
});

Deno.test("the CLI process takes the wait subcommand too: client.ts wait --state S", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["wait", "--state", "sub", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  await body(await relay.callback({ code: "SUB_CODE", state: "sub" }));
  const { code, stdout } = await cli.output;
  assert.equal(code, 0);
  assert.equal(stdout, "SUB_CODE\n");
});

Deno.test("the CLI reads its settings from OAUTH_* variables", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--state", "env"], { OAUTH_SOCKET_PATH: relay.client.socketPath! });
  await cli.waiting;
  await body(await relay.callback({ code: "FROM_ENV", state: "env" }));
  assert.deepEqual((await cli.output).stdout, "FROM_ENV\n");
});

Deno.test("the CLI process exits 2 with one line on stderr on bad usage", async (t) => {
  // The whole table of arguments is in cli_main_test.ts, in-process; these check the real process.
  for (
    const [args, message] of [
      [["--bogus"], /Unknown option '--bogus'/],
      [["extra"], /unknown command "extra"/],
    ] as const
  ) {
    await t.step(args.join(" "), async () => {
      await using cli = runCli([...args]);
      const { code, stdout, stderr } = await cli.output;
      assert.equal(code, 2);
      assert.equal(stdout, "");
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
      assert.match(stderr, message);
    });
  }
});

Deno.test("the CLI prints its help with --help and exits 0", async () => {
  await using cli = runCli(["--help"]);
  const { code, stdout } = await cli.output;
  assert.equal(code, 0);
  assert.match(stdout, /--state <state>/);
  assert.match(stdout, /Exit codes/);
  assert.match(stdout, /Commands .*:\n {2}wait /);
});

Deno.test("the CLI exits 4 with one clear line when the relay is not reachable", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  await using cli = runCli(["--state", "x", "--socket", `${dir}/absent.sock`]);
  const { code, stderr } = await cli.output;
  assert.equal(code, 4);
  assert.equal(
    stderr,
    `oauth-relay: Cannot connect to relay at ${dir}/absent.sock: no such socket; is the relay running?\n`,
  );
});

Deno.test("the CLI works without --allow-env, on defaults and flags", async () => {
  await using relay = await startTestRelay();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "--allow-net",
      "--allow-read=/tmp",
      "--allow-write=/tmp",
      new URL("../client.ts", import.meta.url).pathname,
      "--state",
      "noenv",
      "--socket",
      relay.client.socketPath!,
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  await relay.logged(/Client registered for state: 'noenv'/);
  await body(await relay.callback({ code: "NOENV", state: "noenv" }));
  const output = await child.output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.equal(new TextDecoder().decode(output.stdout), "NOENV\n");
});

Deno.test("the CLI takes the state from OAUTH_STATE, out of sight of other users' ps", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--socket", relay.client.socketPath!], { OAUTH_STATE: "hidden-state" });
  await cli.waiting;
  await relay.logged(/Client registered for state: 'hidden-state'/);
  await body(await relay.callback({ code: "SECRET", state: "hidden-state" }));
  assert.equal((await cli.output).stdout, "SECRET\n");
});

/** Runs client.ts with exactly `permissions` and returns its exit code and stderr. */
async function clientWith(permissions: string[], args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", ...permissions, new URL("../client.ts", import.meta.url).pathname, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}

Deno.test("a client without the permission it needs is told which one, not that the relay is not running", async () => {
  await using relay = await startTestRelay();
  const { code, stderr } = await clientWith(["--allow-net", "--allow-env", "--allow-sys=uid"], [
    "--state",
    "perm",
    "--socket",
    relay.client.socketPath!,
  ]);
  assert.equal(code, 4);
  assert.match(stderr, /permission not granted: Requires read access to/);
  assert.doesNotMatch(stderr, /is the relay running/);
});

Deno.test("a client without --allow-env that cannot reach the relay says the OAUTH_* variables were not read", async () => {
  await using tmp = await tempDir();
  const { code, stderr } = await clientWith(
    ["--allow-net", "--allow-read=/tmp", "--allow-write=/tmp", "--allow-sys=uid"],
    ["--state", "noenv"],
    { OAUTH_SOCKET_PATH: `${tmp.path}/relay.sock` },
  );
  assert.equal(code, 4);
  assert.match(stderr, /OAUTH_\* variables were not read: run with --allow-env to use them/);
});
