import { LimitStore } from '@tasker/db';
import { type AppProcess, type FakeOpenAI, spawnApp, startFakeOpenAI, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

let harness: Harness;
let fake: FakeOpenAI;
const workers: AppProcess[] = [];

/** One model call: three words, 100 ms apart (about 300 ms a task: one "slot length"). */
const SLOT_MS = 300;

beforeAll(async () => {
  fake = await startFakeOpenAI({ reply: () => 'one two three', chunkDelayMs: 100 });
  harness = await Harness.start({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL });
});
afterAll(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await harness?.close();
  await fake?.close();
});

const started = async (id: string) => {
  const row = await harness.store.get(id);
  return row?.startedAt ? row : undefined;
};

describe('fair dequeue across tenants', () => {
  it("a tenant's single task waits about one slot behind another tenant's backlog, not behind all of it; priority 100 does not pass another tenant", async () => {
    const vars = { ...harness.env.vars, WORKER_CONCURRENCY: '4' };
    workers.push(await spawnApp('worker', vars), await spawnApp('worker', vars));
    const flood = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        harness.api.submit('tenant-a', { name: 'query_chatgpt', input: { prompt: `a${i}` }, priority: 100 }),
      ),
    );
    // Let tenant A's backlog fill every slot and the queue's buffer first.
    await waitFor(async () => (await harness.counts()).RUNNING === 8, { timeoutMs: 20_000 });
    const b = await harness.api.submit('tenant-b', { name: 'sum_two_numbers', input: { a: 1, b: 2 } });
    const c = await harness.api.submit('tenant-c', { name: 'query_chatgpt', input: { prompt: 'c' } });
    const waits = await Promise.all(
      [b, c].map(async (t) => {
        const row = await waitFor(() => started(t.id), { timeoutMs: 30_000 });
        return (row.startedAt?.getTime() ?? 0) - row.createdAt.getTime();
      }),
    );
    // Behind 190 of A's tasks on 8 slots this would be about 7 s; a fair turn comes with the next
    // free slot (plus the dispatch pass and the queue's pickup, slower on a loaded machine).
    for (const wait of waits) expect(wait).toBeLessThan(2 * SLOT_MS + 1000);
    const aStillQueued = (await Promise.all(flood.map((t) => harness.store.get(t.id)))).filter(
      (row) => row?.status === 'PENDING',
    ).length;
    expect(aStillQueued).toBeGreaterThan(100);
    console.log(
      `[fairness] B waited ${waits[0]} ms, C ${waits[1]} ms, with ${aStillQueued} of A's tasks still queued`,
    );
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });
});

describe('the dispatcher through a PostgreSQL outage', () => {
  it('a worker cut from PostgreSQL for 3 s goes on dispatching and completing afterwards', async () => {
    const { startTcpProxy } = await import('@tasker/testing');
    const url = new URL(harness.env.databaseUrl);
    const proxy = await startTcpProxy(Number(url.port || 5432));
    url.port = String(proxy.port);
    const worker = await spawnApp('worker', { ...harness.env.vars, DATABASE_URL: url.toString() });
    workers.push(worker);
    try {
      const before = await harness.submitSums(50);
      await harness.waitForStatus('COMPLETED', 50, 20_000);
      await proxy.down();
      const during = await harness.submitSums(50);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      await proxy.up();
      await harness.waitForStatus('COMPLETED', 100 + before.length - 50 + during.length - 50, 30_000);
    } catch (error) {
      console.log(worker.output().split('\n').slice(-60).join('\n'));
      throw error;
    } finally {
      await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
      await proxy.close();
    }
  });
});

/** Samples how many tasks of each tenant run at once, every 20 ms, until stopped: the highest seen. */
function sampleRunning(): { stop: () => Promise<Map<string, number>> } {
  const peak = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const rows = await harness.db.sql<{ owner_id: string; n: number }[]>`
        select owner_id, count(*)::int as n from tasks where status = 'RUNNING' group by owner_id`;
      for (const r of rows) peak.set(r.owner_id, Math.max(peak.get(r.owner_id) ?? 0, r.n));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return peak;
    },
  };
}

