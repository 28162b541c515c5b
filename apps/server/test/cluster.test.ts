/**
 * Tasker on a Redis Cluster (REDIS_CLUSTER_NODES, issue 24): three masters of the test's own on
 * loopback (@tasker/testing's startRedisCluster), a server in this process and a worker process on
 * them. Tasks run, a cancel reaches the worker by its signal, a rate limit is shared through the
 * cluster, a live stream follows a task, every key is under the hash tag in one slot; then the
 * master holding that slot is killed and started again while tasks are submitted at a steady
 * rate: every accepted task ends COMPLETED.
 *
 * Runs in the Redis mode, wherever redis-server and redis-cli are (Debian's redis-server package);
 * in CI it runs regardless, so that missing tools fail instead of skipping it.
 */
import { randomUUID } from 'node:crypto';
import { createLogger, loadEnv } from '@tasker/engine';
import {
  type AppProcess,
  createTestEnv,
  type FakeOpenAI,
  hasRedisClusterTools,
  onRedis,
  type RedisCluster,
  spawnApp,
  startFakeOpenAI,
  startRedisCluster,
  type TestEnv,
  waitFor,
} from '@tasker/testing';
import { Cluster } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';

interface Task {
  id: string;
  status: string;
  output: unknown;
  attempts: number;
}

const runs = onRedis && (hasRedisClusterTools() || Boolean(process.env.CI));

