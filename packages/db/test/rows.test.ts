/**
 * The raw-SQL helpers of the batched statements (src/tasks/rows.ts): array literals that PostgreSQL
 * reads back exactly (quotes, backslashes, commas, braces, NULL and the text "NULL"), and rows read
 * raw mapped to the drizzle row type, whole or from the few columns a batch reads. The arrays are
 * read back as JSON: postgres.js's own array parser reads a NULL element of text[] as "NULL".
 */
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type DbClient, ensureDatabase } from '../src/index.ts';
import { column, fromDriver, pgArray } from '../src/tasks/rows.ts';

let env: TestEnv;
let client: DbClient;

beforeAll(async () => {
  env = createTestEnv();
  await ensureDatabase(env.databaseUrl);
  client = createDb(env.databaseUrl, { max: 1 });
});

afterAll(async () => {
  await client?.close();
  await env?.cleanup();
});

describe('array literals', () => {
  const awkward = [
    'plain',
    'a "quoted" word',
    'back\\slash',
    '\\"both',
    'a,b',
    '{braces}',
    'NULL',
    '',
    ' spaced ',
  ];

  it('pgArray: PostgreSQL reads every element back as it was, null as NULL', async () => {
    const values = [...awkward, null];
    const [row] = await client.sql<
      { a: (string | null)[] }[]
    >`select to_json(${pgArray(values)}::text[]) as a`;
    expect(row?.a).toEqual(values);
  });

  it('column: each item through its accessor, as text (numbers, JSON), undefined as NULL', async () => {
    const items = [
      { n: 1, j: { a: 'x"y' } },
      { n: undefined, j: null },
      { n: -3, j: [1, '\\'] },
    ];
    const [row] = await client.sql<{ n: (number | null)[]; j: unknown[] }[]>`
      select to_json(${column(items, (i) => i.n)}::int[]) as n,
             to_json(${column(items, (i) => (i.j === null ? null : JSON.stringify(i.j)))}::jsonb[]) as j`;
    expect(row?.n).toEqual([1, null, -3]);
    expect(row?.j).toEqual([{ a: 'x"y' }, null, [1, '\\']]);
    expect(column([], (i) => i)).toBe('{}');
  });
});

describe('fromDriver', () => {
  it('maps the columns a row has to their fields, timestamps to dates, and every other field to null', () => {
    const row = fromDriver({
      id: 'c0ffee00-0000-4000-8000-000000000000',
      owner_id: 'tenant-a',
      name: 'sum_two_numbers',
      idempotency_key: null,
      created_at: '2026-12-04T05:00:00.000Z',
      not_a_column: 'ignored',
    });
    expect(row.id).toBe('c0ffee00-0000-4000-8000-000000000000');
    expect(row.tenantId).toBe('tenant-a');
    expect(row.createdAt).toEqual(new Date('2026-12-04T05:00:00.000Z'));
    expect(row.idempotencyKey).toBeNull();
    expect(row.output).toBeNull();
    expect(row.tags).toBeNull();
    expect('not_a_column' in row || 'notAColumn' in row).toBe(false);
    // Each row its own object: filling one leaves the shape it was copied from untouched.
    expect(fromDriver({}).tenantId).toBeNull();
  });
});
