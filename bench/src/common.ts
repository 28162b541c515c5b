import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import type postgres from 'postgres';

/** Benchmark settings, from the environment. */
export interface BenchConfig {
  /** Tasks in each measured run. */
  tasks: number;
  /** Tasks submitted (and completed) before each measured run, not measured. */
  warmup: number;
  /** In-flight submissions at once (HTTP requests in e2e; INSERT + add pairs in the baseline). */
  concurrency: number;
  /** BullMQ worker concurrency, in the baseline and in each worker process. */
  workerConcurrency: number;
  /** PostgreSQL pool size of each process (and of each side of the baseline). */
  poolSize: number;
  /** Also run e2e with 2 server + 2 worker processes. */
  multi: boolean;
  /** `single`: one INSERT + one `Queue.add` per task; `bulk`: multi-row INSERT + `addBulk` in chunks. */
  baselineMode: 'single' | 'bulk';
  /** Chunk size of `bulk` mode. */
  bulkChunk: number;
  /** Completion polling interval. */
  pollMs: number;
  /** Gives up when no task completes for this long. */
  stallTimeoutMs: number;
  /** HTTP client of the e2e runs: Node's `fetch` (undici), or `http` (node:http, keep-alive, lighter). */
  client: 'fetch' | 'http';
  /** When set, the spawned server and worker processes write V8 CPU profiles into this directory. */
  profileDir: string | undefined;
}

/** An integer environment variable in `min..max`, `fallback` when unset or empty; anything else throws, naming it. */
export function intVar(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new Error(`${name} must be an integer in ${min}..${max} (got "${raw}")`);
  return value;
}

/** An environment variable that is one of `values`, `fallback` when unset or empty; anything else throws, naming them. */
export function enumVar<const T extends string>(name: string, values: readonly T[], fallback: T): T {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(values as readonly string[]).includes(raw))
    throw new Error(`${name} must be one of ${values.map((v) => `"${v}"`).join(', ')} (got "${raw}")`);
  return raw as T;
}

/** A figure for a table: grouped thousands, `digits` decimals, `n/a` when not finite. */
export const fmt = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';

/** A text table: the first row is the head, underlined; the first column left-aligned, the others right. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length))) ?? [];
  const line = (row: string[]) =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('   ');
  const [head, ...body] = rows;
  return [head ? line(head) : '', widths.map((w) => '-'.repeat(w)).join('   '), ...body.map(line)].join('\n');
}

function boolVar(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`${name} must be 1/0, true/false, yes/no or on/off (got "${raw}")`);
}

export function loadBenchConfig(): BenchConfig {
  const mode = enumVar('BENCH_BASELINE_MODE', ['single', 'bulk'], 'single');
  const client = enumVar('BENCH_CLIENT', ['fetch', 'http'], 'http');
  const poolSize = intVar('BENCH_POOL_SIZE', 10, 1);
  if (poolSize > 10)
    throw new Error('BENCH_POOL_SIZE must be <= 10 (PostgreSQL allows 100 connections in all)');
  return {
    tasks: intVar('BENCH_TASKS', 5000, 1),
    warmup: intVar('BENCH_WARMUP', 200, 0),
    concurrency: intVar('BENCH_CONCURRENCY', 64, 1),
    workerConcurrency: intVar('BENCH_WORKER_CONCURRENCY', 50, 1),
    poolSize,
    multi: boolVar('BENCH_MULTI', true),
    baselineMode: mode,
    bulkChunk: intVar('BENCH_BULK_CHUNK', 100, 1),
    pollMs: intVar('BENCH_POLL_MS', 20, 1),
    stallTimeoutMs: intVar('BENCH_STALL_TIMEOUT_MS', 60_000, 1000),
    client,
    profileDir: process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : undefined,
  };
}

/** The parameters of task `index` in a phase: distinct (a, b) for every task of a run. */
export function taskParameters(base: number, index: number): { a: number; b: number } {
  const a = base + index;
  return { a, b: 2 * a + 1 };
}

/** Base of the parameters of the warm-up tasks and of the measured tasks (they never overlap). */
export const WARMUP_BASE = 10_000_000;
export const MEASURED_BASE = 20_000_000;

