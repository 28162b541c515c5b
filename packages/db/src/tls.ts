import { readFileSync } from 'node:fs';
import { type ConnectionOptions, checkServerIdentity } from 'node:tls';

/**
 * A connection URL as the drivers get it: TLS taken out of the URL into Node's `tls.connect`
 * options. Neither driver reads libpq's parameters as libpq does: postgres.js sends `sslrootcert`
 * to the server as a setting (which it refuses) and verifies `verify-ca` like `verify-full`;
 * node-postgres takes `require` for `verify-full`.
 */
export interface PostgresConnection {
  /** The URL without `sslmode` and `sslrootcert`. */
  url: string;
  /** false: no TLS. */
  ssl: false | ConnectionOptions;
}

/** TLS cannot be set up as configured (a URL parameter, a CA file): the message names the parameter and what to write. */
export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

const MODES = new Set(['disable', 'require', 'verify-ca', 'verify-full']);

/**
 * The one reading of a PostgreSQL URL's TLS, libpq's way, for every connection Tasker opens:
 * - `sslmode=disable` (the default without `sslrootcert`): no TLS;
 * - `sslmode=require`: encrypted, the server not checked (checked as verify-ca when `sslrootcert`
 *   is given, as libpq does);
 * - `sslmode=verify-ca`: the server's certificate must be signed by the CA of `sslrootcert`
 *   (required), whatever host name it names;
 * - `sslmode=verify-full` (the default with `sslrootcert`): signed by that CA (or, without
 *   `sslrootcert` or with `sslrootcert=system`, by one this machine trusts) and naming the host of
 *   the URL.
 * `prefer` and `allow` are refused: they fall back to plain text without saying so.
 */
export function postgresConnection(url: string): PostgresConnection {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL (the driver says what is wrong with it), unless it asks for TLS: then say it here.
    if (/[?&]ssl/.test(url))
      throw new TlsConfigError('cannot read the TLS parameters of a URL that is not a URL of one host');
    return { url, ssl: false };
  }
  const params = parsed.searchParams;
  const other = [...params.keys()].find(
    (key) => key.startsWith('ssl') && key !== 'sslmode' && key !== 'sslrootcert',
  );
  if (other)
    throw new TlsConfigError(
      `${other} is not supported (of the TLS parameters, only sslmode and sslrootcert)`,
    );
  const given = params.get('sslmode');
  const rootCert = params.get('sslrootcert') || undefined;
  if (given === null && rootCert === undefined) return { url, ssl: false };
  params.delete('sslmode');
  params.delete('sslrootcert');
  const bare = parsed.toString();
  const mode = given ?? 'verify-full';
  if (!MODES.has(mode)) {
    throw new TlsConfigError(
      `sslmode=${mode} is not supported: use require (encrypted), verify-full (encrypted, the server's certificate and host name checked), verify-ca or disable` +
        (mode === 'prefer' || mode === 'allow' ? ` (${mode} falls back to an unencrypted connection)` : ''),
    );
  }
  if (mode === 'disable') return { url: bare, ssl: false };
  const ca = rootCert && rootCert !== 'system' ? readCaFile(rootCert, 'sslrootcert') : undefined;
  if (mode === 'require' && !ca) return { url: bare, ssl: { rejectUnauthorized: false } };
  if (mode === 'verify-ca' && !ca) {
    throw new TlsConfigError(
      'sslmode=verify-ca needs sslrootcert=/path/to/ca.pem (the CA that signed the server certificate)',
    );
  }
  // The host name of the URL, always: postgres.js leaves Node to guess it for an IP address
  // (`localhost`). verify-ca (and require with a CA): the chain is checked, the host name is not.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    url: bare,
    ssl: {
      rejectUnauthorized: true,
      ...(ca ? { ca } : {}),
      checkServerIdentity:
        mode === 'verify-full' ? (_, cert) => checkServerIdentity(host, cert) : () => undefined,
    },
  };
}

/** The PEM certificates of a CA file; a file that cannot be read, or holds none, throws a line naming `what`. */
export function readCaFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TlsConfigError(`${what}=${path}: cannot read it (${(error as Error).message})`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new TlsConfigError(`${what}=${path}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return text;
}
