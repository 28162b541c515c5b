/**
 * Partitioning the tasks table (issue 24, "Tables that grow"): the measurement that decides the
 * design of docs/partitioning.md. In a database of its own, migrated with the real migrations up to
 * the release before partitioning (0036; the last step runs 0037-0039 on it, in place), it
 * generates BENCH_PARTITION_ROWS task rows directly in SQL (generate_series, 90 days of them), then
 * copies them into partitioned prototypes of the table that the bench builds itself, in schemas of
 * their own (never a migration):
 *
 * - `public.tasks`: today's table, unpartitioned, UUIDv4 ids (the baseline);
 * - `p_created.tasks`: PARTITION BY RANGE (created_at), one partition a day, UUIDv7 ids. Looked up
 *   by id alone (design a: every partition probed) and by id + the time the id carries (design c:
 *   one partition);
 * - `p_id.tasks`: PARTITION BY RANGE (id), one partition a day of UUIDv7 ids (design b);
 * - `p_n12`, `p_n52`, `p_n90`: RANGE (created_at) with 12, 52 and 90 partitions over the same span, on
 *   a sample of the rows (BENCH_PARTITION_COUNT_ROWS), for the cost of a lookup by id by partition count.
 *
 * Each layout is read and written by the store's own code (TaskStore from @tasker/db: list, get,
 * insert, claim, complete, pruneFinished) on a connection whose search_path puts its schema first,
 * so that the store's unqualified `tasks` is that layout's table; the pruned variants of design c
 * are the store's statements with the time condition added. Prints a table, writes JSON to
 * bench/results/. Not a test.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  conditionText,
  type Database,
  migrateDatabase,
  type TaskFilter,
  TaskPartitions,
  TaskStore,
  uuidv7,
  uuidv7Bound,
} from '@tasker/db';
import { createTestEnv } from '@tasker/testing';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { fmt, intVar, percentile, table, writeResults } from './common.ts';
import { onInterrupt } from './interrupt.ts';

const ROWS = intVar('BENCH_PARTITION_ROWS', 1_000_000, 10_000);
/** Seconds the whole run may take; the generation stops early (at a chunk's end) to stay inside it. */
const TIMEBOX_S = intVar('BENCH_PARTITION_TIMEBOX_S', 3600, 60);
/** Rows of the partition-count layouts (p_n12, p_n52, p_n90): a sample when ROWS is larger. */
const COUNT_ROWS = intVar('BENCH_PARTITION_COUNT_ROWS', 250_000, 1000);
const REPEAT = intVar('BENCH_PARTITION_REPEAT', 15, 3);
const LOOKUPS = intVar('BENCH_PARTITION_LOOKUPS', 300, 10);
const HOT_BATCHES = intVar('BENCH_PARTITION_HOT_BATCHES', 10, 2);
const DAYS = 90;
const DAY = 86_400_000;
const CHUNK = 250_000;
const LIMIT = 50;
const DEPTH = 100;
const TENANT_BIG = 'tenant-0';
const TENANT_SMALL = 'tiny';
const NAMES = ['sum_two_numbers', 'query_chatgpt', 'resize_image', 'send_email', 'sync_account'];
const TERMINAL = `('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')`;

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jsonPath = path.resolve(
  process.env.BENCH_PARTITION_JSON ||
    path.join(
      benchDir,
      'results',
      `partition-${new Date().toISOString().slice(0, 19).replaceAll(':', '-')}.json`,
    ),
);

/** A layout of the tasks table: its schema, how it is partitioned, and whether its ids are UUIDv7. */
interface Layout {
  schema: string;
  label: string;
  /** null: unpartitioned. */
  key: 'created_at' | 'id' | null;
  v7: boolean;
}

const BASELINE: Layout = { schema: 'public', label: 'unpartitioned (v4 ids)', key: null, v7: false };
const CREATED: Layout = {
  schema: 'p_created',
  label: 'RANGE(created_at) daily',
  key: 'created_at',
  v7: true,
};
const WEEK: Layout = { schema: 'p_week', label: 'RANGE(created_at) weekly', key: 'created_at', v7: true };
const BY_ID: Layout = { schema: 'p_id', label: 'RANGE(id) v7 daily', key: 'id', v7: true };
/** The full-size layouts besides the baseline and p_created (the source of the others' UUIDv7 ids). */
const CHOSEN = (process.env.BENCH_PARTITION_LAYOUTS ?? 'daily,week,id').split(',').map((l) => l.trim());
for (const name of CHOSEN)
  if (!['daily', 'week', 'id'].includes(name))
    throw new Error(`BENCH_PARTITION_LAYOUTS: a list of "daily", "week", "id" (got "${name}")`);
/** The layouts measured at full size: the baseline and the chosen partitioned ones. */
const LAYOUTS = [
  BASELINE,
  ...(CHOSEN.includes('daily') ? [CREATED] : []),
  ...(CHOSEN.includes('week') ? [WEEK] : []),
  ...(CHOSEN.includes('id') ? [BY_ID] : []),
];
const PARTITIONED = LAYOUTS.filter((l) => l.key !== null);
if (PARTITIONED.length === 0) throw new Error('BENCH_PARTITION_LAYOUTS: at least one layout');

type Figures = Record<string, number>;
const results: Record<string, Figures> = {};
const record = (layout: string, metric: string, value: number) => {
  results[layout] ??= {};
  (results[layout] as Figures)[metric] = value;
};

const started = performance.now();
const elapsedS = () => (performance.now() - started) / 1000;
const log = (message: string) => console.log(`[${elapsedS().toFixed(0).padStart(5)} s] ${message}`);

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
const median = (values: number[]) => percentile(sorted(values), 50);

async function timed<T>(run: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const value = await run();
  return [performance.now() - t0, value];
}

