/**
 * A client trusts only the real relay on a Unix socket: one owned by its own
 * user, by root, or by OAUTH_RELAY_UID, and the same file before and after
 * connecting. Changing a file's owner needs root (CI runs as root).
 */

import assert from "node:assert/strict";
import { OAuthConnectionError } from "../src/client/errors.ts";
import { loadSettings } from "../src/client/settings.ts";
import { waitForCode } from "../src/client/wait.ts";
import { body, startTestRelay, tempDir, wait } from "./helpers.ts";

const isRoot = Deno.uid() === 0;
const STRANGER = 4242;

Deno.test({
  name: "a client refuses a socket another user owns, and sends it nothing",
  ignore: !isRoot,
  async fn() {
    await using dir = await tempDir();
    const path = `${dir.path}/squatted.sock`;
    // Another local user got to the path first and answers like a relay.
    const squatter = Deno.listen({ transport: "unix", path });
    await Deno.chown(path, STRANGER, STRANGER);
    let connections = 0;
    const accepting = (async () => {
      for await (const conn of squatter) {
        connections++;
        conn.close();
      }
    })();
    try {
      await assert.rejects(
        waitForCode({ state: "s", timeout: 5, settings: { socketPath: path, useTcp: false } }),
        (error: unknown) => {
          assert.ok(error instanceof OAuthConnectionError);
          assert.equal(
            error.message,
            `Cannot connect to relay at ${path}: the socket is owned by uid ${STRANGER}, not by this user (uid 0) or root; refusing it (set OAUTH_RELAY_UID=${STRANGER} if that account runs the relay)`,
          );
          return true;
        },
      );
    } finally {
      squatter.close();
      await accepting.catch(() => {});
    }
    assert.equal(connections, 0, "the client never connected to the squatter");
  },
});

Deno.test({
  name: "OAUTH_RELAY_UID lets a client trust a relay run by a service account",
  ignore: !isRoot,
  async fn() {
    await using relay = await startTestRelay();
    await Deno.chown(relay.client.socketPath!, STRANGER, STRANGER);
    await assert.rejects(wait(relay, { state: "svc" }).result, OAuthConnectionError);
    const { result, registered } = wait(relay, { state: "svc", settings: { relayUid: STRANGER } });
    await registered;
    await body(await relay.callback({ code: "SERVICE", state: "svc" }));
    assert.equal((await result).code, "SERVICE");
  },
});

Deno.test("a client refuses a path that is not a socket", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/plain-file.sock`;
  await Deno.writeTextFile(path, "not a relay");
  await assert.rejects(
    waitForCode({ state: "s", timeout: 5, settings: { socketPath: path, useTcp: false } }),
    (error: unknown) => {
      assert.ok(error instanceof OAuthConnectionError);
      assert.match(error.message, /plain-file\.sock is not a socket; refusing it$/);
      return true;
    },
  );
});

Deno.test("the default socket is in XDG_RUNTIME_DIR when it is set, else in /tmp; OAUTH_SOCKET_PATH wins", () => {
  assert.equal(loadSettings({}).socketPath, "/tmp/poast-relay-oauth.sock");
  assert.equal(loadSettings({ XDG_RUNTIME_DIR: "/run/user/1000" }).socketPath, "/run/user/1000/oauth-relay.sock");
  assert.equal(
    loadSettings({ XDG_RUNTIME_DIR: "/run/user/1000", OAUTH_SOCKET_PATH: "/srv/relay.sock" }).socketPath,
    "/srv/relay.sock",
  );
  assert.throws(() => loadSettings({ OAUTH_RELAY_UID: "relay" }), /OAUTH_RELAY_UID must be a numeric user id/);
});