describe.runIf(runs)('on a Redis Cluster of three masters (REDIS_CLUSTER_NODES)', () => {
  let cluster: RedisCluster;
  let fake: FakeOpenAI;
  let env: TestEnv;
  let server: TaskerServer;
  let worker: AppProcess;
  let sql: postgres.Sql;
  /** The test's own view of the cluster, to look at the keys. */
  let look: Cluster;
  const limited: TaskerServer[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
    fake = await startFakeOpenAI({
      reply: () => 'a b c d e f g h i j k l m n o p q r s t',
      chunkDelayMs: 250,
    });
    env = createTestEnv({
      REDIS_CLUSTER_NODES: cluster.nodes,
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: fake.baseURL,
      // The database check is a minute away: a running task's cancel can only come by the signal.
      WORKER_CANCEL_CHECK_MS: '60000',
      // A job whose worker lost it while the master was away is found again soon.
      WORKER_LOCK_MS: '3000',
      SWEEP_INTERVAL_MS: '500',
      SWEEP_GRACE_MS: '1000',
    });
    const parsed = loadEnv(env.vars);
    server = await startServer(parsed, createLogger(parsed, 'cluster-test'));
    worker = await spawnApp('worker', env.vars);
    sql = postgres(env.databaseUrl, { max: 2, onnotice: () => {} });
    const [host, port] = (cluster.nodes.split(',')[0] ?? '').split(':');
    look = new Cluster([{ host: host ?? '127.0.0.1', port: Number(port) }]);
    look.on('error', () => {});
  }, 60_000);

  afterAll(async () => {
    look?.disconnect();
    await worker?.stop('SIGKILL');
    await Promise.all(limited.map((s) => s.close()));
    await server?.close();
    await sql?.end();
    await env?.cleanup();
    await fake?.close();
    await cluster?.stop();
  });

  const submit = (body: Record<string, unknown>, base = server.url) =>
    fetch(`${base}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const submitted = async (body: Record<string, unknown>): Promise<string> => {
    const res = await submit(body);
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  const getTask = async (id: string) => (await (await fetch(`${server.url}/tasks/${id}`)).json()) as Task;
  const statuses = async (ids: string[]) =>
    Object.fromEntries(
      (
        await sql<{ status: string; n: number }[]>`
          select status, count(*)::int as n from tasks where id = any(${ids}::uuid[]) group by status`
      ).map((row) => [row.status, row.n]),
    );

  /** Every key of the test's prefix, per master port. */
  async function keysByMaster(match: string): Promise<Map<number, string[]>> {
    const found = new Map<number, string[]>();
    for (const node of look.nodes('master')) {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, page] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
        cursor = next;
        keys.push(...page);
      } while (cursor !== '0');
      if (keys.length > 0) found.set(Number(node.options.port), keys);
    }
    return found;
  }

  it('runs tasks, with every key of Tasker under the hash tag {REDIS_PREFIX}, on the master of its slot', async () => {
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) => submitted({ name: 'sum_two_numbers', input: { a: i, b: 1 } })),
    );
    await waitFor(async () => (await statuses(ids)).COMPLETED === 20, {
      timeoutMs: 20_000,
      what: '20 tasks',
    });
    const task = await getTask(ids[3] ?? '');
    expect(task).toMatchObject({ status: 'COMPLETED', output: 4 });

    const prefix = env.vars.REDIS_PREFIX ?? '';
    expect(env.prefix).toBe(`{${prefix}}`);
    const tagged = await keysByMaster(`{${prefix}}:*`);
    const owner = await cluster.masterOf(`{${prefix}}`);
    expect([...tagged.keys()]).toEqual([owner.port]);
    expect(tagged.get(owner.port)).toEqual(expect.arrayContaining([`{${prefix}}:tasks:meta`]));
    // Nothing under the bare prefix: it would hash key by key, all over the cluster.
    expect(await keysByMaster(`${prefix}:*`)).toEqual(new Map());
  });

  it('cancels a RUNNING task by the cancel signal (PUBLISH reaches the worker subscribed on any node)', async () => {
    const id = await submitted({ name: 'query_chatgpt', input: { prompt: 'cancel me on a cluster' } });
    await waitFor(
      () => fake.requests.some((r) => r.body.messages?.[0]?.content === 'cancel me on a cluster'),
      {
        what: 'the model call',
      },
    );
    const asked = performance.now();
    const res = await fetch(`${server.url}/tasks/${id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(200);
    await waitFor(async () => (await getTask(id)).status === 'CANCELLED', { what: 'CANCELLED' });
    // The worker checks PostgreSQL only every 60 s here: the signal did it.
    expect(performance.now() - asked).toBeLessThan(3000);
    const request = fake.requests.find((r) => r.body.messages?.[0]?.content === 'cancel me on a cluster');
    await waitFor(() => request?.aborted === true, { what: 'the model request aborted' });
  });

  it('follows a task on a live stream (GET /tasks/{id}/events) to its end', async () => {
    const id = await submitted({ name: 'sum_two_numbers', input: { a: 20, b: 22 }, delay_ms: 300 });
    const res = await fetch(`${server.url}/tasks/${id}/events`);
    expect(res.status).toBe(200);
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body ?? []) text += decoder.decode(chunk as Uint8Array);
    expect(text).toContain('"status":"PENDING"');
    expect(text).toContain('"status":"COMPLETED"');
    expect(text).toContain('"output":42');
  });

  it('shares a rate limit between two servers through the cluster', async () => {
    const vars = loadEnv({ ...env.vars, RATE_LIMIT_PER_MINUTE: '4' });
    for (const name of ['rl-1', 'rl-2']) limited.push(await startServer(vars, createLogger(vars, name)));
    const [one, two] = limited as [TaskerServer, TaskerServer];
    const get = async (base: string) => (await fetch(`${base}/tasks/${randomUUID()}`)).status;
    expect([await get(one.url), await get(two.url), await get(one.url), await get(two.url)]).toEqual([
      404, 404, 404, 404,
    ]);
    expect(await get(one.url)).toBe(429);
    expect(await get(two.url)).toBe(429);
    const counters = await keysByMaster(`{${env.vars.REDIS_PREFIX}}:rate-limit:*`);
    expect([...counters.values()].flat()).toHaveLength(1);
  });

  it('one master restarted under a steady load of submissions: every accepted task ends COMPLETED', async () => {
    const owner = await cluster.masterOf(`{${env.vars.REDIS_PREFIX}}`);
    const accepted: string[] = [];
    const refused: number[] = [];
    let submitting = true;
    // 25 submissions a second, each waited for, while the master is away (a few seconds) and after.
    const load = (async () => {
      for (let i = 0; submitting; i++) {
        const started = Date.now();
        const res = await submit({ name: 'sum_two_numbers', input: { a: i, b: i } }).catch(() => undefined);
        if (res?.status === 201) accepted.push(((await res.json()) as { id: string }).id);
        else refused.push(res?.status ?? 0);
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 40 - (Date.now() - started))));
      }
    })();
    await waitFor(() => accepted.length >= 25, { what: 'the load to start' });
    await owner.stop('SIGKILL');
    const killedAt = accepted.length;
    // While it is away: not ready (a read of Tasker's key, which only that master answers; a PING
    // would be answered by another), and what needs the queue is a 503 after the retries.
    const readyz = await fetch(`${server.url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ dependencies: { postgres: 'ok', redis: 'unavailable' } });
    const asked = Date.now();
    const queue = await fetch(`${server.url}/queue`);
    expect({ status: queue.status, body: await queue.json() }).toMatchObject({
      status: 503,
      body: { error: 'Redis is unavailable' },
    });
    expect(Date.now() - asked).toBeLessThan(10_000);
    await owner.start();
    await cluster.waitUntilOk();
    const restartedAt = accepted.length;
    await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, { what: 'ready again' });
    await waitFor(() => accepted.length >= restartedAt + 50, {
      timeoutMs: 20_000,
      what: 'submissions after',
    });
    submitting = false;
    await load;

    // Submissions need PostgreSQL only: none was refused while the master was away.
    expect(refused).toEqual([]);
    expect(restartedAt).toBeGreaterThan(killedAt);
    const loadEnded = Date.now();
    await waitFor(async () => (await statuses(accepted)).COMPLETED === accepted.length, {
      timeoutMs: 40_000,
      intervalMs: 200,
      what: `${accepted.length} accepted tasks COMPLETED`,
    }).catch(async (error: unknown) => {
      // What the queue and the worker say, to tell a stuck worker from a slow one.
      const tag = `{${env.vars.REDIS_PREFIX}}:tasks`;
      const counts = await Promise.all(
        ['wait', 'prioritized', 'active', 'delayed', 'failed'].map(async (state) => {
          const key = `${tag}:${state}`;
          const type = await look.type(key);
          const n = type === 'list' ? await look.llen(key) : type === 'zset' ? await look.zcard(key) : 0;
          return `${state} ${n}`;
        }),
      );
      console.log(
        `now: ${JSON.stringify(await statuses(accepted))}; jobs: ${counts.join(', ')}\nworker:\n${worker.output().split('\n').slice(-40).join('\n')}`,
      );
      throw error;
    });
    const [wrong] = await sql<{ n: number }[]>`
      select count(*)::int as n from tasks
      where id = any(${accepted}::uuid[]) and output <> to_jsonb((input->>'a')::int + (input->>'b')::int)`;
    expect(wrong?.n).toBe(0);
    // The worker is still the one that started: it rode through the restart.
    expect(worker.child.exitCode).toBeNull();
    console.log(
      `master :${owner.port} restarted: ${accepted.length} accepted (${restartedAt - killedAt} while it was away), all COMPLETED ${Date.now() - loadEnded} ms after the last`,
    );
  });
});