/** Median time of `run`, after one unmeasured run (its plan and pages warm). */
async function medianMs(run: () => Promise<unknown>, repeat = REPEAT): Promise<number> {
  await run();
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) samples.push((await timed(run))[0]);
  return median(samples);
}

async function main() {
  const env = createTestEnv();
  const removeInterrupt = onInterrupt(() => env.cleanup());
  // Connections of the run, closed at the end.
  const opened: postgres.Sql[] = [];
  const connect = (schema: string, max = 4) => {
    const sql = postgres(env.databaseUrl, {
      max,
      onnotice: () => {},
      // As @tasker/db's client.ts plans them (every statement for its own values), with the layout's
      // schema first: the store's `tasks` is then that layout's table (its triggers' too).
      connection: {
        application_name: `bench-partition-${schema}`,
        plan_cache_mode: 'force_custom_plan',
        search_path: schema === 'public' ? 'public' : `${schema}, public`,
      },
    });
    opened.push(sql);
    return sql;
  };
  try {
    // The table as the release before partitioning left it: the baseline, and what 0037-0042
    // migrate in place at the end.
    await migrateDatabase(env.databaseUrl, { until: '0036_queue_in_handouts' });
    const admin = connect('public', 1);
    // The end of the span is now: the hot path's new rows (created_at = now()) land in the newest day.
    const end = Date.now();
    const start = Math.floor((end - DAYS * DAY) / DAY) * DAY;
    const span = end - start;
    log(
      `partition benchmark: ${ROWS.toLocaleString('en-US')} rows over ${(span / DAY).toFixed(1)} days, time box ${TIMEBOX_S} s, database ${new URL(env.databaseUrl).pathname.slice(1)}`,
    );
    await admin.unsafe(`
      create function bench_uuid7(ts timestamptz) returns uuid language sql volatile as $$
        select (lpad(to_hex(floor(extract(epoch from ts) * 1000)::bigint), 12, '0') || '7'
                || substr(md5(random()::text), 1, 3) || to_hex(8 + floor(random() * 4)::int)
                || substr(md5(random()::text), 1, 15))::uuid
      $$`);

    const rows = await generate(admin, start, span);
    const sizes: Record<string, number> = {};
    sizes[BASELINE.schema] = await tableBytes(admin, 'public.tasks');

    // The prototypes: the same rows (UUIDv7 ids made from their created_at), bulk loaded, then the
    // same indexes, check and triggers as the migrated table.
    const defs = await definitions(admin);
    const dayBounds = (days: number) =>
      Array.from({ length: days }, (_, d) => [start + d * DAY, start + (d + 1) * DAY] as const);
    const days = Math.ceil(span / DAY) + 2; // two days ahead of now, as the design creates them
    const weeks = Array.from(
      { length: Math.ceil(days / 7) },
      (_, w) => [start + w * 7 * DAY, start + (w + 1) * 7 * DAY] as const,
    );
    // The first prototype takes the rows from public.tasks with new UUIDv7 ids; the others copy it,
    // so that an id is the same row in each.
    let source: string | undefined;
    for (const layout of PARTITIONED) {
      const bounds = layout === WEEK ? weeks : dayBounds(days);
      const table = `${layout.schema}.tasks`;
      await buildLayout(admin, layout, defs, bounds, `select * from ${source ?? 'public.tasks'}`, !source);
      source ??= table;
      sizes[layout.schema] = await tableBytes(admin, table);
    }
    const countLayouts: Layout[] = [];
    for (const n of [12, 52, 90]) {
      const layout: Layout = { schema: `p_n${n}`, label: `${n} partitions`, key: 'created_at', v7: true };
      const width = Math.ceil((days * DAY) / n);
      const bounds = Array.from(
        { length: n },
        (_, p) => [start + p * width, start + (p + 1) * width] as const,
      );
      const sample = rows > COUNT_ROWS ? ` where random() < ${COUNT_ROWS / rows}` : '';
      await buildLayout(admin, layout, defs, bounds, `select * from ${source}${sample}`, false);
      countLayouts.push(layout);
    }
    log(
      `sizes (heap + indexes): ${Object.entries(sizes)
        .map(([s, b]) => `${s} ${fmt(b / 2 ** 20)} MB`)
        .join(', ')}`,
    );

    // Reads: the same questions of every layout.
    for (const layout of LAYOUTS) {
      await reads(connect(layout.schema), layout, start, span);
    }
    for (const layout of countLayouts) await lookups(connect(layout.schema), layout, true);

    // Writes: a batch of 1,000 new tasks, then single claims and completions.
    for (const layout of LAYOUTS) await hotPath(connect(layout.schema), layout);

    // Retention of the oldest day: row deletes today, a partition's DETACH + DROP in the prototypes.
    await retention(connect('public', 1), start);
    for (const layout of PARTITIONED) await dropOldest(admin, layout, start);
    const ahead = PARTITIONED.find((l) => l.key === 'created_at');
    if (ahead)
      await createAhead(admin, ahead, defs, ahead === WEEK ? (weeks.at(-1)?.[1] ?? 0) : start + days * DAY);
    // Last (it turns public.tasks into a partition): the real migration of an existing table in place.
    await migrateInPlace(admin, env.databaseUrl, rows);

    report(rows, sizes);
    writeResults(jsonPath, {
      postgres: (await admin`select version() as v`)[0]?.v,
      settings: {
        layouts: LAYOUTS.map((l) => l.schema),
        rows,
        requestedRows: ROWS,
        days: span / DAY,
        countRows: COUNT_ROWS,
        repeat: REPEAT,
        lookups: LOOKUPS,
      },
      sizes,
      seconds: elapsedS(),
      results,
    });
    log(`written: ${path.relative(process.cwd(), jsonPath)}`);
  } finally {
    await Promise.all(opened.map((sql) => sql.end({ timeout: 5 })));
    await env.cleanup();
    removeInterrupt();
  }
}

