import * as states from '@tasker/states';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  canCancel,
  canRetry,
  createTaskerClient,
  TASK_STATUSES,
  TaskFailedError,
  type TaskStatus,
  type TaskUpdate,
  TERMINAL_STATUSES,
} from '../src/index.ts';

// No server: these read @tasker/states through the SDK, and follow a task over a fake SSE stream.

const ID = '0b5f0c1e-2a3b-4c5d-8e9f-0a1b2c3d4e5f';

function update(status: TaskStatus, version: number): TaskUpdate {
  const at = '2026-01-01T00:00:00.000Z';
  const finished = (TERMINAL_STATUSES as readonly string[]).includes(status);
  return {
    id: ID,
    name: 'sum_two_numbers',
    status,
    output: null,
    error:
      status === 'EXPIRED' ? { message: 'not started within its ttl_ms (1000 ms)', code: 'EXPIRED' } : null,
    attemptErrors: [],
    progress: null,
    attempts: 0,
    maxAttempts: 3,
    priority: 0,
    runAfter: null,
    cancelRequestedAt: null,
    createdAt: at,
    startedAt: null,
    finishedAt: finished ? at : null,
    updatedAt: at,
    version,
  } as unknown as TaskUpdate;
}

/**
 * A fetch that answers the onTaskUpdate subscription as tRPC's server does (SSE: `connected`, then
 * one tracked event per state) and keeps the stream open after the last one, as a live server does.
 */
function fakeServer(updates: TaskUpdate[]): typeof fetch {
  return async (input) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.includes('/trpc/onTaskUpdate')) throw new Error(`unexpected request ${url}`);
    const text = [
      `event: connected\ndata: ${JSON.stringify({ reconnectAfterInactivityMs: 60_000 })}\n\n`,
      ...updates.map((u) => `id: ${u.version}\ndata: ${JSON.stringify(u)}\n\n`),
    ].join('');
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(new TextEncoder().encode(text)),
    });
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  };
}

describe('statuses, from @tasker/states', () => {
  it('the SDK exports the same statuses and terminal set, EXPIRED among them', () => {
    expect(TASK_STATUSES).toEqual(states.TASK_STATUSES);
    expect(TERMINAL_STATUSES).toEqual(states.TERMINAL_STATUSES);
    expect(TERMINAL_STATUSES).toContain('EXPIRED');
    // The API's TaskStatus (from the server's router) is the one @tasker/states states.
    expectTypeOf<TaskStatus>().toEqualTypeOf<states.TaskStatus>();
  });

  it('canCancel and canRetry: EXPIRED can be retried, not cancelled', () => {
    expect(canRetry({ status: 'EXPIRED' })).toBe(true);
    expect(canCancel({ status: 'EXPIRED', cancelRequestedAt: null })).toBe(false);
    expect(canCancel({ status: 'PENDING', cancelRequestedAt: null })).toBe(true);
    expect(canCancel({ status: 'RUNNING', cancelRequestedAt: '2026-01-01T00:00:00Z' })).toBe(false);
  });

  it('TaskFailedError for EXPIRED: its own code and words', () => {
    const error = new TaskFailedError(ID, 'EXPIRED', { message: 'x', code: 'EXPIRED' } as never);
    expect(error).toMatchObject({
      status: 'EXPIRED',
      code: 'EXPIRED',
      message: `task ${ID} expired: not started within its ttl`,
    });
    expect(new TaskFailedError(ID, 'FAILED', null)).toMatchObject({ code: 'TASK_FAILED' });
    expect(new TaskFailedError(ID, 'CANCELLED', null)).toMatchObject({ code: 'CANCELLED' });
  });
});

// Without EXPIRED in the terminal set, the stream would be followed forever: fail fast instead.
describe('a task that ends EXPIRED', { timeout: 10_000 }, () => {
  const client = () =>
    createTaskerClient({
      url: 'http://tasker.invalid',
      fetch: fakeServer([update('PENDING', 1), update('EXPIRED', 2)]),
      retry: false,
    });

  it('updates() ends after it (a terminal status)', async () => {
    const seen: string[] = [];
    for await (const u of client().task(ID).updates()) seen.push(u.status);
    expect(seen).toEqual(['PENDING', 'EXPIRED']);
  });

  it('result() rejects with TaskFailedError, status and code EXPIRED', async () => {
    const error = await client()
      .task(ID)
      .result()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect(error).toMatchObject({
      status: 'EXPIRED',
      code: 'EXPIRED',
      taskId: ID,
      message: `task ${ID} expired: not started within its ttl`,
      taskError: { code: 'EXPIRED' },
    });
  });
});
