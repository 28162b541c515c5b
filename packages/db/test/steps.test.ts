import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { listenTaskChanges, type StepChange, type StepRecord, type Suspension } from '../src/index.ts';
import { useStore } from './fixture.ts';

// The store's side of durable steps (migration 0024): task_steps, wait, wake, and WAITING among
// the unfinished tasks.

const db = useStore(3);

const cancelled = { message: 'the task was cancelled', name: 'CancelledError', code: 'CANCELLED' };

/** A task claimed by a worker, with a handout (as the dispatcher would have written it). */
async function running(singletonKey?: string) {
  const id = randomUUID();
  const { created } = await db.store.insert({
    id,
    name: 'sum_two_numbers',
    input: { a: 1, b: 2 },
    maxAttempts: 3,
    ...(singletonKey ? { singletonKey } : {}),
  });
  expect(created).toBe(true);
  await db.client.sql`insert into task_handouts (task_id, owner_id, name, concurrency_key)
    values (${id}::uuid, 'default', 'sum_two_numbers', 'default')`;
  expect(await db.store.claim(id, 'w1', 1)).toMatchObject({ status: 'RUNNING' });
  return id;
}

/** Records a step of task `id`, in its task's week (its created_at read first). */
async function record(id: string, step: Omit<StepRecord, 'taskId' | 'taskCreatedAt'>) {
  const row = await db.store.get(id);
  if (!row) throw new Error(`no task ${id}`);
  return db.store.steps.record({ ...step, taskId: id, taskCreatedAt: row.createdAt });
}

const handouts = async (id: string) =>
  (await db.client.sql`select 1 from task_handouts where task_id = ${id}::uuid`).length;

describe('task_steps', () => {
  it('records a step once: a second completion gets the first result back; a failed one is overwritten', async () => {
    const id = await running();
    const startedAt = new Date();
    const first = await record(id, {
      stepId: 'a',
      seq: 0,
      status: 'completed',
      output: '42',
      startedAt,
    });
    expect(first).toMatchObject({ stepId: 'a', seq: 0, status: 'completed', output: '42' });
    const again = await record(id, {
      stepId: 'a',
      seq: 0,
      status: 'completed',
      output: 'other',
      startedAt,
    });
    expect(again.output).toBe('42'); // a string that looks like a number stays a string
    const error = { message: 'boom', name: 'Error', code: 'STEP_FAILED' };
    await record(id, { stepId: 'b', seq: 1, status: 'failed', error, startedAt });
    const b = await record(id, {
      stepId: 'b',
      seq: 1,
      status: 'completed',
      output: { x: [1] },
      startedAt,
    });
    expect(b).toMatchObject({ status: 'completed', output: { x: [1] }, error: null });
    expect((await db.store.steps.list(id)).map((s) => [s.stepId, s.seq, s.status])).toEqual([
      ['a', 0, 'completed'],
      ['b', 1, 'completed'],
    ]);
  });
});

/** The suspension of a handler's first step, a sleep until `until`, as the engine records it. */
function sleep(until: Date): Suspension {
  const at = until.toISOString();
  return {
    stepId: '$sleep:0',
    seq: 0,
    until,
    waitingFor: { kind: 'time', until: at },
    output: { until: at },
  };
}

