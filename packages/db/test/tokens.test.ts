import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashTokenSecret } from '../src/index.ts';
import { useStore } from './fixture.ts';

// The store's side of wait tokens (migration 0028): making one with its step, completing it once,
// the wake of its waiting task (tokenDone), a completion that comes while the task still runs,
// timing out by PostgreSQL's clock, and retention.

const db = useStore(3);

/** A task claimed by a worker, with a handout (as the dispatcher would have written it). */
async function running() {
  const id = randomUUID();
  await db.store.insert({ id, name: 'sum_two_numbers', input: { a: 1, b: 2 }, maxAttempts: 3 });
  await db.client.sql`insert into task_handouts (task_id, owner_id, name, concurrency_key)
    values (${id}::uuid, 'default', 'sum_two_numbers', 'default')`;
  expect(await db.store.claim(id, 'w1', 1)).toMatchObject({ status: 'RUNNING' });
  return id;
}

/** A token of `taskId` made at step `$token:0`, timing out in `timeoutMs`. */
async function token(taskId: string, timeoutMs = 60_000) {
  const id = randomUUID();
  const secret = `secret-${id}`;
  const result = { id, url: `http://x/token-callbacks/${secret}` };
  const recorded = await db.store.tokens.create({
    id,
    tenantId: 'default',
    taskId,
    taskCreatedAt: (await db.store.get(taskId))?.createdAt ?? new Date(),
    stepId: '$token:0',
    seq: 0,
    secretHash: hashTokenSecret(secret),
    timeoutAt: new Date(Date.now() + timeoutMs),
    result,
    startedAt: new Date(),
  });
  return { id, secret, recorded };
}

/** The task suspended on `tokenId` at step `$token-wait:1`, as the worker records it. */
const waitFor = (taskId: string, tokenId: string, until: Date) =>
  db.store.wait(taskId, {
    stepId: '$token-wait:1',
    seq: 1,
    until,
    waitingFor: { kind: 'token', token: tokenId, until: until.toISOString() },
    output: { token: tokenId, until: until.toISOString() },
  });

describe('wait tokens', () => {
  it('makes a token with its step in one statement; a second making of the step returns the first one', async () => {
    const task = await running();
    const first = await token(task);
    expect(first.recorded).toEqual({ id: first.id, url: `http://x/token-callbacks/${first.secret}` });
    const again = await token(task); // another run, the same step: the first token stands
    expect(again.recorded).toEqual(first.recorded);
    expect(await db.store.tokens.get(again.id)).toBeUndefined();
    const [row] = await db.client.sql`select secret_hash from wait_tokens where id = ${first.id}::uuid`;
    expect(row?.secret_hash).toBe(hashTokenSecret(first.secret));
    expect(row?.secret_hash).not.toContain(first.secret);
  });

  it('a completion wakes the WAITING task (tokenDone: PENDING, due now), once; the tenant scopes it', async () => {
    const task = await running();
    const { id } = await token(task);
    const until = new Date(Date.now() + 60_000);
    expect(await waitFor(task, id, until)).toMatchObject({ status: 'WAITING' });
    expect(await db.store.tokens.complete({ id, tenantId: 'another' }, 1)).toEqual({ outcome: 'not-found' });
    const done = await db.store.tokens.complete({ id, tenantId: 'default' }, { approved: true });
    expect(done).toMatchObject({
      outcome: 'completed',
      token: { status: 'completed', output: { approved: true } },
    });
    const woken = done.outcome === 'completed' ? done.woken : undefined;
    expect(woken).toMatchObject({ status: 'PENDING', waitingFor: null });
    expect(woken?.runAfter?.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(await db.store.tokens.complete({ id }, 2)).toMatchObject({ outcome: 'already-completed' });
  });

  it('a completion while the task still runs: once WAITING is committed its wait ends now, and the waker wakes it', async () => {
    const task = await running();
    const { id } = await token(task);
    const done = await db.store.tokens.complete({ id }, 'early');
    expect(done).toMatchObject({ outcome: 'completed', woken: undefined }); // RUNNING: nothing to wake
    expect(await waitFor(task, id, new Date(Date.now() + 60_000))).toMatchObject({ status: 'WAITING' });
    // Still WAITING (its attempt's job may still be queued), due now: the waker's next pass wakes it.
    const due = await db.store.tokens.dueIfCompleted(id);
    expect(due).toMatchObject({ status: 'WAITING', waitingFor: { kind: 'token', token: id } });
    expect(due?.runAfter?.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    const woken = (await db.store.wakeDue(100)).find((row) => row.id === task);
    expect(woken).toMatchObject({ status: 'PENDING', waitingFor: null });
    // An open token ends no wait.
    const other = await running();
    const open = await token(other);
    await waitFor(other, open.id, new Date(Date.now() + 60_000));
    expect(await db.store.tokens.dueIfCompleted(open.id)).toBeUndefined();
    expect((await db.store.wakeDue(100)).map((row) => row.id)).not.toContain(other);
    expect((await db.store.get(other))?.status).toBe('WAITING');
  });

  it('past its timeout a token is timed out (by PostgreSQL): settle marks it, a completion is refused', async () => {
    const task = await running();
    const { id, secret } = await token(task, 200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await db.store.tokens.complete({ secretHash: hashTokenSecret(secret) }, 1)).toMatchObject({
      outcome: 'timed-out',
    });
    expect(await db.store.tokens.settle(id)).toMatchObject({ status: 'timed_out' });
    expect(await db.store.tokens.complete({ id }, 1)).toMatchObject({ outcome: 'timed-out' });
  });

  it("a finished task's token cannot be completed; retention deletes a task's tokens with it", async () => {
    const task = await running();
    const { id } = await token(task);
    await waitFor(task, id, new Date(Date.now() + 60_000));
    const error = { message: 'the task was cancelled', name: 'CancelledError', code: 'CANCELLED' };
    expect(await db.store.cancelPending(task, error)).toMatchObject({ status: 'CANCELLED' });
    expect(await db.store.tokens.complete({ id }, 1)).toMatchObject({ outcome: 'task-finished' });
    await db.client.sql`update tasks set finished_at = now() - interval '2 days' where id = ${task}::uuid`;
    await db.store.maintenance.pruneFinished(new Date(Date.now() - 24 * 3600_000), 1000);
    expect(await db.store.tokens.get(id)).toBeUndefined();
  });
});
