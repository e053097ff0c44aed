// This module is browser compatible.

/**
 * Presets for well-known providers: where their endpoints are and what to ask
 * for by default. Anything a caller gives explicitly wins over the preset.
 *
 * @module
 */

/** The name of a preset in {@linkcode PROVIDERS}. */
export type ProviderName = "github" | "google" | "microsoft" | "gitlab";

/** What a preset fills in. */
export interface ProviderPreset {
  /** A human name for messages. */
  title: string;
  /** The issuer identifier, for discovery (OpenID Connect Discovery, else RFC 8414). */
  issuer?: string;
  /** The authorization endpoint, for a provider without metadata. */
  authorizationEndpoint?: string;
  /** The token endpoint, for a provider without metadata. */
  tokenEndpoint?: string;
  /** The scope asked for when the caller names none. */
  scope: string;
  /** How a client secret is sent, when there is one and the provider publishes no preference. */
  clientAuth?: "client_secret_basic" | "client_secret_post";
}

/**
 * The presets.
 *
 * - `github`: GitHub has no metadata and no issuer: explicit endpoints, OAuth 2.0 only, a client secret in
 *   the body as GitHub documents it.
 * - `google`: `https://accounts.google.com`, OpenID Connect.
 * - `microsoft`: personal Microsoft accounts (the consumers tenant, whose metadata names one issuer). For
 *   work or school accounts give your tenant's issuer, `https://login.microsoftonline.com/TENANT-ID/v2.0`:
 *   the `common` and `organizations` metadata name a templated issuer that no response can be checked against.
 * - `gitlab`: `https://gitlab.com`; for a self-managed GitLab give its URL as the issuer.
 *
 * @example
 * ```ts
 * import { PROVIDERS } from "./providers.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(PROVIDERS.google.issuer, "https://accounts.google.com");
 * assert.equal(PROVIDERS.github.issuer, undefined);
 * ```
 */
export const PROVIDERS: Readonly<Record<ProviderName, Readonly<ProviderPreset>>> = Object.freeze({
  github: {
    title: "GitHub",
    authorizationEndpoint: "https://github.com/login/oauth/authorize",
    tokenEndpoint: "https://github.com/login/oauth/access_token",
    scope: "read:user",
    clientAuth: "client_secret_post",
  },
  google: { title: "Google", issuer: "https://accounts.google.com", scope: "openid email" },
  microsoft: {
    title: "Microsoft",
    // The consumers tenant's id: Microsoft's metadata for it names this issuer exactly.
    issuer: "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
    scope: "openid email",
  },
  gitlab: { title: "GitLab", issuer: "https://gitlab.com", scope: "openid email" },
});

/**
 * Whether `name` is one of the presets.
 *
 * @param name A name, e.g. from a command line.
 * @returns `true` for `github`, `google`, `microsoft` and `gitlab`.
 *
 * @example
 * ```ts
 * import { isProviderName } from "./providers.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isProviderName("google"), true);
 * assert.equal(isProviderName("toString"), false);
 * ```
 */
export function isProviderName(name: string): name is ProviderName {
  return Object.hasOwn(PROVIDERS, name);
}