/**
 * The rows, in chunks of CHUNK, oldest first, into the migrated table without its indexes (built in
 * bulk after, as the prototypes' are, so that no layout has better packed indexes than another) and
 * with its triggers off (NOTIFYs of a million new tasks nobody listens to). Stops early to keep a
 * third of the time box for the rest. Returns how many rows it generated.
 *
 * The mix: 20 tenants with a cubic skew (tenant-0 has about 37 % of the rows, tenant-19 under 2 %)
 * and one tiny tenant (10 rows per million); five task types, the first ones commoner; the newest
 * 0.5 % unfinished or just finished (PENDING, RUNNING, COMPLETED), the rest finished (93 % COMPLETED,
 * 5 % FAILED, 1.5 % CANCELLED, 0.5 % EXPIRED) seconds after they were created; inputs of three keys
 * (`a` unique, `customer` shared by 1 row in 5,000); outputs for COMPLETED rows; tags on 30 % (one
 * `vip` in 1,000); metadata on 20 %.
 */
async function generate(sql: postgres.Sql, start: number, span: number): Promise<number> {
  const saved = await sql<{ name: string; def: string; constraint: boolean }[]>`
    select i.relname as name, pg_get_indexdef(i.oid) as def, c.conname is not null as constraint
    from pg_index x join pg_class i on i.oid = x.indexrelid left join pg_constraint c on c.conindid = i.oid
    where x.indrelid = 'public.tasks'::regclass`;
  await sql.unsafe('alter table public.tasks drop constraint tasks_pkey');
  for (const index of saved.filter((i) => !i.constraint)) await sql.unsafe(`drop index public.${index.name}`);
  await sql.unsafe(`set session_replication_role = replica`);
  const t0 = performance.now();
  let rows = 0;
  for (let from = 0; from < ROWS; from += CHUNK) {
    const to = Math.min(ROWS, from + CHUNK);
    await sql.unsafe(`
      insert into public.tasks (id, owner_id, name, input, status, output, error, version, attempts, max_attempts,
                                concurrency_key, tags, metadata, created_at, started_at, finished_at, updated_at)
      select gen_random_uuid(), g.owner, g.name,
             jsonb_build_object('a', g.i, 'customer', 'c' || (g.i % 5000), 'region', (array['eu', 'us', 'ap'])[1 + g.i % 3]),
             g.status,
             case when g.status = 'COMPLETED' then jsonb_build_object('sum', 2 * g.i) end,
             case when g.status::text in ('FAILED', 'CANCELLED', 'EXPIRED')
                  then jsonb_build_object('message', 'boom', 'name', 'Error', 'code', 'HANDLER_ERROR') end,
             3, 1, 3, g.owner,
             case when g.i % 10 < 3
                  then array['env:' || (array['prod', 'staging'])[1 + g.i % 2], 'batch-' || (g.i / 10000)]
                       || case when g.i % 997 = 0 then array['vip'] else '{}'::text[] end
                  else '{}'::text[] end,
             case when g.i % 5 = 0 then jsonb_build_object('source', (array['api', 'cron', 'ui'])[1 + g.i % 3], 'customer', g.i % 5000) end,
             g.created_at,
             case when g.status <> 'PENDING' then g.created_at + interval '1 second' end,
             case when g.status::text in ${TERMINAL} then g.finished end,
             case when g.status::text in ${TERMINAL} then g.finished else g.created_at end
      from (
        select s.i, s.created_at, s.owner, s.name, s.created_at + (2 + random() * 60) * interval '1 second' as finished,
               (case when s.i >= ${Math.floor(ROWS * 0.995)}
                     then (array['PENDING', 'PENDING', 'RUNNING', 'COMPLETED'])[1 + floor(random() * 4)::int]
                     when s.r < 0.93 then 'COMPLETED' when s.r < 0.98 then 'FAILED'
                     when s.r < 0.995 then 'CANCELLED' else 'EXPIRED' end)::task_status as status
        from (
          select i, random() as r,
                 to_timestamp(${start / 1000} + (i::float8 / ${ROWS}) * ${span / 1000}) as created_at,
                 case when i % 100000 = 7 then '${TENANT_SMALL}' else 'tenant-' || floor(pow(random(), 3) * 20)::int end as owner,
                 (array[${NAMES.map((n) => `'${n}'`).join(', ')}])[1 + floor(pow(random(), 2) * 5)::int] as name
          from generate_series(${from}, ${to - 1}) as i
        ) s
      ) g`);
    rows = to;
    if (to < ROWS && elapsedS() > TIMEBOX_S / 3) {
      log(`time box: generation stops at ${rows.toLocaleString('en-US')} rows`);
      break;
    }
  }
  const loaded = performance.now() - t0;
  await sql.unsafe(`set session_replication_role = origin`);
  await sql.unsafe(`set maintenance_work_mem = '512MB'`);
  const [indexMs] = await timed(async () => {
    await sql.unsafe('alter table public.tasks add constraint tasks_pkey primary key (id)');
    for (const index of saved.filter((i) => !i.constraint)) await sql.unsafe(index.def);
  });
  await sql.unsafe('vacuum analyze public.tasks');
  log(
    `generated ${rows.toLocaleString('en-US')} rows in ${(loaded / 1000).toFixed(1)} s, indexes ${(indexMs / 1000).toFixed(1)} s`,
  );
  record(BASELINE.schema, 'load_s', loaded / 1000);
  record(BASELINE.schema, 'index_s', indexMs / 1000);
  return rows;
}

interface Definitions {
  /** CREATE INDEX statements of public.tasks, the primary key's excepted. */
  indexes: { name: string; def: string; unique: boolean }[];
  checks: { name: string; def: string }[];
  /** CREATE TRIGGER statements of public.tasks. */
  triggers: string[];
  /** The columns in table order. */
  columns: string[];
}

