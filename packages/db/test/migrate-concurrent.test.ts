/**
 * Migrations that run outside a transaction (NO_TRANSACTION_MARKER), on the real PostgreSQL: a
 * database migrated up to 0008 with 200,000 tasks gets 0009's GIN indexes built CONCURRENTLY while
 * another connection inserts into tasks, and a build cancelled half-way (the INVALID index it
 * leaves) is rebuilt by the next run. The two tests share the database, in this order: the first
 * leaves the cancelled build that the second repairs.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDatabase, migrationsFolder } from '../src/index.ts';

const ROWS = 200_000;
const PAYLOAD_INDEXES = ['tasks_input_idx', 'tasks_output_idx'];

interface Journal {
  entries: { tag: string; when: number }[];
}
const journal = JSON.parse(
  readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
) as Journal;

let env: TestEnv;
let sql: postgres.Sql;
let before0009: string;

/** A copy of the migrations folder whose journal stops before `tag`. */
function migrationsBefore(tag: string): string {
  const folder = mkdtempSync(path.join(tmpdir(), 'tasker-migrations-'));
  mkdirSync(path.join(folder, 'meta'));
  const end = journal.entries.findIndex((e) => e.tag === tag);
  expect(end).toBeGreaterThan(0);
  const entries = journal.entries.slice(0, end);
  for (const e of entries)
    copyFileSync(path.join(migrationsFolder, `${e.tag}.sql`), path.join(folder, `${e.tag}.sql`));
  writeFileSync(path.join(folder, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries }));
  return folder;
}

/** Polls `read` every 20 ms until it gives a value; fails after `ms`. */
async function until<T>(read: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function indexState(): Promise<Map<string, { oid: number; valid: boolean }>> {
  const rows = await sql<{ name: string; oid: number; valid: boolean }[]>`
    select c.relname as name, i.indexrelid::int as oid, i.indisvalid as valid
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = 'tasks'::regclass`;
  return new Map(rows.map((r) => [r.name, { oid: r.oid, valid: r.valid }]));
}

beforeAll(async () => {
  env = createTestEnv();
  before0009 = migrationsBefore('0009_payload_search');
  await migrateDatabase(env.databaseUrl, { migrationsFolder: before0009 });
  sql = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
  // Finished tasks, as a table that has been in use holds mostly; with their triggers off
  // (session_replication_role), so that the fill sends no 200,000 notifications.
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`
      insert into tasks (id, owner_id, name, input, status, output, started_at, finished_at)
      select gen_random_uuid(), 'tenant-' || (g % 50), 'type-' || (g % 20),
        jsonb_build_object('n', g, 'word', md5(g::text), 'tags', jsonb_build_array(g % 7, g % 11)),
        'COMPLETED', jsonb_build_object('sum', g * 2, 'hash', md5((g * 2)::text)), now(), now()
      from generate_series(1, ${ROWS}::int) g`;
  });
  await sql`analyze tasks`;
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 5 });
  if (before0009) rmSync(before0009, { recursive: true, force: true });
  await env?.cleanup();
});

describe('migrations outside a transaction, on a tasks table of 200,000 rows', () => {
  it('a concurrent build cancelled half-way leaves its index INVALID and 0009 unrecorded', async () => {
    const migrating = migrateDatabase(env.databaseUrl).then(
      () => undefined,
      (error: unknown) => error,
    );
    // The migrator's backend, once it is building tasks_input_idx (past the catalog entry).
    const pid = await until(
      async () =>
        (
          await sql<{ pid: number }[]>`
            select pid from pg_stat_progress_create_index
            where index_relid = to_regclass('tasks_input_idx') and phase like 'building index%'`
        )[0]?.pid,
      30_000,
      'the build of tasks_input_idx',
    );
    await sql`select pg_cancel_backend(${pid})`;
    expect((await migrating) as { code?: string }).toMatchObject({ code: '57014' }); // query_canceled

    const indexes = await indexState();
    expect(indexes.get('tasks_input_idx')?.valid).toBe(false);
    expect(indexes.has('tasks_output_idx')).toBe(false);
    const recorded = await sql`
      select 1 from drizzle.__drizzle_migrations where created_at >= ${journal.entries[9]?.when ?? 0}`;
    expect(recorded).toHaveLength(0);
  });

  it("the next run rebuilds it and builds 0009's indexes while inserts into tasks go on", async () => {
    const invalid = (await indexState()).get('tasks_input_idx');
    expect(invalid?.valid).toBe(false);

    // Another connection inserts a task every 10 ms, timing each insert.
    const writer = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
    const inserts: { start: number; end: number }[] = [];
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        const start = performance.now();
        await writer`insert into tasks (id, name, input) values (gen_random_uuid(), 'probe', '{"probe": true}')`;
        inserts.push({ start, end: performance.now() });
        await sleep(10);
      }
    })();
    // A third watches the builds of the payload indexes: when each was seen running concurrently.
    const monitor = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
    const seen = new Map<string, { first: number; last: number }>();
    const watching = (async () => {
      while (!stop) {
        const rows = await monitor<{ name: string }[]>`
          select c.relname as name from pg_stat_progress_create_index p
          join pg_class c on c.oid = p.index_relid
          where p.command = 'CREATE INDEX CONCURRENTLY'`;
        const now = performance.now();
        for (const { name } of rows) {
          const span = seen.get(name);
          if (span) span.last = now;
          else seen.set(name, { first: now, last: now });
        }
        await sleep(20);
      }
    })();

    try {
      await migrateDatabase(env.databaseUrl);
    } finally {
      stop = true;
      await Promise.all([writing, watching]);
      await Promise.all([writer.end({ timeout: 5 }), monitor.end({ timeout: 5 })]);
    }

    // Both payload indexes were seen building concurrently, for a measurable time.
    const spans = PAYLOAD_INDEXES.map((name) => seen.get(name));
    expect(spans.every((s) => s !== undefined)).toBe(true);
    const first = Math.min(...spans.map((s) => s?.first ?? 0));
    const last = Math.max(...spans.map((s) => s?.last ?? 0));
    const buildMs = last - first;
    // Every insert that overlapped the builds returned in a fraction of their time (a build that
    // blocked writes would have held one for as long as it ran).
    const during = inserts.filter((i) => i.end >= first && i.start <= last);
    const slowest = Math.max(...during.map((i) => i.end - i.start));
    console.log(
      `0009's builds: ${Math.round(buildMs)} ms; ${during.length} inserts meanwhile, the slowest ${Math.round(slowest)} ms`,
    );
    expect(buildMs).toBeGreaterThan(300);
    expect(during.length).toBeGreaterThanOrEqual(5);
    expect(slowest).toBeLessThan(buildMs / 4);

    // Every index of tasks valid; the INVALID one rebuilt (another index), not kept.
    const indexes = await indexState();
    expect([...indexes].filter(([, s]) => !s.valid).map(([name]) => name)).toEqual([]);
    for (const name of PAYLOAD_INDEXES) expect(indexes.has(name)).toBe(true);
    expect(indexes.get('tasks_input_idx')?.oid).not.toBe(invalid?.oid);
    // Each migration recorded once, as drizzle records it.
    const rows = await sql<{ created_at: string }[]>`
      select created_at from drizzle.__drizzle_migrations order by id`;
    expect(rows.map((r) => Number(r.created_at))).toEqual(journal.entries.map((e) => e.when));
  });
});
