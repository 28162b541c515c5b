import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * No server-side request forgery through a webhook: a webhook's URL may not reach loopback,
 * private, shared (CGNAT), link-local, unique-local, multicast, reserved or unspecified addresses,
 * in IPv4 or IPv6 (IPv4-mapped, NAT64 and 6to4 forms checked as the IPv4 address they carry),
 * unless WEBHOOK_ALLOW_PRIVATE=1. A host name is refused when ANY of its addresses is one of
 * those, and the connection goes to the address that was checked (`guardedLookup`), so that a
 * second DNS answer cannot swap it (rebinding).
 */
const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // shared address space (CGNAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const)
  blocked.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated)
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments (Teredo included)
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const)
  blocked.addSubnet(network, prefix, 'ipv6');

/** The 8 groups of an IPv6 address, as numbers (an embedded dotted IPv4 tail included). */
function groupsOf(address: string): number[] {
  let text = address.toLowerCase().split('%')[0] ?? '';
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const [a = 0, b = 0, c = 0, d = 0] = dotted[1].split('.').map(Number);
    text = `${text.slice(0, -dotted[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

const v4 = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;

/** The IPv4 address an IPv6 one carries (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::, 6to4 2002:), if any. */
function embeddedV4(address: string): string | undefined {
  const g = groupsOf(address);
  if (g.length !== 8) return undefined;
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6] ?? 0, g[7] ?? 0);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6] ?? 0, g[7] ?? 0);
  if (g[0] === 0x2002) return v4(g[1] ?? 0, g[2] ?? 0);
  return undefined;
}

/** Whether a webhook may not call this IP address (see above). Not an IP address: true. */
export function isForbiddenAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family !== 6) return true;
  const inner = embeddedV4(address);
  if (inner !== undefined) return blocked.check(inner, 'ipv4');
  return blocked.check(address.split('%')[0] ?? address, 'ipv6');
}

/** Why a webhook URL is refused, in words that stand alone; undefined: it may be called. */
export type UrlRefusal = string | undefined;

/** `[::1]` → `::1`: a URL's host as an address or a name. */
const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

/** The checks of a URL that need no DNS: scheme, credentials, and a literal address. */
export function checkUrlShape(text: string, allowPrivate: boolean): UrlRefusal {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an http:// or https:// URL';
  if (url.username || url.password) return 'must not carry a user name or password';
  const host = hostOf(url);
  if (!allowPrivate && isIP(host) !== 0 && isForbiddenAddress(host))
    return `${host} is a loopback, private, link-local or reserved address (WEBHOOK_ALLOW_PRIVATE=1 allows it)`;
  return undefined;
}

/** Resolves a host name: every address it has (as the connection will see them). */
export type Resolve = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolve: Resolve = (host) => dnsLookup(host, { all: true, verbatim: true });

/**
 * Whether a webhook may call this URL: its shape, and unless allowed, every address its host
 * resolves to. Checked at creation (a 400 naming `url`) and again at each delivery, where the
 * connection is made to the checked address (`guardedLookup`).
 */
export async function checkWebhookUrl(
  text: string,
  allowPrivate: boolean,
  resolve: Resolve = systemResolve,
): Promise<UrlRefusal> {
  const shape = checkUrlShape(text, allowPrivate);
  if (shape !== undefined || allowPrivate) return shape;
  const host = hostOf(new URL(text));
  if (isIP(host) !== 0) return undefined;
  let addresses: { address: string }[];
  try {
    addresses = await resolve(host);
  } catch (error) {
    return `${host} does not resolve (${(error as { code?: string }).code ?? 'DNS error'})`;
  }
  const bad = addresses.find((a) => isForbiddenAddress(a.address));
  if (bad) return `${host} resolves to ${bad.address}, a loopback, private, link-local or reserved address`;
  if (addresses.length === 0) return `${host} does not resolve`;
  return undefined;
}

/** A refused connection: the message says why (it becomes the attempt's error). */
export class ForbiddenAddressError extends Error {
  override name = 'ForbiddenAddressError';
  readonly code = 'EFORBIDDENADDRESS';
}

/**
 * A `lookup` for node:http's request (and net.connect): resolves every address, refuses them all
 * if any is forbidden, else answers with the addresses checked, so the socket connects to one of
 * those. Node calls no lookup for a literal address: `checkUrlShape` checks that one.
 */
export function guardedLookup(allowPrivate: boolean, resolve: Resolve = systemResolve): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname)
      .then((addresses) => {
        const bad = allowPrivate ? undefined : addresses.find((a) => isForbiddenAddress(a.address));
        if (bad)
          throw new ForbiddenAddressError(
            `${hostname} resolves to ${bad.address}, a loopback, private, link-local or reserved address`,
          );
        const wanted = options.family === 4 || options.family === 6 ? options.family : undefined;
        const usable = addresses.filter((a) => wanted === undefined || a.family === wanted);
        const first = usable[0];
        if (!first) throw Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' });
        if (options.all) callback(null, usable);
        else callback(null, first.address, first.family);
      })
      .catch((error: NodeJS.ErrnoException) => callback(error, '', 0));
  };
}
