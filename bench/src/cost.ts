/**
 * `pnpm bench:cost`: what one task costs (issue 23), in each queue mode: Redis mode, then the
 * PostgreSQL-only mode (REDIS_URL empty). Throughput changes with the machine's load; the work one
 * task takes does much less, so these figures are what later changes are compared by.
 *
 * Each mode: one built server and one built worker process (as `pnpm bench`'s e2e runs them), a
 * database of their own and, in Redis mode, a redis-server of their own (a private one, so that
 * its CPU, commands and memory are this run's alone). Phases:
 * 1. warm-up: BENCH_WARMUP tasks, not measured;
 * 2. flow: BENCH_COST_TASKS `sum_two_numbers` tasks over REST (`POST /run-task`), submitted while the
 *    worker runs them, until every one is COMPLETED. Per task: CPU of the server, the worker, the
 *    PostgreSQL backends of the run's database and the redis-server (from /proc); committed
 *    transactions and rows written (pg_stat_database of the run's database, minus the benchmark's
 *    own polling) and WAL bytes (the cluster's); Redis commands (INFO commandstats); bytes over the
 *    wire: HTTP (counted by the client) and the service's PostgreSQL and Redis connections (socket
 *    counters, `ss`). And the end-to-end rate, secondary;
 * 3. queued: the worker stopped, as many tasks again submitted: Redis memory (used_memory) and
 *    database size per task queued and not yet run; then a fresh worker runs them.
 * Every task's output is then checked (COMPLETED, a + b). It prints a table, one column per mode,
 * and writes JSON (BENCH_COST_JSON). See bench/README.md ("pnpm bench:cost").
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDb } from '@tasker/db';
import {
  type AppProcess,
  createTestEnv,
  type RedisServer,
  spawnApp,
  startRedisServer,
} from '@tasker/testing';
import { Redis } from 'ioredis';
import type postgres from 'postgres';
import {
  type DatabaseCounters,
  databaseCounters,
  fmt,
  intVar,
  loadBenchConfig,
  MEASURED_BASE,
  table,
  type Verification,
  verifyResults,
  WARMUP_BASE,
  waitForCompletion,
  writeResults,
} from './common.ts';
import { fixedGroup, postgresBackends, redisServers, startCpuWindow } from './cpu.ts';
import { type QueueMode, submitter } from './e2e.ts';
import { nodeHttpClient } from './http-client.ts';
import { onInterrupt } from './interrupt.ts';

/** Parameters of the queued phase's tasks: distinct from the warm-up's and the flow's. */
const QUEUED_BASE = 30_000_000;

const config = loadBenchConfig();
const tasks = intVar('BENCH_COST_TASKS', 5000, 1);
const MODES = ['redis', 'postgres'] as const;
/** BENCH_COST_MODES: which queue modes to measure, comma-separated (`redis`, `postgres`); both by default. */
const modes = (process.env.BENCH_COST_MODES || MODES.join(','))
  .split(',')
  .map((m) => m.trim())
  .filter((m): m is QueueMode => {
    if ((MODES as readonly string[]).includes(m)) return true;
    throw new Error(`BENCH_COST_MODES: unknown mode "${m}" (redis, postgres)`);
  });
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jsonPath = path.resolve(
  process.env.BENCH_COST_JSON ||
    path.join(benchDir, 'results', `cost-${new Date().toISOString().slice(0, 19).replaceAll(':', '-')}.json`),
);

interface RedisCommand {
  command: string;
  calls: number;
  usec: number;
}

