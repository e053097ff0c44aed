/**
 * Throwaway TLS material for tests, made at test time with Debian's `openssl`:
 * a CA and a server certificate for `localhost` and `127.0.0.1` signed by it.
 * A test serves HTTPS with `certFile`/`keyFile` (or the PEM text) and trusts
 * the CA with {@linkcode httpClientTrusting}; nothing is trusted system-wide.
 *
 * @module
 */

/** Where the files are, plus the CA certificate's PEM text; removed with `await using`. */
export interface Certificates extends AsyncDisposable {
  /** Directory that holds the files below. */
  dir: string;
  /** The CA's certificate (PEM); its key stays in `dir` as `ca.key`. */
  caCertFile: string;
  /** The server certificate (PEM) for DNS:localhost and IP:127.0.0.1, signed by the CA. */
  certFile: string;
  /** The server certificate's private key (PEM, PKCS#8). */
  keyFile: string;
  /** The CA certificate's PEM text, for `caCerts`. */
  caCert: string;
  /** The server certificate's PEM text, for `Deno.serve({ cert })`. */
  cert: string;
  /** The server key's PEM text, for `Deno.serve({ key })`. */
  key: string;
}

/** Where `openssl` is, or null when it is not installed. */
export const OPENSSL_PATH: string | null = await findExecutable("openssl");

/** Whether `openssl` is installed (CI installs it: Debian package `openssl`). */
export const OPENSSL_AVAILABLE: boolean = OPENSSL_PATH !== null;

/** The server certificate's extensions: what rustls and nginx clients need to accept it. */
const SERVER_EXTENSIONS = [
  "basicConstraints = critical, CA:FALSE",
  "keyUsage = critical, digitalSignature, keyEncipherment",
  "extendedKeyUsage = serverAuth",
  "subjectAltName = DNS:localhost, IP:127.0.0.1",
  "subjectKeyIdentifier = hash",
  "authorityKeyIdentifier = keyid",
  "",
].join("\n");

/** P-256 keys: quick to make, and accepted by rustls and nginx alike. */
const NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/**
 * Makes a CA and a server certificate for `localhost` and `127.0.0.1` signed
 * by it, with `openssl` subprocesses. The files go to `dir` when given (the
 * caller owns it; only the files made here are removed), else to a fresh
 * temp directory under /tmp that `await using` removes.
 */
export async function makeCertificates(dir?: string): Promise<Certificates> {
  const owned = dir === undefined;
  const path = dir ?? await Deno.makeTempDir({ dir: "/tmp", prefix: "oauth-relay-tls-" });
  const file = (name: string) => `${path}/${name}`;
  const made = ["ca.key", "ca.crt", "ca.srl", "server.key", "server.csr", "server.crt", "server.ext"].map(file);
  const remove = async () => {
    if (owned) await Deno.remove(path, { recursive: true }).catch(() => {});
    else await Promise.all(made.map((name) => Deno.remove(name).catch(() => {})));
  };
  try {
    await openssl([
      "req",
      "-x509",
      ...NEW_KEY,
      "-keyout",
      file("ca.key"),
      "-out",
      file("ca.crt"),
      "-days",
      "2",
      "-subj",
      "/CN=oauth-relay test CA",
      "-addext",
      "basicConstraints = critical, CA:TRUE",
      "-addext",
      "keyUsage = critical, keyCertSign, cRLSign",
    ]);
    await openssl([
      "req",
      "-new",
      ...NEW_KEY,
      "-keyout",
      file("server.key"),
      "-out",
      file("server.csr"),
      "-subj",
      "/CN=localhost",
    ]);
    await Deno.writeTextFile(file("server.ext"), SERVER_EXTENSIONS);
    await openssl([
      "x509",
      "-req",
      "-in",
      file("server.csr"),
      "-CA",
      file("ca.crt"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-CAserial",
      file("ca.srl"),
      "-days",
      "2",
      "-sha256",
      "-extfile",
      file("server.ext"),
      "-out",
      file("server.crt"),
    ]);
    const [caCert, cert, key] = await Promise.all(
      ["ca.crt", "server.crt", "server.key"].map((name) => Deno.readTextFile(file(name))),
    );
    return {
      dir: path,
      caCertFile: file("ca.crt"),
      certFile: file("server.crt"),
      keyFile: file("server.key"),
      caCert,
      cert,
      key,
      [Symbol.asyncDispose]: remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}

/**
 * An HTTP client that trusts `caCert` (PEM) on top of the usual roots, for
 * `fetch(url, { client })`. Close it with `client.close()` or `using`.
 */
export function httpClientTrusting(caCert: string): Deno.HttpClient {
  return Deno.createHttpClient({ caCerts: [caCert] });
}

/** Runs `openssl args`, throwing its stderr when it fails or a clear message when it is missing. */
async function openssl(args: string[]): Promise<void> {
  if (OPENSSL_PATH === null) {
    throw new Error("openssl is not installed (apt-get install openssl); tests/support/tls.ts needs it");
  }
  const { code, stderr } = await new Deno.Command(OPENSSL_PATH, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`openssl ${args[0]} exited with ${code}: ${new TextDecoder().decode(stderr).trim()}`);
  }
}

/**
 * The first executable file named `name` on `PATH` or in the sbin directories
 * (Debian puts daemons such as nginx in /usr/sbin, which a user's PATH may lack).
 */
export async function findExecutable(name: string): Promise<string | null> {
  const path = Deno.env.get("PATH") ?? "";
  const dirs = [...path.split(":").filter(Boolean), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"];
  for (const dir of new Set(dirs)) {
    const candidate = `${dir}/${name}`;
    const info = await Deno.stat(candidate).catch(() => null);
    if (info?.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
  }
  return null;
}