async function definitions(sql: postgres.Sql): Promise<Definitions> {
  const indexes = await sql<{ name: string; def: string; unique: boolean }[]>`
    select i.relname as name, pg_get_indexdef(i.oid) as def, x.indisunique as unique
    from pg_index x join pg_class i on i.oid = x.indexrelid
    where x.indrelid = 'public.tasks'::regclass and not x.indisprimary`;
  const checks = await sql<{ name: string; def: string }[]>`
    select conname as name, pg_get_constraintdef(oid) as def from pg_constraint
    where conrelid = 'public.tasks'::regclass and contype = 'c'`;
  const triggers = await sql<{ def: string }[]>`
    select pg_get_triggerdef(oid) as def from pg_trigger where tgrelid = 'public.tasks'::regclass and not tgisinternal`;
  const columns = await sql<{ name: string }[]>`
    select attname as name from pg_attribute where attrelid = 'public.tasks'::regclass and attnum > 0 and not attisdropped
    order by attnum`;
  return {
    indexes: [...indexes],
    checks: [...checks],
    triggers: triggers.map((t) => t.def),
    columns: columns.map((c) => c.name),
  };
}

/**
 * A partitioned copy of the tasks table in `layout.schema`: its partitions (`bounds`, as times; as
 * UUIDv7 bounds when partitioned by id), the rows of `source` (new UUIDv7 ids made from created_at
 * when `newIds`), then the primary key (id plus the partition key), every index of the migrated
 * table (the unique ones as plain indexes: see docs/partitioning.md), its check and its triggers.
 */
async function buildLayout(
  sql: postgres.Sql,
  layout: Layout,
  defs: Definitions,
  bounds: (readonly [number, number])[],
  source: string,
  newIds: boolean,
): Promise<void> {
  const s = layout.schema;
  const key = layout.key ?? 'created_at';
  await sql.unsafe(`create schema ${s}`);
  await sql.unsafe(
    `create table ${s}.tasks (like public.tasks including defaults including storage) partition by range (${key})`,
  );
  const bound = (ms: number) => (key === 'id' ? `'${uuidv7Bound(ms)}'` : `'${new Date(ms).toISOString()}'`);
  for (const [p, [from, to]] of bounds.entries()) {
    // 0007's autovacuum settings, per partition: a partitioned table takes no storage parameters.
    await sql.unsafe(
      `create table ${s}.tasks_p${String(p).padStart(3, '0')} partition of ${s}.tasks
         for values from (${bound(from)}) to (${bound(to)})
         with (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05)`,
    );
  }
  const columns = defs.columns.map((c) => `"${c}"`).join(', ');
  const selected = defs.columns
    .map((c) => (c === 'id' && newIds ? 'bench_uuid7(created_at)' : `"${c}"`))
    .join(', ');
  const [loadMs] = await timed(() =>
    sql.unsafe(`insert into ${s}.tasks (${columns}) select ${selected} from (${source}) src`),
  );
  await sql.unsafe(`set maintenance_work_mem = '512MB'`);
  const [indexMs] = await timed(async () => {
    await sql.unsafe(`alter table ${s}.tasks add primary key (${key === 'id' ? 'id' : 'id, created_at'})`);
    for (const index of defs.indexes) {
      await sql.unsafe(
        index.def
          .replace('CREATE UNIQUE INDEX', 'CREATE INDEX')
          .replace(' ON public.tasks ', ` ON ${s}.tasks `),
      );
    }
  });
  for (const check of defs.checks)
    await sql.unsafe(
      `alter table ${s}.tasks add constraint ${check.name} ${check.def.replace(' NOT VALID', '')}`,
    );
  for (const trigger of defs.triggers)
    await sql.unsafe(trigger.replace(' ON public.tasks ', ` ON ${s}.tasks `));
  await sql.unsafe(`vacuum analyze ${s}.tasks`);
  const [{ n }] = (await sql.unsafe(`select count(*)::int as n from ${s}.tasks`)) as unknown as [
    { n: number },
  ];
  log(
    `${s}: ${bounds.length} partitions by ${key}, ${n.toLocaleString('en-US')} rows loaded in ${(loadMs / 1000).toFixed(1)} s, indexes ${(indexMs / 1000).toFixed(1)} s`,
  );
  record(s, 'partitions', bounds.length);
  record(s, 'rows', n);
  record(s, 'load_s', loadMs / 1000);
  record(s, 'index_s', indexMs / 1000);
}

/** Heap and indexes of a table, its partitions' summed when it has some. */
async function tableBytes(sql: postgres.Sql, name: string): Promise<number> {
  const [row] = await sql<{ bytes: string }[]>`
    select coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint as bytes
    from pg_class c
    where c.oid = ${name}::regclass or c.oid in (select inhrelid from pg_inherits where inhparent = ${name}::regclass)`;
  return Number(row?.bytes ?? 0);
}

/** The store of a layout: TaskStore over a connection whose search_path names the layout's schema. */
const storeOf = (sql: postgres.Sql) =>
  // No relational queries (db.query) are used: the schema-less client is the store's Database.
  new TaskStore({ db: drizzle(sql) as unknown as Database, sql });

