import { randomFillSync } from 'node:crypto';

/**
 * UUIDv7 (RFC 9562), the id of every task: the first 48 bits are the Unix time in milliseconds,
 * then the version (7), 12 random bits, the variant (10) and 62 random bits. Ids made later sort
 * after ids made earlier (to the millisecond; PostgreSQL compares uuids bytewise), so that
 * - a batch's rows land at the right edge of the primary key's B-tree, in pages already in memory
 *   and already in the WAL since the last checkpoint, instead of one random page each (UUIDv4);
 * - a table partitioned by time can find an id's partition from the id alone
 *   (docs/partitioning.md).
 * PostgreSQL 15 has no uuidv7() (18 has): ids are made here, by the process that stores the row.
 */
export function uuidv7(ms: number = Date.now()): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= 2 ** 48)
    throw new RangeError(`not a 48-bit millisecond time: ${ms}`);
  // 10 random bytes an id, taken from a pool refilled by one call to the CSPRNG (as randomUUID
  // does): a call per id would cost more than the rest of the id.
  if (offset + 10 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const r = offset;
  offset += 10;
  const time = ms.toString(16).padStart(12, '0');
  return (
    `${time.slice(0, 8)}-${time.slice(8)}-${hex(r, 0x0f, 0x70)}${hex(r + 1)}-${hex(r + 2, 0x3f, 0x80)}${hex(r + 3)}-` +
    `${hex(r + 4)}${hex(r + 5)}${hex(r + 6)}${hex(r + 7)}${hex(r + 8)}${hex(r + 9)}`
  );
}

/** The pool's byte `i` in hex, masked then with bits set (version, variant); no closure per id. */
function hex(i: number, mask = 0xff, set = 0): string | undefined {
  return HEX[((pool[i] ?? 0) & mask) | set];
}

const pool = new Uint8Array(10 * 1024);
let offset = pool.length;
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** The millisecond time of a UUIDv7; undefined for any other id (a UUIDv4 of older tasks above all). */
export function uuidv7Time(id: string): Date | undefined {
  const ms = uuidv7Ms(id);
  return ms === undefined ? undefined : new Date(ms);
}

/** `uuidv7Time` as milliseconds since the epoch (what a task's insert writes as its created_at). */
export function uuidv7Ms(id: string): number | undefined {
  // The canonical form (what this module makes and PostgreSQL prints) without a copy: a batch's hot path.
  if (CANONICAL_V7.test(id))
    return Number.parseInt(id.slice(0, 8), 16) * 0x10000 + Number.parseInt(id.slice(9, 13), 16);
  const hex = id.replaceAll('-', '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex) || hex[12] !== '7' || !'89ab'.includes(hex[16] ?? '')) return undefined;
  return Number.parseInt(hex.slice(0, 12), 16);
}

const CANONICAL_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * The smallest UUID whose time is `ms` (time bits, then zeros): every UUIDv7 made at or after `ms`
 * sorts at or after it, every one made before sorts before it. A range partition by id from
 * `uuidv7Bound(a)` to `uuidv7Bound(b)` holds exactly the UUIDv7s of [a, b).
 */
export function uuidv7Bound(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= 2 ** 48)
    throw new RangeError(`not a 48-bit millisecond time: ${ms}`);
  const hex = ms.toString(16).padStart(12, '0').padEnd(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
