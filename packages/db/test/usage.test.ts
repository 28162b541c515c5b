import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { addUsage, type LlmCall, listenTaskChanges, type TaskChange, UsageReports } from '../src/index.ts';
import { useStore } from './fixture.ts';

const db = useStore(5);

const running = async (tenantId = 'acme') => {
  const { row } = await db.store.insert({
    id: randomUUID(),
    tenantId,
    name: 'query_chatgpt',
    input: { prompt: 'hi' },
    maxAttempts: 3,
  });
  const claimed = await db.store.claim(row.id, 'w1', 1);
  if (!claimed) throw new Error('not claimed');
  return claimed;
};

const call = (taskId: string, extra: Partial<LlmCall> = {}): LlmCall => ({
  taskId,
  tenantId: 'acme',
  taskName: 'query_chatgpt',
  attempt: 1,
  baseUrl: 'http://127.0.0.1:1/v1',
  model: 'gpt-4o-mini',
  promptTokens: 10,
  completionTokens: 20,
  costUsd: 0.0000135,
  ...extra,
});

describe('addUsage', () => {
  it('sums every call, and each attempt under its own entry; a cost unknown once makes the sum unknown', () => {
    let usage = addUsage(null, {
      attempt: 1,
      model: 'a',
      promptTokens: 1,
      completionTokens: 2,
      costUsd: 0.1,
    });
    usage = addUsage(usage, { attempt: 1, model: 'a', promptTokens: 3, completionTokens: 4, costUsd: 0.2 });
    usage = addUsage(usage, { attempt: 2, model: 'b', promptTokens: 5, completionTokens: 6, costUsd: null });
    expect(usage).toEqual({
      model: 'b',
      promptTokens: 9,
      completionTokens: 12,
      costUsd: null,
      calls: 3,
      attempts: [
        { attempt: 1, model: 'a', promptTokens: 4, completionTokens: 6, costUsd: 0.3, calls: 2 },
        { attempt: 2, model: 'b', promptTokens: 5, completionTokens: 6, costUsd: null, calls: 1 },
      ],
    });
    // 0.1 + 0.2 is 0.30000000000000004 in floats: the sums keep 10 decimals.
    expect(usage.attempts[0]?.costUsd).toBe(0.3);
  });
});

