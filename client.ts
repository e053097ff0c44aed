/**
 * The relay client: {@linkcode waitForCode} for programs, and a CLI.
 *
 * ```sh
 * CODE=$(deno run --allow-net --allow-read --allow-write --allow-env client.ts --state "$STATE")
 * ```
 *
 * @module
 */

import { onDeno } from "./src/client/env.ts";

export { type RegisteredInfo, resolveSettings, waitForCode, type WaitForCodeOptions } from "./src/client/wait.ts";
export {
  ERROR_CODES,
  type ErrorCode,
  OAuthConnectionError,
  OAuthRelayError,
  OAuthTimeoutError,
} from "./src/client/errors.ts";
export { ConfigError, DEFAULT_SETTINGS, type EnvSource, loadSettings, type Settings } from "./src/client/settings.ts";
export type {
  CallbackMessage,
  ChallengeMessage,
  CoordinatorAddress,
  ErrorMessage,
  OAuthCallbackResult,
  RegisteredMessage,
  RelayMessage,
} from "./src/protocol/mod.ts";
export {
  ConnectError,
  type Registration,
  type RelayChannel,
  type Transport,
} from "./src/client/transport/transport.ts";
export { type ByteStream, socketTransport } from "./src/client/transport/socket.ts";
export { httpsTransport, type HttpsTransportOptions } from "./src/client/transport/https.ts";

if (import.meta.main) {
  // Run as a program (Deno; Bun and Node 24+ set import.meta.main too). A promise, not a top-level await:
  // a module with one cannot be require()d (Node 22+), and the npm package ships this module as its core.
  void Promise.all([
    import("./src/cli/main.ts"),
    onDeno ? import("./src/cli/io_deno.ts") : import("./src/cli/io_node.ts"),
  ]).then(([{ runCli }, { cliProcess }]) => runCli(cliProcess()));
}
