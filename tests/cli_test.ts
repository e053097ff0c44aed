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

Deno.test("the CLI with --json prints the whole result", async () => {
  await using relay = await startTestRelay({ mode: "tcp" });
  await using cli = runCli(["--state", "j", "--port", String(relay.client.tcpFallbackPort), "--json"]);
  await cli.waiting;
  await body(await relay.callback({ code: "J", state: "j", iss: "https://issuer.example" }));
  const { code, stdout } = await cli.output;
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), {
    success: true,
    code: "J",
    state: "j",
    raw: { code: "J", state: "j", iss: "https://issuer.example" },
  });
});

Deno.test("the CLI reads its settings from OAUTH_* variables", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--state", "env"], { OAUTH_SOCKET_PATH: relay.client.socketPath! });
  await cli.waiting;
  await body(await relay.callback({ code: "FROM_ENV", state: "env" }));
  assert.deepEqual((await cli.output).stdout, "FROM_ENV\n");
});

Deno.test("the CLI exits 1 and prints the payload when the callback carries no code", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--state", "no", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  await body(await relay.callback({ error: "access_denied", state: "no" }));
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, 1);
  assert.deepEqual(JSON.parse(stdout), { error: "access_denied", state: "no" });
  assert.equal(
    stderr.trim(),
    "oauth-relay: waiting for the callback\noauth-relay: the callback carried no code: access_denied",
  );
});

Deno.test("the CLI exits 2 with one line on bad usage", async (t) => {
  for (
    const [args, message] of [
      [["--bogus"], /Unknown option '--bogus'/],
      [["--timeout=-5"], /--timeout must be a positive number of seconds, got "-5"/],
      [["--timeout", "-5"], /ambiguous.*--timeout=-XYZ/],
      [["--timeout", "abc"], /--timeout must be a positive number/],
      [["--port", "99999"], /--port must be a port number/],
      [["extra"], /Unexpected argument 'extra'/],
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
});

Deno.test("the CLI exits 3 on timeout", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--state", "t", "--timeout", "0.3", "--socket", relay.client.socketPath!]);
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, 3);
  assert.equal(stdout, "");
  assert.match(stderr, /No callback for this state within 0.3 seconds/);
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

Deno.test("the CLI exits 5 when the relay refuses the registration", async () => {
  await using relay = await startTestRelay();
  await using first = runCli(["--state", "taken", "--socket", relay.client.socketPath!]);
  await first.waiting;
  await using second = runCli(["--state", "taken", "--socket", relay.client.socketPath!]);
  const { code, stderr } = await second.output;
  assert.equal(code, 5);
  assert.match(stderr, /Another client is already waiting for this state/);
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

Deno.test("the CLI does not write a code with terminal control characters to stdout", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--state", "esc", "--socket", relay.client.socketPath!]);
  await cli.waiting;
  await body(await relay.callback("code=%1B%5B31mRED&state=esc"));
  const { code, stdout, stderr } = await cli.output;
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(stderr, /outside printable ASCII \(RFC 6749 VSCHAR\); use --json/);
});

Deno.test("the CLI takes the state from OAUTH_STATE, out of sight of other users' ps", async () => {
  await using relay = await startTestRelay();
  await using cli = runCli(["--socket", relay.client.socketPath!], { OAUTH_STATE: "hidden-state" });
  await cli.waiting;
  await relay.logged(/Client registered for state: 'hidden-state'/);
  await body(await relay.callback({ code: "SECRET", state: "hidden-state" }));
  assert.equal((await cli.output).stdout, "SECRET\n");
});