describe('UsageStore.record', () => {
  it("writes the call to the ledger and adds it to the running task's usage, announced as a change", async () => {
    const task = await running();
    const heard: TaskChange[] = [];
    const listener = await listenTaskChanges(
      db.client.sql,
      (c) => heard.push(c),
      () => {},
    );
    try {
      const recorded = await db.store.recordUsage(call(task.id));
      expect(recorded?.version).toBe(task.version + 1);
      expect(recorded?.usage).toEqual({
        model: 'gpt-4o-mini',
        promptTokens: 10,
        completionTokens: 20,
        costUsd: 0.0000135,
        calls: 1,
        attempts: [
          {
            attempt: 1,
            model: 'gpt-4o-mini',
            promptTokens: 10,
            completionTokens: 20,
            costUsd: 0.0000135,
            calls: 1,
          },
        ],
      });
      const deadline = Date.now() + 5000;
      while (!heard.some((c) => !c.truncated && c.row.id === task.id) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const change = heard.find((c) => !c.truncated && c.row.id === task.id);
      expect(change && !change.truncated ? change.row.usage : undefined).toEqual(recorded?.usage);
    } finally {
      await listener.close();
    }
    const [ledger] = await db.client.sql`select * from task_llm_calls where task_id = ${task.id}`;
    expect(ledger).toMatchObject({
      tenant_id: 'acme',
      task_name: 'query_chatgpt',
      attempt: 1,
      base_url: 'http://127.0.0.1:1/v1',
      model: 'gpt-4o-mini',
      prompt_tokens: 10,
      completion_tokens: 20,
      cost_usd: '0.0000135000',
    });
  });

  it('counts every one of many calls made at once (the row is locked, no update lost)', async () => {
    const task = await running();
    await Promise.all(Array.from({ length: 12 }, () => db.store.recordUsage(call(task.id))));
    const row = await db.store.get(task.id);
    expect(row?.usage).toMatchObject({
      calls: 12,
      promptTokens: 120,
      completionTokens: 240,
      costUsd: 0.000162,
    });
  });

  it('keeps a call of a task no longer RUNNING in the ledger only', async () => {
    const task = await running();
    await db.store.complete(task.id, 'done');
    expect(await db.store.recordUsage(call(task.id, { costUsd: null }))).toBeUndefined();
    expect((await db.store.get(task.id))?.usage).toBeNull();
    const [{ count }] = (await db.client
      .sql`select count(*)::int as count from task_llm_calls where task_id = ${task.id}`) as unknown as [
      { count: number },
    ];
    expect(count).toBe(1);
  });
});

describe('UsageReports.report', () => {
  it('the groups and the total in one answer: the total counts a task of two groups once', async () => {
    const [one, two] = [randomUUID(), randomUUID()];
    const ledger = (
      tenantId: string,
      taskId: string,
      model: string,
      at: string,
      tokens: number,
      cost: number,
    ) =>
      db.client.sql`insert into task_llm_calls (tenant_id, task_id, task_name, attempt, base_url, model,
          prompt_tokens, completion_tokens, cost_usd, created_at)
        values (${tenantId}, ${taskId}, 'query_chatgpt', 1, 'http://model', ${model}, ${tokens}, 1, ${cost}, ${at})`;
    await ledger('rep', one, 'gpt-4o', '2026-05-01T10:00:00Z', 10, 0.5);
    await ledger('rep', one, 'gpt-4o-mini', '2026-05-02T10:00:00Z', 20, 0.25);
    await ledger('rep', two, 'gpt-4o-mini', '2026-05-02T11:00:00Z', 30, 0.125);
    await ledger('rep', two, 'gpt-4o-mini', '2026-06-01T00:00:00Z', 1000, 100); // after the range
    await ledger('rep-other', randomUUID(), 'gpt-4o', '2026-05-01T10:00:00Z', 1000, 100);
    const reports = new UsageReports(db.client.db);
    const range = { from: new Date('2026-05-01T00:00:00Z'), to: new Date('2026-06-01T00:00:00Z') };
    const total = { promptTokens: 60, completionTokens: 3, costUsd: 0.875, calls: 3, tasks: 2 };
    expect(await reports.report({ tenantId: 'rep', ...range, groupBy: 'model' })).toEqual({
      rows: [
        { key: 'gpt-4o', promptTokens: 10, completionTokens: 1, costUsd: 0.5, calls: 1, tasks: 1 },
        { key: 'gpt-4o-mini', promptTokens: 50, completionTokens: 2, costUsd: 0.375, calls: 2, tasks: 2 },
      ],
      total,
    });
    const byDay = await reports.report({ tenantId: 'rep', ...range, groupBy: 'day' });
    expect(byDay.rows.map((row) => [row.key, row.tasks])).toEqual([
      ['2026-05-01', 1],
      ['2026-05-02', 2],
    ]);
    expect(byDay.total).toEqual(total);
    // Every tenant's, by tenant; and a range without calls: no groups, a total of zeros.
    const all = await reports.report({ tenantId: undefined, ...range, groupBy: 'tenant' });
    expect(all.rows.filter((row) => row.key.startsWith('rep')).map((row) => row.key)).toEqual([
      'rep',
      'rep-other',
    ]);
    expect(all.total.calls).toBe(all.rows.reduce((n, row) => n + row.calls, 0));
    expect(
      await reports.report({
        tenantId: 'rep',
        from: new Date('2020-01-01T00:00:00Z'),
        to: new Date('2020-02-01T00:00:00Z'),
        groupBy: 'model',
      }),
    ).toEqual({ rows: [], total: { promptTokens: 0, completionTokens: 0, costUsd: 0, calls: 0, tasks: 0 } });
  });
});
