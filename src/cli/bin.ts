#!/usr/bin/env node
/**
 * The npm package's `oauth-relay` command: the CLI of `client.ts` on Node and
 * Bun (`npx oauth-relay login …`, `bunx oauth-relay --state S`), through the
 * Node adapter. The same commands, flags, output and exit codes as
 * `deno run … client.ts`.
 *
 * @module
 */

import { cliProcess } from "./io_node.ts";
import { runCli } from "./main.ts";

void runCli(cliProcess());
