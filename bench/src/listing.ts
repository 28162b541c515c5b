/**
 * Listing at scale: GET /tasks over 1,000,000 task rows (BENCH_ROWS), the first page and a page 100
 * pages deep (following next_cursor), plain and filtered. Beside each, the same query's execution
 * time inside PostgreSQL (EXPLAIN ANALYZE), measured in the same run. Prints figures; not a test.
 */
import { migrateDatabase } from '@tasker/db';
import { createTestEnv, spawnApp } from '@tasker/testing';
import postgres from 'postgres';
import { percentile } from './common.ts';
import { onInterrupt } from './interrupt.ts';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const DEPTH = 100;
const LIMIT = 50;
const REPEAT = 21;

async function main() {
  const env = createTestEnv({ DATABASE_POOL_SIZE: '5' });
  const removeInterrupt = onInterrupt(() => env.cleanup());
  const sql = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
  let server: Awaited<ReturnType<typeof spawnApp>> | undefined;
  try {
    await migrateDatabase(env.databaseUrl);
    const started = performance.now();
    // Rows of every status and task type, one second apart, newest last.
    for (let from = 0; from < ROWS; from += 250_000) {
      await sql.unsafe(`
        insert into tasks (id, owner_id, name, input, status, output, attempts, max_attempts, created_at, updated_at)
        select gen_random_uuid(), 'default',
               (array['sum_two_numbers', 'query_chatgpt', 'find_longest_consecutive_letters'])[1 + i % 3],
               jsonb_build_object('a', i, 'b', i),
               (array['COMPLETED', 'COMPLETED', 'COMPLETED', 'FAILED', 'PENDING', 'CANCELLED'])[1 + i % 6]::task_status,
               to_jsonb(2 * i), 1, 1,
               timestamptz '2026-01-01' + i * interval '1 second', timestamptz '2026-01-01' + i * interval '1 second'
        from generate_series(${from}, ${Math.min(ROWS, from + 250_000) - 1}) as i`);
    }
    await sql`analyze tasks`;
    console.log(
      `Listing over ${ROWS.toLocaleString('en-US')} task rows (inserted in ${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );

    server = await spawnApp('server', env.vars);
    const url = server.url ?? '';
    const get = async (query: string) => {
      const t0 = performance.now();
      const res = await fetch(`${url}/tasks?${query}`);
      const body = (await res.json()) as { tasks: unknown[]; next_cursor: string | null };
      if (res.status !== 200 || body.tasks.length !== LIMIT)
        throw new Error(`unexpected answer to ${query}: ${res.status}`);
      return { ms: performance.now() - t0, next: body.next_cursor };
    };

    const rows: string[][] = [];
    for (const [label, filter] of [
      ['all tasks', ''],
      ['status=FAILED', '&status=FAILED'],
      ['name=query_chatgpt', '&name=query_chatgpt'],
    ] as const) {
      // Walk to page DEPTH by following the cursors.
      let cursor: string | null = null;
      let deepCursor: string | null = null;
      for (let page = 1; page < DEPTH; page++) {
        const answer: { next: string | null } = await get(
          `limit=${LIMIT}${filter}${cursor ? `&cursor=${cursor}` : ''}`,
        );
        cursor = answer.next;
      }
      deepCursor = cursor;
      const time = async (query: string) => {
        const samples: number[] = [];
        for (let i = 0; i < REPEAT; i++) samples.push((await get(query)).ms);
        return percentile(
          samples.sort((a, b) => a - b),
          50,
        );
      };
      const first = await time(`limit=${LIMIT}${filter}`);
      const deep = await time(`limit=${LIMIT}${filter}&cursor=${deepCursor}`);
      rows.push([label, first.toFixed(1), deep.toFixed(1)]);
    }

    // The substrate: the deep query's execution inside PostgreSQL.
    const [deepRow] =
      await sql`select created_at, id from tasks order by created_at desc, id desc offset ${DEPTH * LIMIT} limit 1`;
    const plan = await sql.unsafe(
      `explain (analyze, format json) select * from tasks where owner_id = 'default' and (created_at, id) < ($1::timestamptz, $2::uuid) order by created_at desc, id desc limit ${LIMIT + 1}`,
      [deepRow?.created_at, deepRow?.id],
    );
    type Explained = [
      {
        'Execution Time': number;
        Plan: { 'Node Type': string; Plans?: { 'Node Type': string; 'Index Name'?: string }[] };
      },
    ];
    const explained = plan[0]?.['QUERY PLAN'] as Explained | undefined;
    const execution = explained?.[0];
    if (!execution) throw new Error('EXPLAIN returned no plan');

    console.log('');
    console.log(
      `  GET /tasks?limit=${LIMIT} (median of ${REPEAT}, ms, over HTTP)   first page   page ${DEPTH}`,
    );
    for (const [label = '', first = '', deep = ''] of rows)
      console.log(`  ${label.padEnd(48)} ${first.padStart(10)} ${deep.padStart(8)}`);
    console.log('');
    console.log(
      `  substrate: the page-${DEPTH} query inside PostgreSQL: ${execution.Plan.Plans?.[0]?.['Index Name'] ?? execution.Plan['Node Type']}, ${execution['Execution Time'].toFixed(2)} ms`,
    );
    const worst = Math.max(...rows.flatMap((r) => [Number(r[1]), Number(r[2])]));
    console.log(
      `  target: every page under 50 ms → ${worst < 50 ? 'MET' : 'NOT MET'} (slowest ${worst.toFixed(1)} ms)`,
    );
  } finally {
    await server?.stop();
    await sql.end();
    await env.cleanup();
    removeInterrupt();
  }
}

main().catch((error: unknown) => {
  console.error('listing benchmark failed:', error);
  process.exitCode = 1;
});