/** What one task costs in one mode. Per-task figures divide by the flow's accepted tasks. */
interface ModeCost {
  mode: QueueMode;
  tasks: number;
  /** CPU ms per task; redis null in the PostgreSQL-only mode. `client`: the benchmark's HTTP client, not the service. */
  cpuMs: { server: number; worker: number; postgres: number; redis: number | null; client: number };
  /** Committed transactions of the run's database (the benchmark's polling subtracted). */
  commits: number;
  /** Rows inserted + updated + deleted in the run's database. */
  rowsWritten: number;
  /** WAL of the whole cluster: includes whatever else wrote meanwhile. */
  walBytes: number;
  /**
   * WAL records of the run's database alone (pg_walinspect: records with a block of this database,
   * and the commit records of their transactions); null when the WAL was already recycled.
   */
  ownWalBytes: number | null;
  redis: {
    commands: number;
    /** The most called commands, calls and µs inside Redis per task. */
    top: { command: string; calls: number; usec: number }[];
    /** used_memory after BENCH_COST_TASKS tasks were submitted with no worker, minus before. */
    memoryPerQueuedTask: number;
    /** used_memory_peak during the flow, minus used_memory at its start: bytes, not per task. */
    flowPeakBytes: number;
  } | null;
  /** pg_database_size after the queued phase's submissions, minus before. */
  databaseBytesPerQueuedTask: number;
  /** Bytes per task; postgres/redis: the server's and worker's connections, both directions (null: not measured). */
  wire: {
    httpRequest: number;
    httpResponse: number;
    postgres: { sent: number; received: number } | null;
    redis: { sent: number; received: number } | null;
  };
  /** Secondary: tasks/s of the flow, first POST to last COMPLETED. */
  tasksPerSecond: number;
  seconds: number;
  loadAverage: { start: number[]; end: number[] };
  verification: Verification;
}

