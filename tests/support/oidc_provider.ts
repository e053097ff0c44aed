/**
 * A real OpenID provider for the login tests: `oidc-provider` (certified by
 * the OpenID Foundation) on loopback, in its own Deno process so its warnings
 * and its timers stay out of the test's. It has a public client that must use
 * PKCE (`token_endpoint_auth_method: "none"`), a confidential one, pushed
 * authorization requests (on unless asked otherwise) and its development login
 * and consent pages: any login and password sign in.
 *
 * @module
 */

/** What the provider is started with. */
export interface OidcProviderOptions {
  /** Redirect URIs the clients may use: the relay's callback. */
  redirectUris: string[];
  /** Offer pushed authorization requests (RFC 9126). Default `true`. */
  par?: boolean;
}

/** The public client: no secret, PKCE required. */
export const PUBLIC_CLIENT = "login-test";
/** The confidential client and its secret. */
export const CONFIDENTIAL_CLIENT = { id: "login-confidential", secret: "s3cret-of-the-confidential-client" };

/** A running provider, stopped with `await using`. */
export interface TestOidcProvider extends AsyncDisposable {
  /** Its issuer identifier, `http://127.0.0.1:PORT`. */
  issuer: string;
  /** Everything the provider process wrote to stderr. */
  stderr(): string;
}

/** The provider's configuration: two clients, PAR as asked, dev interactions, email claims. */
function configuration(redirectUris: string[], par: boolean) {
  return {
    clients: [
      {
        client_id: PUBLIC_CLIENT,
        token_endpoint_auth_method: "none",
        redirect_uris: redirectUris,
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
      {
        client_id: CONFIDENTIAL_CLIENT.id,
        client_secret: CONFIDENTIAL_CLIENT.secret,
        token_endpoint_auth_method: "client_secret_basic",
        redirect_uris: redirectUris,
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    // RFC 7636 / RFC 9700 §2.1.1: every client must send a code challenge, confidential ones too.
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      pushedAuthorizationRequests: { enabled: par },
      userinfo: { enabled: true },
    },
    claims: { openid: ["sub"], email: ["email", "email_verified"] },
    findAccount: (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: () => ({ sub, email: `${sub}@example.test`, email_verified: true }),
    }),
  };
}

/** Runs in the child: listens on loopback port 0 and prints the issuer on stdout. */
async function serve(options: OidcProviderOptions): Promise<void> {
  const { createServer } = await import("node:http");
  const { default: Provider } = await import("oidc-provider");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration(options.redirectUris, options.par ?? true));
  server.on("request", provider.callback());
  console.log(issuer);
}

/**
 * Starts the provider in a child process and resolves once it listens.
 *
 * @param options Redirect URIs, and whether to offer PAR.
 * @returns The provider; `await using` stops it.
 */
export async function startOidcProvider(options: OidcProviderOptions): Promise<TestOidcProvider> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      new URL(import.meta.url).pathname,
      JSON.stringify(options),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let errors = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) errors += chunk;
  })();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      await child.status;
      await stderrDone;
      throw new Error(`The OpenID provider exited before listening: ${errors}`);
    }
    text += value;
  }
  const stdoutDone = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return {
    issuer: text.trim(),
    stderr: () => errors,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await Promise.all([child.status, stderrDone, stdoutDone]);
    },
  };
}

if (import.meta.main) await serve(JSON.parse(Deno.args[0]));