/** Listing, search and lookups by id. */
async function reads(sql: postgres.Sql, layout: Layout, start: number, span: number): Promise<void> {
  const store = storeOf(sql);
  const s = layout.schema;
  type Filter = Omit<Parameters<TaskStore['queries']['list']>[0], 'limit'>;
  // One query over all time, and the store's listing in steps of time (time-steps.ts).
  const list = (filter: Filter) => store.queries.listWindow({ limit: LIMIT, ...filter });
  const stepped = (filter: Filter) => store.queries.list({ limit: LIMIT, ...filter });
  for (const [tenant, tenantLabel] of [
    [TENANT_BIG, 'big'],
    [TENANT_SMALL, 'tiny'],
  ] as const) {
    const filters: [string, Partial<TaskFilter>][] = [
      ['plain', {}],
      ['status=FAILED', { statuses: ['FAILED'] }],
      ['name=send_email', { names: ['send_email'] }],
    ];
    for (const [label, extra] of filters) {
      const filter = { tenantId: tenant, ...extra };
      record(s, `list ${tenantLabel} ${label}: first page`, await medianMs(() => list(filter)));
      record(s, `list ${tenantLabel} ${label}: first page, stepped`, await medianMs(() => stepped(filter)));
      if (tenant === TENANT_SMALL) continue;
      // Page DEPTH, by following the cursors; and a page half-way back in time (a cursor as a
      // client that pages far, or filters by created_before, sends it).
      let cursor: { createdAt: Date; id: string } | undefined;
      for (let page = 1; page < DEPTH; page++) {
        const rows = await list(cursor ? { ...filter, cursor } : filter);
        const last = rows.at(-1);
        if (!last) break;
        cursor = { createdAt: last.createdAt, id: last.id };
      }
      const deep = cursor;
      if (deep)
        record(
          s,
          `list ${tenantLabel} ${label}: page ${DEPTH}`,
          await medianMs(() => list({ ...filter, cursor: deep })),
        );
      const middle = { createdAt: new Date(start + span / 2), id: 'ffffffff-ffff-ffff-ffff-ffffffffffff' };
      record(
        s,
        `list ${tenantLabel} ${label}: mid-range cursor`,
        await medianMs(() => list({ ...filter, cursor: middle })),
      );
      record(
        s,
        `list ${tenantLabel} ${label}: mid-range cursor, stepped`,
        await medianMs(() => stepped({ ...filter, cursor: middle })),
      );
    }
  }
  // Searches of the big tenant: a unique input, an input shared by 1 row in 5,000, a rare tag, a
  // common tag, a metadata value.
  const [one] = await sql.unsafe<{ a: number }[]>(
    `select (input->>'a')::int as a from tasks where owner_id = '${TENANT_BIG}' and created_at > to_timestamp(${(start + span * 0.4) / 1000}) order by created_at limit 1`,
  );
  const searches: [string, Partial<TaskFilter>][] = [
    ['search input {a} (1 row)', { inputContains: { a: one?.a } }],
    ['search input {customer} (1 in 5,000)', { inputContains: { customer: 'c4242' } }],
    ['search tag vip (1 in 3,300)', { tags: ['vip'] }],
    ['search tag env:prod (15 %)', { tags: ['env:prod'] }],
    ['search metadata {customer} (1 in 25,000)', { metadataContains: { customer: 4242 } }],
  ];
  for (const [label, filter] of searches) {
    record(s, label, await medianMs(() => list({ tenantId: TENANT_BIG, ...filter })));
  }
  await lookups(sql, layout, false);
  log(`${s}: reads measured`);
}

/**
 * Lookups by id of LOOKUPS random rows, one at a time, through the store's prepared `tasks_get`
 * (by id alone), and on a layout partitioned by created_at also by id + created_at (the time a
 * UUIDv7 id carries: design c). p50/p99 round trips, and PostgreSQL's planning and execution time
 * (EXPLAIN ANALYZE, medians of 20).
 */
async function lookups(sql: postgres.Sql, layout: Layout, countOnly: boolean): Promise<void> {
  const store = storeOf(sql);
  const s = layout.schema;
  const sample = await sql<{ id: string; created_at: Date }[]>`
    select id, created_at from tasks tablesample system (5) order by random() limit ${LOOKUPS}`;
  const run = async (metric: string, get: (row: { id: string; created_at: Date }) => Promise<unknown>) => {
    for (const row of sample.slice(0, 20)) await get(row); // warm: plans, caches
    const samples: number[] = [];
    for (const row of sample) {
      const [ms, found] = await timed(() => get(row));
      if (!found) throw new Error(`${s}: ${row.id} not found`);
      samples.push(ms);
    }
    const ordered = sorted(samples);
    record(s, `${metric} p50`, percentile(ordered, 50));
    record(s, `${metric} p99`, percentile(ordered, 99));
  };
  await run('get by id', (row) => store.queries.get(row.id));
  if (layout.key === 'created_at')
    await run('get by id + created_at', async (row) => {
      const [found] =
        await sql`select * from tasks where id = ${row.id} and created_at = ${row.created_at} limit 1`;
      return found;
    });
  const explain = async (metric: string, query: string) => {
    const planning: number[] = [];
    const execution: number[] = [];
    for (const row of sample.slice(0, 20)) {
      const [plan] = await sql.unsafe(`explain (analyze, format json) ${query}`, [row.id, row.created_at]);
      const result = (
        plan?.['QUERY PLAN'] as { 'Planning Time': number; 'Execution Time': number }[] | undefined
      )?.[0];
      planning.push(result?.['Planning Time'] ?? Number.NaN);
      execution.push(result?.['Execution Time'] ?? Number.NaN);
    }
    record(s, `${metric} planning`, median(planning));
    record(s, `${metric} execution`, median(execution));
  };
  await explain('get by id', 'select * from tasks where id = $1 and $2::timestamptz is not null limit 1');
  if (layout.key === 'created_at')
    await explain('get by id + created_at', 'select * from tasks where id = $1 and created_at = $2 limit 1');
  if (countOnly) {
    const filter = { tenantId: TENANT_BIG, limit: LIMIT };
    record(s, 'list big plain: first page', await medianMs(() => store.queries.listWindow(filter)));
    record(s, 'list big plain: first page, stepped', await medianMs(() => store.queries.list(filter)));
    record(
      s,
      'search tag vip (1 in 3,300)',
      await medianMs(() => store.queries.list({ ...filter, tags: ['vip'] })),
    );
    record(
      s,
      'search input {customer} (1 in 5,000)',
      await medianMs(() => store.queries.list({ ...filter, inputContains: { customer: 'c4242' } })),
    );
    log(`${s}: lookups measured`);
  }
}

