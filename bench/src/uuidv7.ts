import { randomBytes } from 'node:crypto';

/**
 * UUIDv7 (RFC 9562): the first 48 bits are the Unix time in milliseconds, then the version (7), 12
 * random bits, the variant (10) and 62 random bits. Ids made later sort after ids made earlier
 * (to the millisecond), so a table partitioned by time can find an id's partition from the id alone
 * (docs/partitioning.md). PostgreSQL 15 has no uuidv7() (18 has): the benchmark makes them here.
 */
export function uuidv7(ms: number = Date.now()): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= 2 ** 48)
    throw new RangeError(`not a 48-bit millisecond time: ${ms}`);
  const bytes = randomBytes(16);
  const time = ms.toString(16).padStart(12, '0');
  for (let i = 0; i < 6; i++) bytes[i] = Number.parseInt(time.slice(2 * i, 2 * i + 2), 16);
  bytes[6] = 0x70 | ((bytes[6] ?? 0) & 0x0f);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  return format(bytes.toString('hex'));
}

/** The millisecond time of a UUIDv7; undefined for any other id (a UUIDv4 of today's tasks above all). */
export function uuidv7Time(id: string): Date | undefined {
  const hex = id.replaceAll('-', '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex) || hex[12] !== '7' || !'89ab'.includes(hex[16] ?? '')) return undefined;
  return new Date(Number.parseInt(hex.slice(0, 12), 16));
}

/**
 * The smallest UUID whose time is `ms` (time bits, then zeros): every UUIDv7 made at or after `ms`
 * sorts at or after it, every one made before sorts before it. A range partition by id from
 * `uuidv7Bound(a)` to `uuidv7Bound(b)` holds exactly the UUIDv7s of [a, b).
 */
export function uuidv7Bound(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= 2 ** 48)
    throw new RangeError(`not a 48-bit millisecond time: ${ms}`);
  return format(ms.toString(16).padStart(12, '0').padEnd(32, '0'));
}

const format = (hex: string) =>
  `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