describe('step announcements (0031)', () => {
  it("announces every step's write by its key, in commit order with the task's changes; the rows read back whole", async () => {
    const steps: StepChange[] = [];
    const order: string[] = [];
    const listener = await listenTaskChanges(
      db.client.sql,
      (c) => order.push(`task ${c.truncated ? c.status : c.row.status}`),
      () => {},
      () => true,
      (c) => {
        steps.push(c);
        order.push(`step ${c.stepId}`);
      },
    );
    try {
      const id = await running();
      const startedAt = new Date();
      await record(id, {
        stepId: 'a',
        seq: 0,
        status: 'completed',
        output: { n: 1 },
        startedAt,
      });
      const error = { message: 'boom', name: 'Error', code: 'HANDLER_ERROR' };
      await record(id, { stepId: 'b', seq: 1, status: 'failed', error, startedAt });
      await record(id, {
        stepId: 'c',
        seq: 2,
        status: 'completed',
        output: 'x'.repeat(9_000),
        startedAt,
      });
      await db.store.complete(id, 3);
      await new Promise((r) => setTimeout(r, 300));
      const mine = steps.filter((c) => c.taskId === id);
      // The key alone: nothing of the row (nor its task's tenant) is built for a step nobody watches.
      expect(mine).toEqual([
        { kind: 'step', taskId: id, stepId: 'a' },
        { kind: 'step', taskId: id, stepId: 'b' },
        { kind: 'step', taskId: id, stepId: 'c' },
      ]);
      const rows = await db.store.steps.getMany(mine);
      const byId = new Map(rows.map((r) => [r.stepId, r]));
      expect(byId.get('a')).toMatchObject({ taskId: id, seq: 0, status: 'completed', output: { n: 1 } });
      expect(byId.get('a')?.startedAt).toBeInstanceOf(Date);
      expect(byId.get('b')).toMatchObject({ status: 'failed', error, output: null });
      expect(byId.get('c')?.output).toBe('x'.repeat(9_000));
      expect(order.filter((o) => o.startsWith('step') || o === 'task COMPLETED').slice(-4)).toEqual([
        'step a',
        'step b',
        'step c',
        'task COMPLETED',
      ]);
    } finally {
      await listener.close();
    }
  });
});

describe('wait and wake', () => {
  it('wait: RUNNING → WAITING until the time, its handout gone and its sleep recorded, in one statement', async () => {
    const id = await running();
    const until = new Date(Date.now() + 300);
    const waiting = await db.store.wait(id, sleep(until));
    expect(waiting).toMatchObject({
      status: 'WAITING',
      waitingFor: { kind: 'time', until: until.toISOString() },
      runAfter: until,
      finishedAt: null,
    });
    expect(await handouts(id)).toBe(0);
    expect(await db.store.steps.list(id)).toMatchObject([
      { stepId: '$sleep:0', status: 'waiting', output: { until: until.toISOString() } },
    ]);
    // Not RUNNING any more: a second wait changes nothing.
    expect(await db.store.wait(id, sleep(until))).toBeUndefined();

    // Not due yet: nothing wakes; once due, it is PENDING again, without what it waited for.
    expect((await db.store.wakeDue(100)).map((r) => r.id)).not.toContain(id);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const woken = (await db.store.wakeDue(100)).find((r) => r.id === id);
    expect(woken).toMatchObject({ status: 'PENDING', waitingFor: null });
    expect(await db.store.claim(id, 'w2', 1)).toMatchObject({ status: 'RUNNING' });
  });

  it('a cancel asked for while the handler ran: wait refuses (the worker ends it CANCELLED)', async () => {
    const id = await running();
    await db.store.requestCancel(id);
    expect(await db.store.wait(id, sleep(new Date(Date.now() + 60_000)))).toBeUndefined();
    expect((await db.store.get(id))?.status).toBe('RUNNING');
  });

  it('cancelPending ends a WAITING task at once and clears what it waited for', async () => {
    const id = await running();
    await db.store.wait(id, sleep(new Date(Date.now() + 60_000)));
    const done = await db.store.cancelPending(id, cancelled);
    expect(done).toMatchObject({ status: 'CANCELLED', waitingFor: null });
    expect(done?.finishedAt).toBeInstanceOf(Date);
  });

  it('a bulk cancel ends a WAITING task at once too, with no job to remove', async () => {
    const id = await running();
    await db.store.wait(id, sleep(new Date(Date.now() + 60_000)));
    const [done] = await db.store.bulk.cancel(db.client.db, 'default', [id], cancelled);
    expect(done).toMatchObject({ id, status: 'CANCELLED', waitingFor: null, handedOut: false });
  });

  it('a WAITING task holds its singleton key, and retention deletes a finished task with its steps', async () => {
    const key = `single-${randomUUID()}`;
    const id = await running(key);
    await db.store.wait(id, sleep(new Date(Date.now() + 60_000)));
    const replay = await db.store.insert({
      id: randomUUID(),
      name: 'sum_two_numbers',
      input: {},
      singletonKey: key,
    });
    expect(replay).toMatchObject({ created: false, matched: 'singleton', row: { id } });

    await db.store.cancelPending(id, cancelled);
    await db.store.pruneFinished(new Date(Date.now() + 1000), 1000);
    expect(await db.store.get(id)).toBeUndefined();
    expect(await db.store.steps.list(id)).toEqual([]);
  });
});