/** `INFO commandstats` as command → calls and µs. */
async function commandStats(redis: Redis): Promise<Map<string, RedisCommand>> {
  const stats = new Map<string, RedisCommand>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (match?.[1])
      stats.set(match[1], { command: match[1], calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

/** A numeric field of `INFO memory`. */
async function memoryField(redis: Redis, field: string): Promise<number> {
  const match = new RegExp(`^${field}:(\\d+)`, 'm').exec(await redis.info('memory'));
  return Number(match?.[1]);
}

const lsn = (bytes: bigint) => `${(bytes >> 32n).toString(16)}/${(bytes & 0xffffffffn).toString(16)}`;

/**
 * Bytes of the WAL records between two positions that belong to the database `sql` is connected to
 * (pg_walinspect must be installed there): those with a block of one of its relations, and the
 * commit and abort records of their transactions. Undefined when it cannot be read (a checkpoint
 * recycled it).
 */
async function databaseWal(sql: postgres.Sql, from: bigint, to: bigint): Promise<number | undefined> {
  try {
    const [row] = await sql<{ bytes: string }[]>`
      with records as (
        select xid, resource_manager, record_length, block_ref
        from pg_get_wal_records_info(${lsn(from)}::pg_lsn, ${lsn(to)}::pg_lsn)),
      mine as (
        select record_length, xid, block_ref ~ (' rel \\d+/' ||
          (select oid from pg_database where datname = current_database()) || '/') as ours
        from records),
      writers as (select distinct xid from mine where ours and xid <> '0'::xid)
      select sum(record_length)::text as bytes from mine
      where ours or xid in (select xid from writers)`;
    return Number(row?.bytes ?? 0);
  } catch {
    return undefined;
  }
}

type SocketBytes = Map<string, { peerPort: number; sent: number; received: number }>;

/**
 * Bytes each established TCP connection of `pids` to one of `peerPorts` has sent and received so
 * far (the kernel's counters, read with `ss`), by connection; undefined when `ss` cannot say.
 */
function socketBytes(pids: readonly number[], peerPorts: readonly number[]): SocketBytes | undefined {
  let output: string;
  try {
    const filter = `( ${peerPorts.map((port) => `dport = :${port}`).join(' or ')} )`;
    output = execFileSync('ss', ['-tinpH', 'state', 'established', filter], { encoding: 'utf8' });
  } catch {
    return undefined;
  }
  const sockets: SocketBytes = new Map();
  const lines = output.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (/^\s/.test(line) || !line.trim()) continue;
    // `Recv-Q Send-Q local peer users:(("name",pid=1,fd=2))`, then an indented line of counters.
    const [, , local, peer] = line.trim().split(/\s+/);
    const owners = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
    if (!owners.some((pid) => pids.includes(pid))) continue;
    const info = lines[i + 1] ?? '';
    sockets.set(`${local} ${peer}`, {
      peerPort: Number(peer?.slice(peer.lastIndexOf(':') + 1)),
      sent: Number(/bytes_sent:(\d+)/.exec(info)?.[1] ?? 0),
      received: Number(/bytes_received:(\d+)/.exec(info)?.[1] ?? 0),
    });
  }
  return sockets;
}

/** What the connections to `peerPort` carried between two readings (a connection opened since counts whole). */
function socketDelta(before: SocketBytes, after: SocketBytes, peerPort: number) {
  let sent = 0;
  let received = 0;
  for (const [key, now] of after) {
    if (now.peerPort !== peerPort) continue;
    sent += now.sent - (before.get(key)?.sent ?? 0);
    received += now.received - (before.get(key)?.received ?? 0);
  }
  return { sent, received };
}

async function measure(mode: QueueMode): Promise<ModeCost> {
  const loadStart = loadavg();
  const redisServer: RedisServer | undefined = mode === 'redis' ? await startRedisServer() : undefined;
  const env = createTestEnv({
    WORKER_CONCURRENCY: String(config.workerConcurrency),
    DATABASE_POOL_SIZE: String(config.poolSize),
    REDIS_URL: redisServer?.url ?? '',
  });
  const database = decodeURIComponent(new URL(env.databaseUrl).pathname.slice(1));
  const adminUrl = new URL(env.databaseUrl);
  adminUrl.pathname = '/postgres';
  const pgPort = Number(adminUrl.port || 5432);
  const apps: AppProcess[] = [];
  const teardown = async () => {
    await Promise.all(apps.map((app) => app.stop('SIGTERM')));
    await env.cleanup();
    await redisServer?.kill();
  };
  const removeInterrupt = onInterrupt(teardown);
  // Counters are read from another database, so that reading them commits nothing in the run's.
  const admin = createDb(adminUrl.toString(), { max: 1, name: 'bench-cost-stats' });
  const pollDb = createDb(env.databaseUrl, { max: 1, name: 'bench-cost-poller' });
  const redis = redisServer ? new Redis(redisServer.url, { maxRetriesPerRequest: 1 }) : undefined;
  try {
    // The server first: it migrates the new database.
    const server = await spawnApp('server', env.vars);
    apps.push(server);
    let worker = await spawnApp('worker', env.vars);
    apps.push(worker);
    if (!server.url) throw new Error('server started without telling its URL');
    const post = nodeHttpClient(config.concurrency);
    const { expected, submitErrors, submit } = submitter(
      post,
      [`${server.url}/run-task`],
      config.concurrency,
    );

    if (config.warmup > 0) {
      await submit(WARMUP_BASE, config.warmup);
      await waitForCompletion(pollDb.sql, expected.size, config);
    }

    // For the database's own share of the WAL (the extension goes with the run's database). The
    // checkpoints of other work (every DROP DATABASE forces one) recycle WAL within seconds: a
    // temporary replication slot keeps the flow's until it is read (gone with this session at worst).
    await pollDb.sql`create extension if not exists pg_walinspect`;
    const slot = `bench_cost_${database.replace(/\W/g, '_')}`.slice(0, 63);
    await pollDb.sql`select pg_create_physical_replication_slot(${slot}, true, true)`;

    // Flow: submit while the worker runs them. Every "after" is read once the statistics settled.
    const [poller] = await pollDb.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const servicePids = [server.child.pid, worker.child.pid].filter((pid) => pid !== undefined);
    const dbBefore: DatabaseCounters = await databaseCounters(admin.sql, database);
    await redis?.config('RESETSTAT'); // a private server: zeroes its commandstats and memory peak
    const memoryStart = redis ? await memoryField(redis, 'used_memory') : 0;
    const ports = redisServer ? [pgPort, redisServer.port] : [pgPort];
    const socketsBefore = socketBytes(servicePids, ports);
    const httpBefore = post.wireBytes();
    const backends = postgresBackends('postgres', database);
    const cpu = startCpuWindow([
      fixedGroup('server', [server.child.pid]),
      fixedGroup('worker', [worker.child.pid]),
      // The benchmark's own poller is not the service.
      { label: 'postgres', pids: () => backends.pids().filter((pid) => pid !== poller?.pid) },
      redisServer ? redisServers('redis', redisServer.port) : fixedGroup('redis', []),
      fixedGroup('client', [process.pid]),
    ]);
    const accepted = expected.size;
    const started = performance.now();
    await submit(MEASURED_BASE, tasks);
    const flowTasks = expected.size - accepted;
    const completion = await waitForCompletion(pollDb.sql, expected.size, config);
    const dbAfter = await databaseCounters(admin.sql, database);
    const usage = cpu.stop();
    const httpAfter = post.wireBytes();
    const socketsAfter = socketBytes(servicePids, ports);
    const commands = redis ? await commandStats(redis) : undefined;
    const flowPeak = redis ? (await memoryField(redis, 'used_memory_peak')) - memoryStart : 0;
    const ownWal = await databaseWal(pollDb.sql, dbBefore.wal, dbAfter.wal);
    await pollDb.sql`select pg_drop_replication_slot(${slot})`;

    // Queued: no worker, so the tasks wait (in PostgreSQL: the dispatcher hands them to the queue).
    await worker.stop('SIGTERM');
    const sizeQuery = () =>
      admin.sql<{ bytes: string }[]>`select pg_database_size(${database})::text as bytes`.then(([row]) =>
        Number(row?.bytes),
      );
    const queuedBefore = {
      redis: redis ? await memoryField(redis, 'used_memory') : 0,
      db: await sizeQuery(),
    };
    const beforeQueued = expected.size;
    await submit(QUEUED_BASE, tasks);
    const queuedTasks = expected.size - beforeQueued;
    const queuedAfter = { redis: redis ? await memoryField(redis, 'used_memory') : 0, db: await sizeQuery() };
    worker = await spawnApp('worker', env.vars);
    apps.push(worker);
    await waitForCompletion(pollDb.sql, expected.size, config);

    const verification = await verifyResults(pollDb.sql, expected);
    if (submitErrors.length > 0) {
      verification.ok = false;
      verification.problems.unshift(`${submitErrors.length} submissions failed, e.g. ${submitErrors[0]}`);
    }
    const perTask = (value: number) => value / flowTasks;
    const cpuMs = (label: string) =>
      perTask(1000 * (usage.groups.find((g) => g.label === label)?.seconds ?? 0));
    const wireTo = (port: number) => {
      if (!socketsBefore || !socketsAfter) return null;
      const { sent, received } = socketDelta(socketsBefore, socketsAfter, port);
      return { sent: perTask(sent), received: perTask(received) };
    };
    // The benchmark's own commands on its connection: INFO and CONFIG RESETSTAT.
    const serviceCommands = [...(commands?.values() ?? [])]
      .filter((c) => c.command !== 'info' && !c.command.startsWith('config'))
      .sort((x, y) => y.calls - x.calls);
    const seconds = (completion.doneAt - started) / 1000;
    return {
      mode,
      tasks: flowTasks,
      cpuMs: {
        server: cpuMs('server'),
        worker: cpuMs('worker'),
        postgres: cpuMs('postgres'),
        redis: redisServer ? cpuMs('redis') : null,
        client: cpuMs('client'),
      },
      commits: perTask(dbAfter.commits - dbBefore.commits - completion.queries),
      rowsWritten: perTask(dbAfter.written - dbBefore.written),
      walBytes: perTask(Number(dbAfter.wal - dbBefore.wal)),
      ownWalBytes: ownWal === undefined ? null : perTask(ownWal),
      redis: redis
        ? {
            commands: perTask(serviceCommands.reduce((sum, c) => sum + c.calls, 0)),
            top: serviceCommands.slice(0, 6).map((c) => ({
              command: c.command,
              calls: perTask(c.calls),
              usec: perTask(c.usec),
            })),
            memoryPerQueuedTask: (queuedAfter.redis - queuedBefore.redis) / queuedTasks,
            flowPeakBytes: flowPeak,
          }
        : null,
      databaseBytesPerQueuedTask: (queuedAfter.db - queuedBefore.db) / queuedTasks,
      wire: {
        httpRequest: perTask(httpAfter.sent - httpBefore.sent),
        httpResponse: perTask(httpAfter.received - httpBefore.received),
        postgres: wireTo(pgPort),
        redis: redisServer ? wireTo(redisServer.port) : null,
      },
      tasksPerSecond: flowTasks / seconds,
      seconds,
      loadAverage: { start: loadStart, end: loadavg() },
      verification,
    };
  } finally {
    removeInterrupt();
    redis?.disconnect();
    await pollDb.close();
    await admin.close();
    await teardown();
  }
}

function report(results: ModeCost[]): string {
  const col = (f: (r: ModeCost) => string) => results.map(f);
  const na = (value: number | null | undefined, digits = 0) =>
    value === null || value === undefined ? '–' : fmt(value, digits);
  const top = results.find((r) => r.redis)?.redis?.top ?? [];
  const rows: string[][] = [
    ['per task', ...col((r) => (r.mode === 'redis' ? 'Redis mode' : 'PostgreSQL-only mode'))],
    ['CPU ms: server', ...col((r) => fmt(r.cpuMs.server, 2))],
    ['CPU ms: worker', ...col((r) => fmt(r.cpuMs.worker, 2))],
    ['CPU ms: PostgreSQL backends (run DB)', ...col((r) => fmt(r.cpuMs.postgres, 2))],
    ['CPU ms: redis-server', ...col((r) => na(r.cpuMs.redis, 2))],
    [
      'CPU ms: the service (sum of the above)',
      ...col((r) => fmt(r.cpuMs.server + r.cpuMs.worker + r.cpuMs.postgres + (r.cpuMs.redis ?? 0), 2)),
    ],
    ['CPU ms: benchmark client (not the service)', ...col((r) => fmt(r.cpuMs.client, 2))],
    ['committed transactions (run DB)', ...col((r) => fmt(r.commits, 2))],
    ['rows written (run DB)', ...col((r) => fmt(r.rowsWritten, 2))],
    ['WAL bytes (whole cluster)', ...col((r) => fmt(r.walBytes))],
    ["WAL bytes (the run DB's records)", ...col((r) => na(r.ownWalBytes))],
    ['Redis commands', ...col((r) => na(r.redis?.commands, 2))],
    ...top.map((t) => [
      `  ${t.command} (calls, µs in Redis)`,
      ...col((r) => {
        const c = r.redis?.top.find((x) => x.command === t.command);
        return c ? `${fmt(c.calls, 2)}, ${fmt(c.usec, 1)}` : '–';
      }),
    ]),
    ['Redis memory per queued task (bytes)', ...col((r) => na(r.redis?.memoryPerQueuedTask))],
    ['database growth per queued task (bytes)', ...col((r) => fmt(r.databaseBytesPerQueuedTask))],
    [
      'HTTP bytes: request / response',
      ...col((r) => `${fmt(r.wire.httpRequest)} / ${fmt(r.wire.httpResponse)}`),
    ],
    [
      'PostgreSQL bytes: sent / received',
      ...col((r) =>
        r.wire.postgres ? `${fmt(r.wire.postgres.sent)} / ${fmt(r.wire.postgres.received)}` : '–',
      ),
    ],
    [
      'Redis bytes: sent / received',
      ...col((r) => (r.wire.redis ? `${fmt(r.wire.redis.sent)} / ${fmt(r.wire.redis.received)}` : '–')),
    ],
    [
      '(run) Redis memory peak in the flow, KB',
      ...col((r) => na(r.redis ? r.redis.flowPeakBytes / 1024 : null)),
    ],
    ['(run) tasks measured', ...col((r) => fmt(r.tasks))],
    [
      '(run) e2e rate, tasks/s (secondary)',
      ...col((r) => `${fmt(r.tasksPerSecond)} (${fmt(r.seconds, 1)} s)`),
    ],
    [
      '(run) load average at start / end',
      ...col(
        (r) =>
          `${fmt(r.loadAverage.start[0] ?? Number.NaN, 1)} / ${fmt(r.loadAverage.end[0] ?? Number.NaN, 1)}`,
      ),
    ],
  ];
  return table(rows);
}

async function main(): Promise<number> {
  console.log(
    `bench:cost: ${fmt(tasks)} sum_two_numbers tasks over REST per mode after ${fmt(config.warmup)} warm-up, ` +
      `1 server + 1 worker (WORKER_CONCURRENCY=${config.workerConcurrency}, DATABASE_POOL_SIZE=${config.poolSize}), ` +
      `${config.concurrency} requests in flight; ${cpus().length} cores, load average ${loadavg()
        .map((l) => fmt(l, 2))
        .join(' ')}`,
  );
  const results: ModeCost[] = [];
  for (const mode of modes) {
    console.log(`  ${mode === 'redis' ? 'Redis mode' : 'PostgreSQL-only mode'}...`);
    results.push(await measure(mode));
  }
  console.log(`\n${report(results)}\n`);
  let ok = true;
  for (const r of results) {
    if (r.verification.ok) continue;
    ok = false;
    console.log(
      `${r.mode}: VERIFICATION FAILED:\n${r.verification.problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  if (ok) console.log('verified: every task of both modes COMPLETED with output = a + b');
  writeResults(jsonPath, {
    settings: {
      tasks,
      warmup: config.warmup,
      concurrency: config.concurrency,
      workerConcurrency: config.workerConcurrency,
      poolSize: config.poolSize,
    },
    modes: results,
  });
  console.log(`written: ${jsonPath}`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
