/**
 * Headless OAuth: wait for the authorization code that an OAuth provider
 * redirects to an oauth-relay server, from a program that has no browser.
 *
 * ```ts ignore
 * import { waitForCode } from "jsr:@org/oauth-relay";
 *
 * const state = crypto.randomUUID();
 * const result = await waitForCode({
 *   state,
 *   onRegistered: () => console.log(`Authorize at https://provider.example/authorize?state=${state}`),
 * });
 * if (result.success) console.log("Got a code of", result.code!.length, "characters");
 * ```
 *
 * @module
 */

export * from "./client.ts";
