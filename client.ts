/**
 * The relay client: {@linkcode waitForCode} for programs, and a CLI.
 *
 * ```sh
 * CODE=$(deno run --allow-net --allow-read --allow-write --allow-env client.ts --state "$STATE")
 * ```
 *
 * @module
 */

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
  const { main } = await import("./src/cli/main.ts");
  const encoder = new TextEncoder();
  const write = (stream: typeof Deno.stderr, text: string) => {
    // writeSync may write part of the bytes (a pipe that is nearly full): write them all.
    const bytes = encoder.encode(text);
    for (let offset = 0; offset < bytes.length;) offset += stream.writeSync(bytes.subarray(offset));
  };
  Deno.exitCode = await main(Deno.args, {
    stdout: (text) => write(Deno.stdout, text + "\n"),
    stderr: (text) => write(Deno.stderr, text + "\n"),
    terminal: Deno.stderr.isTerminal()
      ? {
        write: (text) => write(Deno.stderr, text),
        size: () => {
          try {
            return Deno.consoleSize();
          } catch {
            return { columns: 80, rows: 24 };
          }
        },
      }
      : undefined,
  });
}