describe('limits, enforced across two workers', () => {
  const limits = () => new LimitStore(harness.db.db);
  const slow = (tenant: string, n: number, extra: Record<string, unknown> = {}) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        harness.api.submit(tenant, { name: 'query_chatgpt', input: { prompt: `${tenant}${i}` }, ...extra }),
      ),
    );

  it('max_running is never exceeded (sampled), a change takes effect within 2 s, and a SIGKILLed worker gives its slots back', async () => {
    await limits().setTenant('lim-a', { maxRunning: 3 });
    const vars = { ...harness.env.vars, WORKER_CONCURRENCY: '10', WORKER_LOCK_MS: '2000' };
    workers.push(await spawnApp('worker', vars), await spawnApp('worker', vars));
    const sampler = sampleRunning();
    const tasks = await slow('lim-a', 30);
    const other = await slow('lim-b', 6);
    // The other tenant is not held by lim-a's limit: all six of its tasks run beside lim-a's three.
    await waitFor(async () =>
      (await Promise.all(other.map((t) => harness.store.get(t.id)))).every((r) => r?.startedAt),
    );
    // Raised at runtime: more of lim-a's tasks run within 2 s.
    const raisedAt = Date.now();
    await limits().setTenant('lim-a', { maxRunning: 6 });
    await waitFor(
      async () => {
        const [row] = await harness.db.sql<{ n: number }[]>`
          select count(*)::int as n from tasks where owner_id = 'lim-a' and status = 'RUNNING'`;
        return (row?.n ?? 0) > 3;
      },
      { timeoutMs: 5000 },
    );
    const raisedIn = Date.now() - raisedAt;
    // SIGKILL one worker mid-run: its tasks come back (after the lock expires) and every task completes.
    const killed = workers.shift();
    await killed?.stop('SIGKILL');
    await waitFor(
      async () =>
        (await Promise.all(tasks.map((t) => harness.store.get(t.id)))).every(
          (r) => r?.status === 'COMPLETED',
        ),
      { timeoutMs: 60_000 },
    );
    const peak = await sampler.stop();
    console.log(`[limits] peak RUNNING lim-a ${peak.get('lim-a')}, raised limit seen in ${raisedIn} ms`);
    expect(peak.get('lim-a')).toBeLessThanOrEqual(6);
    expect(peak.get('lim-a')).toBeGreaterThan(3);
    expect(raisedIn).toBeLessThan(2000 + 500);
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });

  it("starts_per_minute spaces a tenant's starts", async () => {
    await limits().setTenant('pace', { startsPerMinute: 120 });
    const vars = { ...harness.env.vars, WORKER_CONCURRENCY: '10' };
    workers.push(await spawnApp('worker', vars), await spawnApp('worker', vars));
    const paced = await Promise.all(
      Array.from({ length: 4 }, () =>
        harness.api.submit('pace', { name: 'sum_two_numbers', input: { a: 1, b: 1 } }),
      ),
    );
    const done = await waitFor(async () => {
      const rows = await Promise.all(paced.map((t) => harness.store.get(t.id)));
      return rows.every((r) => r?.status === 'COMPLETED') ? rows : undefined;
    });
    const starts = done.map((r) => r?.startedAt?.getTime() ?? 0).sort((a, b) => a - b);
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] ?? 0));
    console.log(`[limits] starts_per_minute 120: gaps ${gaps.join(', ')} ms`);
    // The dispatcher hands the tasks out 500 ms apart; a start is its claim, a little later, by a
    // jitter of its own (job delivery, the claim's batch): each gap keeps most of the 500 ms, and
    // the four starts span about three of them. Without the pace they start within a few ms.
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(300);
    expect((starts.at(-1) ?? 0) - (starts[0] ?? 0)).toBeGreaterThanOrEqual(1400);
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });
});