/** Runs `job(0..count-1)` with at most `concurrency` of them in flight. */
export async function runBounded(
  count: number,
  concurrency: number,
  job: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const index = next++;
      await job(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface CompletionResult {
  /** performance.now() when the poll first saw every task finished. */
  doneAt: number;
  completed: number;
  failed: number;
  /** Most connections pg_stat_activity showed (every database) while waiting. */
  peakConnections: number;
  /** Statements the wait ran on `sql`: each one a committed transaction of its database. */
  queries: number;
}

/**
 * Waits until `target` rows of the tasks table are COMPLETED, by polling one cheap count query
 * every `pollMs` (never one request per task). Stops early if every row is finished but some
 * FAILED, and throws when nothing finishes for `stallTimeoutMs`.
 */
export async function waitForCompletion(
  sql: postgres.Sql,
  target: number,
  { pollMs, stallTimeoutMs }: Pick<BenchConfig, 'pollMs' | 'stallTimeoutMs'>,
): Promise<CompletionResult> {
  let lastProgress = performance.now();
  let lastFinished = -1;
  let peakConnections = 0;
  let lastConnectionSample = 0;
  let queries = 0;
  for (;;) {
    queries++;
    const [row] = await sql<{ completed: number; failed: number }[]>`
      select count(*) filter (where status = 'COMPLETED')::int as completed,
             count(*) filter (where status in ('FAILED', 'CANCELLED'))::int as failed
      from tasks`;
    const now = performance.now();
    const completed = row?.completed ?? 0;
    const failed = row?.failed ?? 0;
    if (completed + failed >= target) return { doneAt: now, completed, failed, peakConnections, queries };
    if (completed + failed !== lastFinished) {
      lastFinished = completed + failed;
      lastProgress = now;
    } else if (now - lastProgress > stallTimeoutMs) {
      throw new Error(
        `no progress for ${stallTimeoutMs} ms: ${completed} COMPLETED, ${failed} FAILED of ${target}`,
      );
    }
    if (now - lastConnectionSample > 250) {
      lastConnectionSample = now;
      queries++;
      const [connections] = await sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity`;
      peakConnections = Math.max(peakConnections, connections?.n ?? 0);
    }
    await sleep(pollMs);
  }
}

/** Cumulative counters of one database (pg_stat_database) and of the cluster's WAL. */
export interface DatabaseCounters {
  /** Committed transactions of the database (read-only ones included). */
  commits: number;
  /** Rows inserted + updated + deleted in the database. */
  written: number;
  /** WAL position of the whole cluster, in bytes: every database's writes, not only this one's. */
  wal: bigint;
}

/**
 * `database`'s counters, read on `sql` (a connection to any database of the cluster). Statistics
 * reach pg_stat_database up to a second after a backend's transaction: this waits that out first.
 */
export async function databaseCounters(sql: postgres.Sql, database: string): Promise<DatabaseCounters> {
  await sleep(1500);
  const [row] = await sql<{ commits: string; written: string; wal: string }[]>`
    select pg_stat_clear_snapshot() is null as cleared,
      (select xact_commit from pg_stat_database where datname = ${database})::text as commits,
      (select tup_inserted + tup_updated + tup_deleted from pg_stat_database where datname = ${database})::text as written,
      (pg_current_wal_lsn() - '0/0'::pg_lsn)::text as wal`;
  return { commits: Number(row?.commits), written: Number(row?.written), wal: BigInt(row?.wal ?? 0) };
}

export interface Verification {
  ok: boolean;
  problems: string[];
}

/**
 * Every expected task is a row, COMPLETED, whose output is its a + b; and the table holds no
 * other rows. `expected`: task id → a + b.
 */
export async function verifyResults(
  sql: postgres.Sql,
  expected: ReadonlyMap<string, number>,
): Promise<Verification> {
  const rows = await sql<{ id: string; status: string; input: unknown; output: unknown }[]>`
    select id, status, input, output from tasks`;
  const problems: string[] = [];
  const note = (problem: string) => {
    if (problems.length < 10) problems.push(problem);
    else if (problems.length === 10) problems.push('...');
  };
  let matched = 0;
  for (const row of rows) {
    const sum = expected.get(row.id);
    if (sum === undefined) {
      note(`unexpected row ${row.id}`);
      continue;
    }
    matched++;
    if (row.status !== 'COMPLETED') note(`${row.id}: status ${row.status}`);
    else if (row.output !== sum) note(`${row.id}: output ${JSON.stringify(row.output)}, expected ${sum}`);
  }
  if (matched !== expected.size) note(`${expected.size - matched} of ${expected.size} tasks have no row`);
  if (rows.length !== expected.size) note(`${rows.length} rows for ${expected.size} tasks`);
  return { ok: problems.length === 0, problems };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** Resident memory of a process, in MB (Linux /proc); NaN without a pid. */
export function rssMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  return kb / 1024;
}

/**
 * Writes a benchmark's results as JSON to `file` (its folder made if need be), after the date and
 * the machine (cores, CPU model), so that a later run can be compared with it.
 */
export function writeResults(file: string, results: Record<string, unknown>): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model };
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine, ...results }, null, 2)}\n`,
  );
}