/**
 * The hot path of every task: HOT_BATCHES batches of 1,000 new tasks (the store's insert, 1,000
 * calls at once: its batcher makes statements of 200), then one claim and one completion at a time
 * for 300 of them (p50/p99). On the created_at layout also the claim and completion by id +
 * created_at (design c: the store's statement with the time condition).
 */
async function hotPath(sql: postgres.Sql, layout: Layout): Promise<void> {
  const store = storeOf(sql);
  const s = layout.schema;
  const batches: number[] = [];
  const inserted: { id: string; createdAt: Date }[] = [];
  for (let b = 0; b < HOT_BATCHES + 1; b++) {
    const [ms, answers] = await timed(() =>
      Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          store.insert({
            id: layout.v7 ? uuidv7() : crypto.randomUUID(),
            tenantId: `tenant-${i % 5}`,
            name: NAMES[i % NAMES.length] as string,
            input: { a: b * 1000 + i, b: i },
            tags: i % 10 === 0 ? ['env:prod'] : [],
          }),
        ),
      ),
    );
    if (b > 0) batches.push(ms); // the first one warms
    for (const a of answers) inserted.push({ id: a.row.id, createdAt: a.row.createdAt });
  }
  const ordered = sorted(batches);
  record(s, 'insert 1,000 p50', percentile(ordered, 50));
  record(s, 'insert 1,000 p99', percentile(ordered, 99));
  record(s, 'insert per row (µs)', (percentile(ordered, 50) * 1000) / 1000);

  const one = async (
    metric: string,
    items: typeof inserted,
    op: (t: (typeof inserted)[number]) => Promise<unknown>,
  ) => {
    const samples: number[] = [];
    for (const item of items) {
      const [ms, row] = await timed(() => op(item));
      if (!row) throw new Error(`${s}: ${metric} of ${item.id} did nothing`);
      samples.push(ms);
    }
    const o = sorted(samples.slice(10)); // the first ones warm
    record(s, `${metric} p50`, percentile(o, 50));
    record(s, `${metric} p99`, percentile(o, 99));
  };
  const plain = inserted.slice(0, 310);
  await one('claim', plain, (t) => store.claim(t.id, 'bench:1', 1));
  await one('complete', plain, (t) => store.complete(t.id, { ok: true }));
  if (layout.key !== null) {
    // The store's statements with the partition key also given as a constant (`= any(array)`): a
    // key that only comes out of the join with unnest prunes nothing at plan time, and the plan of
    // an UPDATE of a partitioned table then covers every partition (measured in development at
    // 50,000 rows: p50 105 ms for the claim by id + created_at taken from the unnest).
    const pruned = inserted.slice(310, 620);
    const CLAIM = conditionText('claim');
    const COMPLETE = conditionText('complete');
    const keyed = (t: (typeof inserted)[number]) =>
      layout.key === 'id'
        ? sql`t.id = any(array[${t.id}::uuid])`
        : sql`t.created_at = any(array[${t.createdAt.toISOString()}::timestamptz])`;
    await one('claim, key as constant', pruned, async (t) => {
      const [row] = await sql`
        update tasks t set status = 'RUNNING', version = t.version + 1, attempts = v.attempt, progress = null,
          started_at = coalesce(t.started_at, now()), updated_at = now(), worker_id = ${'bench:1'}
        from unnest(array[${t.id}::uuid], array[1]) as v(id, attempt)
        where t.id = v.id and ${keyed(t)} and ${sql.unsafe(CLAIM)}
        returning t.*`;
      return row;
    });
    await one('complete, key as constant', pruned, async (t) => {
      const [row] = await sql`
        update tasks t set status = 'COMPLETED', version = t.version + 1, output = v.output, error = null,
          finished_at = now(), updated_at = now()
        from unnest(array[${t.id}::uuid], array[${JSON.stringify({ ok: true })}::jsonb]) as v(id, output)
        where t.id = v.id and ${keyed(t)} and ${sql.unsafe(COMPLETE)}
        returning t.*`;
      return row;
    });
  }
  log(`${s}: hot path measured`);
}

/** WAL written between two points, in bytes. */
async function walSince(sql: postgres.Sql, lsn: string): Promise<number> {
  const [row] = await sql<
    { bytes: string }[]
  >`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn})::bigint as bytes`;
  return Number(row?.bytes ?? 0);
}
async function walNow(sql: postgres.Sql): Promise<string> {
  const [row] = await sql<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  return row?.lsn ?? '0/0';
}

/**
 * Today's retention of the oldest day's finished tasks: the store's pruneFinished in chunks of
 * 1,000 until a chunk comes back short (as the engine's prune calls it: PRUNE_BATCH), after a CHECKPOINT (so that
 * every layout pays its first-touch full-page images alike).
 */
async function retention(sql: postgres.Sql, start: number): Promise<void> {
  const store = storeOf(sql);
  await sql`checkpoint`;
  const lsn = await walNow(sql);
  let deleted = 0;
  const [ms] = await timed(async () => {
    for (;;) {
      const n = await store.maintenance.pruneFinished(new Date(start + DAY), 1000);
      deleted += n;
      if (n < 1000) break;
    }
  });
  const wal = await walSince(sql, lsn);
  record('public', 'retention: rows deleted', deleted);
  record('public', 'retention ms', ms);
  record('public', 'retention WAL bytes', wal);
  // The vacuum those deletes call for (autovacuum's, at 0007's 2 %): every index of the whole table
  // is read through to remove the dead rows' entries.
  const [vacuumMs] = await timed(() => sql`vacuum public.tasks`);
  record('public', 'vacuum after retention ms', vacuumMs);
  log(
    `public: retention of one day: ${deleted.toLocaleString('en-US')} rows deleted in ${(ms / 1000).toFixed(1)} s, WAL ${fmt(wal / 2 ** 20, 1)} MB`,
  );
}

