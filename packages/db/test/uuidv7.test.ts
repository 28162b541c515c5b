import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { uuidv7, uuidv7Bound, uuidv7Ms, uuidv7Time } from '../src/uuidv7.ts';

describe('uuidv7', () => {
  it('carries its millisecond time, version 7 and the RFC 9562 variant', () => {
    const ms = Date.UTC(2026, 11, 4, 5, 30, 0, 123);
    const id = uuidv7(ms);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuidv7Time(id)?.getTime()).toBe(ms);
    expect(uuidv7Ms(id)).toBe(ms);
    // Written otherwise (upper case, no dashes), the same id has the same time.
    expect(uuidv7Ms(id.toUpperCase().replaceAll('-', ''))).toBe(ms);
  });

  it('sorts by time, as text and as PostgreSQL compares uuids (bytewise)', () => {
    const ids = [0, 1, 255, 256, 2 ** 32, Date.UTC(2026, 0, 1), 2 ** 48 - 1].map((ms) => uuidv7(ms));
    expect([...ids].sort()).toEqual(ids);
  });

  it('is unique within one millisecond', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => uuidv7(42)));
    expect(ids.size).toBe(1000);
  });

  it('has no time when the id is not a UUIDv7', () => {
    expect(uuidv7Time(randomUUID())).toBeUndefined();
    expect(uuidv7Time('not a uuid')).toBeUndefined();
    // Version 7 with a wrong variant.
    expect(uuidv7Time('01900000-0000-7000-c000-000000000000')).toBeUndefined();
    expect(uuidv7Ms('01900000-0000-7000-c000-000000000000')).toBeUndefined();
    expect(uuidv7Ms(randomUUID())).toBeUndefined();
  });

  it('refuses times outside 48 bits', () => {
    expect(() => uuidv7(-1)).toThrow(RangeError);
    expect(() => uuidv7(2 ** 48)).toThrow(RangeError);
    expect(() => uuidv7(1.5)).toThrow(RangeError);
  });
});

describe('uuidv7Bound', () => {
  it('is the lower end of its millisecond: ids of that time and later sort at or after it, earlier ones before', () => {
    const ms = Date.UTC(2026, 8, 6);
    const bound = uuidv7Bound(ms);
    expect(bound).toBe(
      `${ms.toString(16).padStart(12, '0').slice(0, 8)}-${ms.toString(16).padStart(12, '0').slice(8)}-0000-0000-000000000000`,
    );
    for (let i = 0; i < 200; i++) {
      expect(uuidv7(ms) >= bound).toBe(true);
      expect(uuidv7(ms + 1 + i) > bound).toBe(true);
      expect(uuidv7(ms - 1 - i) < bound).toBe(true);
    }
  });
});
