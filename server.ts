/**
 * Runs the relay: `deno task serve`. Reads `OAUTH_*`, `HOST` and `PORT` from
 * the environment (and `.env`), and stops cleanly on SIGINT or SIGTERM.
 *
 * @module
 */

import { ConfigError, loadSettings } from "./src/client/settings.ts";
import { loadServerConfig } from "./src/relay/config.ts";
import { ListenError } from "./src/relay/coordinator/listen.ts";
import { createLogger } from "./src/relay/log.ts";
import { startRelay } from "./src/relay/relay.ts";

function fail(message: string): never {
  console.error(`oauth-relay: ${message}`);
  Deno.exit(1);
}

/** Reads a PEM file named by `variable`; a failure stops the relay with one line naming the variable. */
function readPem(variable: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(
      variable,
      `${variable}=${path} cannot be read: ${error instanceof Error ? error.message.split("\n")[0] : error}`,
    );
  }
}

function describe(error: unknown): string {
  if (error instanceof ConfigError || error instanceof ListenError) return error.message;
  if (error instanceof Deno.errors.AddrInUse) {
    return "Cannot listen for HTTP: the address is in use; stop the other server or set PORT";
  }
  if (error instanceof Deno.errors.NotCapable) return `Missing permission: ${error.message.split("\n")[0]}`;
  return `Cannot start: ${error instanceof Error ? error.message.split("\n")[0] : error}`;
}

try {
  const settings = loadSettings(Deno.env, Deno.build.os);
  const config = loadServerConfig(Deno.env);
  const logger = createLogger(config.logLevel);
  const starting = startRelay({
    settings,
    hostname: config.hostname,
    port: config.port,
    logger,
    socketMode: config.socketMode,
    maxWaiters: config.maxWaiters,
    maxTimeout: config.maxTimeout,
    singleSlot: config.singleSlot,
    clientTokens: config.clientTokens,
    maxWaitersPerToken: config.maxWaitersPerToken,
    maxHttpConnections: config.maxHttpConnections,
    sseHeartbeatMs: config.sseHeartbeat * 1000,
    resumeGraceMs: config.resumeGrace * 1000,
    redis: config.redisUrl === undefined ? undefined : { url: config.redisUrl },
    tls: config.tlsCertFile && config.tlsKeyFile
      ? {
        cert: readPem("OAUTH_TLS_CERT_FILE", config.tlsCertFile),
        key: readPem("OAUTH_TLS_KEY_FILE", config.tlsKeyFile),
      }
      : undefined,
    limits: { maxBodyBytes: config.maxBodyBytes },
  });

  // Listen for signals before the relay announces itself, so a signal never finds the default handler.
  // `deno task` forwards a signal the process group also received: stop once, however many arrive.
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      const relay = await starting.catch(() => undefined);
      logger.info("Shutting down");
      await relay?.shutdown();
      Deno.exit(0);
    })();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  await starting;
} catch (error) {
  fail(describe(error));
}