/**
 * Retention by partition: the oldest day's partition, after the check that none of its rows is
 * unfinished (an index scan of tasks_finished_idx's complement: finished_at is null), then DETACH
 * PARTITION CONCURRENTLY and DROP TABLE, each timed, WAL measured as above.
 */
async function dropOldest(sql: postgres.Sql, layout: Layout, start: number): Promise<void> {
  const s = layout.schema;
  const partition = `${s}.tasks_p000`;
  // The check the design's retention makes before it drops a partition, by the partial indexes
  // (no scan of the partition): no PENDING or RUNNING task (tasks_unfinished_idx), no WAITING one
  // (tasks_waiting_idx), and the latest finish (tasks_finished_idx), to compare with the cutoff.
  const [checkMs, [row]] = await timed(() =>
    sql.unsafe<{ unfinished: boolean; last: Date | null }[]>(
      `select exists (select 1 from ${partition} where status in ('PENDING', 'RUNNING'))
           or exists (select 1 from ${partition} where waiting_for is not null) as unfinished,
              (select max(finished_at) from ${partition} where finished_at is not null) as last`,
    ),
  );
  const [counted] = await sql.unsafe<{ rows: number }[]>(`select count(*)::int as rows from ${partition}`);
  const rows = counted?.rows ?? 0;
  if (row?.unfinished) throw new Error(`${partition} has unfinished rows`);
  await sql`checkpoint`;
  const lsn = await walNow(sql);
  const [detachMs] = await timed(() =>
    sql.unsafe(`alter table ${s}.tasks detach partition ${partition} concurrently`),
  );
  const [dropMs] = await timed(() => sql.unsafe(`drop table ${partition}`));
  const wal = await walSince(sql, lsn);
  record(s, 'retention: rows dropped', rows);
  record(s, 'retention check ms', checkMs);
  record(s, 'retention detach ms', detachMs);
  record(s, 'retention drop ms', dropMs);
  record(s, 'retention ms', detachMs + dropMs);
  record(s, 'retention WAL bytes', wal);
  // A partitioned table's vacuum in steady state: the newest partition, where the hot path's rows
  // changed (the older ones, unchanged, are vacuumed once and then skipped).
  const [newest] = await sql.unsafe<{ name: string }[]>(
    `select tableoid::regclass::text as name from ${s}.tasks order by created_at desc limit 1`,
  );
  const [vacuumMs] = await timed(() => sql.unsafe(`vacuum ${newest?.name ?? `${s}.tasks`}`));
  record(s, 'vacuum newest partition ms', vacuumMs);
  log(
    `${s}: retention of the oldest partition: ${rows.toLocaleString('en-US')} rows dropped (last finished ${row?.last?.toISOString()}) (detach ${detachMs.toFixed(0)} ms, drop ${dropMs.toFixed(0)} ms, check ${checkMs.toFixed(0)} ms), WAL ${fmt(wal / 2 ** 10, 1)} kB`,
  );
  void start;
}

/**
 * A partition made ahead of time without the lock of CREATE TABLE ... PARTITION OF on the parent:
 * a table of its own (LIKE the parent, its indexes made on the empty table), then ATTACH PARTITION
 * (SHARE UPDATE EXCLUSIVE on the parent: reads and writes go on).
 */
async function createAhead(
  sql: postgres.Sql,
  layout: Layout,
  defs: Definitions,
  from: number,
): Promise<void> {
  const s = layout.schema;
  const name = `${s}.tasks_ahead`;
  const [ms] = await timed(async () => {
    await sql.unsafe(
      `create table ${name} (like ${s}.tasks including defaults including storage including constraints)`,
    );
    await sql.unsafe(`alter table ${name} add primary key (id, created_at)`);
    for (const index of defs.indexes)
      await sql.unsafe(
        index.def
          .replace('CREATE UNIQUE INDEX', 'CREATE INDEX')
          .replace(/INDEX \S+ ON public\.tasks /, `INDEX ON ${name} `),
      );
    await sql.unsafe(
      `alter table ${s}.tasks attach partition ${name} for values from ('${new Date(from).toISOString()}') to ('${new Date(from + DAY).toISOString()}')`,
    );
  });
  record(s, 'create partition ahead ms', ms);
  log(`${s}: a partition made ahead (create, indexes, attach) in ${ms.toFixed(0)} ms`);
}

/**
 * The migration of docs/partitioning.md, on the baseline table (the run's last step): the real
 * migrations 0037-0042 (packages/db/drizzle), as `migrateDatabase` applies them to a database of the
 * release before. The old tables become the partition [MINVALUE, cutover) of a new partitioned
 * `tasks`, then of a new partitioned `task_steps`, without copying a row: 0037 (the cutover as a NOT
 * VALID check), 0038 outside a transaction (the (id, created_at) key and the tick index's twin
 * built concurrently, the checks validated: writes go on), 0039 the switch in one transaction
 * (rename, the partitioned table from the old one's definitions, ATTACH, the weeks ahead); 0040
 * (the steps' partition key column, a constant default: no rewrite, and their cutover), 0041
 * (their key built concurrently), 0042 (their switch as a function, run by the first process start
 * after the cutover on an upgraded installation: here at once, with a clock a day past it). Durable steps are generated first for
 * STEP_SHARE of the tasks (STEPS_PER_TASK each). Each migration is timed; the old tables' indexes
 * are compared by oid before and after: an index an ATTACH had to build would be a new oid.
 */
