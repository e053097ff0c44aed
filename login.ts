/**
 * From nothing to tokens in one call: {@linkcode login} runs the whole
 * authorization code flow (discovery, PKCE, PAR, the wait at the relay, the
 * checks, the exchange) for a program without a browser. The person opens the
 * link anywhere, a phone will do; {@linkcode renderQr} draws it for a terminal.
 *
 * This entry point uses oauth4webapi and uqr; the core (`mod.ts`) has no dependencies.
 *
 * ```ts ignore
 * import { login } from "jsr:@org/oauth-relay/login";
 *
 * const { tokens, claims } = await login({
 *   issuer: "https://accounts.google.com",
 *   clientId: "1234.apps.googleusercontent.com",
 *   onLink: ({ url }) => console.error(url),
 * });
 * ```
 *
 * @module
 */

export {
  type AuthorizeLink,
  type IdTokenClaims,
  login,
  type LoginOptions,
  type LoginResult,
  type TokenResponse,
} from "./src/login/flow.ts";
export {
  LOGIN_ERROR_CODES,
  type LoginCheck,
  LoginCheckError,
  LoginDeniedError,
  LoginError,
  type LoginErrorCode,
  LoginExchangeError,
} from "./src/login/errors.ts";
export { isProviderName, type ProviderName, type ProviderPreset, PROVIDERS } from "./src/login/providers.ts";
export { QR_COLORS, renderQr, type TerminalQr } from "./src/login/qr.ts";
export type { Settings } from "./src/client/settings.ts";
export type { Registration, RelayChannel, Transport } from "./src/client/transport/transport.ts";