const STEP_SHARE = 0.05;
const STEPS_PER_TASK = 4;

async function migrateInPlace(sql: postgres.Sql, url: string, rows: number): Promise<void> {
  const oids = async (table: string) =>
    sql<{ name: string; oid: number }[]>`
      select c.relname as name, c.oid::int as oid from pg_index i join pg_class c on c.oid = i.indexrelid
      where i.indrelid = ${table}::regclass`;
  const [made] = await timed(() =>
    sql.unsafe(`
      insert into task_steps (task_id, step_id, seq, status, output, started_at, finished_at)
      select t.id, 'step-' || s, s, 'completed', jsonb_build_object('n', s), t.created_at, t.created_at
      from (select id, created_at from tasks where random() < ${STEP_SHARE}) t,
           generate_series(0, ${STEPS_PER_TASK - 1}) as s`),
  );
  const [steps] = await sql<{ n: number }[]>`select count(*)::int as n from task_steps`;
  log(`durable steps for the migration: ${(steps?.n ?? 0).toLocaleString('en-US')} in ${made.toFixed(0)} ms`);
  const before = new Set((await oids('public.tasks')).map((i) => i.oid));
  for (const [metric, until] of [
    ['0037 cutover check (NOT VALID) ms', '0037_tasks_legacy_range'],
    ['0038 key index + twin concurrently, checks validated ms', '0038_tasks_partition_prepare'],
    ['0039 switch transaction ms', '0039_partition_tasks'],
    ['0040 steps key column + cutover function ms', '0040_task_steps_key_column'],
    ['0041 steps key index concurrently ms', '0041_task_steps_partition_prepare'],
  ] as const) {
    const [ms] = await timed(() => migrateDatabase(url, { until }));
    record('migration', metric, ms);
  }
  const stepKey = (await oids('public.task_steps')).find((i) => i.name === 'task_steps_key_idx')?.oid;
  const [ms] = await timed(() => migrateDatabase(url));
  record('migration', '0042 (the steps switch as a function) ms', ms);
  // The steps' switch waits for their cutover on an upgraded installation: run as the first
  // process start after it runs it (the range check validated, then the switch).
  const [cutover] = await sql<{ at: string }[]>`select tasker_step_cutover()::text as at`;
  const partitioner = new TaskPartitions(sql);
  const [switched] = await timed(() =>
    partitioner.partitionStepsWhenDue(new Date(cutover?.at ?? 0).getTime() + DAY),
  );
  record('migration', 'steps switch at the cutover (check validated, switch) ms', switched);
  const legacy = await oids('public.tasks_legacy');
  const [partitions] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_inherits where inhparent = 'public.tasks'::regclass`;
  // 0038 built two indexes before the switch (the key's and the twin): any other new oid was built
  // by the switch.
  record('migration', 'indexes built by the switch', legacy.filter((i) => !before.has(i.oid)).length - 2);
  record('migration', 'legacy partition indexes', legacy.length);
  record('migration', 'partitions after', partitions?.n ?? 0);
  const stepsLegacy = await oids('public.task_steps_legacy');
  record(
    'migration',
    'steps indexes built by their switch',
    stepsLegacy.filter((i) => i.oid !== stepKey).length,
  );
  record('migration', 'steps', steps?.n ?? 0);
  record('migration', 'rows', rows);
  const figures = results.migration ?? {};
  log(
    `migration in place of ${rows.toLocaleString('en-US')} rows: ${Object.entries(figures)
      .map(([k, v]) => `${k} ${fmt(v, 0)}`)
      .join(', ')}`,
  );
}

function report(rows: number, sizes: Record<string, number>): void {
  const layouts = LAYOUTS;
  const metrics = [...new Set(layouts.flatMap((l) => Object.keys(results[l.schema] ?? {})))];
  const cell = (schema: string, metric: string) => {
    const value = results[schema]?.[metric];
    if (value === undefined) return '–';
    if (metric.includes('bytes')) return `${fmt(value / 2 ** 20, 2)} MB`;
    if (metric.endsWith('_s')) return `${fmt(value, 1)} s`;
    if (metric.includes('rows') || metric === 'partitions') return fmt(value);
    return fmt(value, value < 10 ? 2 : 1);
  };
  console.log('');
  console.log(
    `tasks table, ${rows.toLocaleString('en-US')} rows over ${DAYS} days: times in ms (medians of ${REPEAT}; p50/p99 of ${LOOKUPS} lookups, of 300 claims and completions)`,
  );
  console.log(
    table([
      ['measure', ...layouts.map((l) => l.label)],
      ['size (heap + indexes)', ...layouts.map((l) => `${fmt((sizes[l.schema] ?? 0) / 2 ** 20)} MB`)],
      ...metrics.map((m) => [m, ...layouts.map((l) => cell(l.schema, m))]),
    ]),
  );
  console.log('');
  console.log('migration in place (the old table attached as the first partition)');
  console.log(
    table([
      ['step', 'ms or count'],
      ...Object.entries(results.migration ?? {}).map(([k, v]) => [k, fmt(v, k.endsWith('ms') ? 1 : 0)]),
    ]),
  );
  const counts = ['p_n12', 'p_n52', 'p_n90'];
  const countMetrics = [...new Set(counts.flatMap((c) => Object.keys(results[c] ?? {})))];
  console.log('');
  console.log(`lookup by id by partition count (RANGE(created_at), ${fmt(results.p_n12?.rows ?? 0)} rows)`);
  console.log(
    table([
      ['measure', ...counts.map((c) => `${results[c]?.partitions ?? '?'} partitions`)],
      ...countMetrics.map((m) => [m, ...counts.map((c) => cell(c, m))]),
    ]),
  );
}

main().catch((error: unknown) => {
  console.error('partition benchmark failed:', error);
  process.exitCode = 1;
});
