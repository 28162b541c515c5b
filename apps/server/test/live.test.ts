import { spawn } from 'node:child_process';
import { request } from 'node:http';
import type { TaskEvent } from '@tasker/engine';
import { type FakeOpenAI, spawnApp, startFakeOpenAI, waitFor } from '@tasker/testing';
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { runTask, type Stack, startStack } from './helpers.ts';

let stack: Stack;
let fake: FakeOpenAI;
const REPLY = 'Why did the chicken cross the road? To get to the other side.';

beforeAll(async () => {
  // A model that streams its reply slowly, word by word.
  fake = await startFakeOpenAI({ reply: () => REPLY, chunkDelayMs: 120 });
  // 300 watchers of one task from this one address (AUTH_MODE=disabled: counted per client IP).
  stack = await startStack(
    { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL, MAX_STREAMS_PER_KEY: '1000' },
    { worker: false },
  );
});
afterAll(async () => {
  await stack?.worker?.stop();
  await stack?.close();
  await fake?.close();
});

/** The first test starts the worker while it watches; the others need it running. */
async function ensureWorker() {
  stack.worker ??= await spawnApp('worker', stack.env.vars);
}

interface SseEvent {
  id?: string;
  data: TaskEvent;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const id = /^id: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as TaskEvent;
      return { id, data };
    });
}

/** `curl -N <url>` until the server closes the stream. */
function curl(url: string, headers: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-N', '-s', '--max-time', '30', ...headers.flatMap((h) => ['-H', h]), url]);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    // 'close', not 'exit': 'exit' may come before the last of stdout has been read.
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}: ${out}`)),
    );
  });
}

describe('GET /tasks/{id}/events (plain SSE)', () => {
  it('curl -N shows PENDING → RUNNING → growing partial output → COMPLETED, then the stream ends', async () => {
    const id = await runTask(stack.url, 'query_chatgpt', { prompt: 'Tell me a joke.' });
    const streamed = curl(`${stack.url}/tasks/${id}/events`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    stack.worker = await spawnApp('worker', stack.env.vars); // the worker starts while we watch
    const events = parseSse(await streamed);
    const statuses = events.map((e) => e.data.status);
    expect(statuses[0]).toBe('PENDING');
    expect(statuses.at(-1)).toBe('COMPLETED');
    expect(statuses).toContain('RUNNING');
    const partials = events
      .map((e) => (e.data.progress as { partial?: string } | null)?.partial)
      .filter((p): p is string => typeof p === 'string' && p.length > 0);
    expect(new Set(partials).size).toBeGreaterThanOrEqual(3); // the reply grows in several steps
    for (let i = 1; i < partials.length; i++)
      expect((partials[i] ?? '').startsWith(partials[i - 1] ?? '')).toBe(true);
    expect(events.at(-1)?.data.output).toBe(REPLY);
    const versions = events.map((e) => Number(e.id));
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(versions.length);
  });

  it('a client that drops mid-task and reconnects with Last-Event-ID gets the terminal state, never older ones', async () => {
    await ensureWorker();
    const id = await runTask(stack.url, 'query_chatgpt', { prompt: 'again' });
    const firstTwo = await new Promise<SseEvent[]>((resolve, reject) => {
      const req = request(`${stack.url}/tasks/${id}/events`, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          const events = parseSse(text);
          if (events.length >= 2) {
            req.destroy(); // the client goes away mid-task
            resolve(events);
          }
        });
      });
      req.on('error', reject);
      req.end();
    });
    const lastSeen = firstTwo.at(-1)?.id ?? '';
    expect(firstTwo.at(-1)?.data.status).not.toBe('COMPLETED');
    await waitFor(async () => {
      const task = (await (await fetch(`${stack.url}/tasks/${id}`)).json()) as { status: string };
      return task.status === 'COMPLETED';
    });
    const resumed = parseSse(await curl(`${stack.url}/tasks/${id}/events`, [`Last-Event-ID: ${lastSeen}`]));
    expect(resumed.map((e) => e.data.status)).toEqual(['COMPLETED']);
    expect(Number(resumed[0]?.id)).toBeGreaterThan(Number(lastSeen));
    // Already holding the final version: the stream ends at once, with nothing older.
    const again = parseSse(
      await curl(`${stack.url}/tasks/${id}/events`, [`Last-Event-ID: ${resumed[0]?.id}`]),
    );
    expect(again).toEqual([]);
  });

  it('answers 404 for an unknown task and 400 for a malformed id, as JSON', async () => {
    const missing = await fetch(`${stack.url}/tasks/${crypto.randomUUID()}/events`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'Task not found', status: 404 });
    const bad = await fetch(`${stack.url}/tasks/nope/events`);
    expect(bad.status).toBe(400);
  });

  it('serves many watchers of one task over ONE listening connection, and each sees the end', async () => {
    await ensureWorker();
    const id = await runTask(stack.url, 'query_chatgpt', { prompt: 'crowd' });
    const watchers = 300;
    const streams = Array.from({ length: watchers }, () => curl(`${stack.url}/tasks/${id}/events`));
    const sql = postgres(stack.env.databaseUrl, { max: 1 });
    try {
      const database = new URL(stack.env.databaseUrl).pathname.slice(1);
      await waitFor(async () => {
        const [row] = await sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where datname = ${database} and query ilike 'listen %tasker_task_events%'`;
        return row?.n === 1;
      });
      const ends = await Promise.all(streams);
      for (const text of ends)
        expect(parseSse(text).at(-1)?.data.status, text.slice(-1500)).toBe('COMPLETED');
    } finally {
      await sql.end();
    }
  });
});

describe('tRPC subscription over SSE', () => {
  it('onTaskUpdate yields the current state, every change, and ends after the terminal one', async () => {
    const trpc = createTRPCClient<AppRouter>({
      links: [
        splitLink({
          condition: (op) => op.type === 'subscription',
          true: httpSubscriptionLink({ url: `${stack.url}/trpc`, EventSource }),
          false: httpBatchLink({ url: `${stack.url}/trpc` }),
        }),
      ],
    });
    await ensureWorker();
    const { task_uuid } = await trpc.runTask.mutate({
      task_name: 'query_chatgpt',
      task_parameters: { prompt: 'x' },
    });
    const seen: { id: string; status: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      const sub = trpc.onTaskUpdate.subscribe(
        { id: task_uuid },
        {
          onData: (event) => {
            seen.push({ id: event.id, status: event.data.status });
            if (event.data.status === 'COMPLETED') {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    expect(seen[0]?.status).toMatch(/PENDING|RUNNING/);
    expect(seen.at(-1)?.status).toBe('COMPLETED');
    expect(seen.map((s) => Number(s.id))).toEqual([...seen.map((s) => Number(s.id))].sort((a, b) => a - b));
  });

  it('onTasksUpdate streams the changes of every task, filtered by name', async () => {
    const trpc = createTRPCClient<AppRouter>({
      links: [httpSubscriptionLink({ url: `${stack.url}/trpc`, EventSource })],
    });
    await ensureWorker();
    const seen: TaskEvent[] = [];
    const sub = trpc.onTasksUpdate.subscribe(
      { names: ['sum_two_numbers'] },
      { onData: (event) => seen.push(event as TaskEvent) },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const sum = await runTask(stack.url, 'sum_two_numbers', { a: 1, b: 1 });
    await runTask(stack.url, 'find_longest_consecutive_letters', { string: 'aa' });
    await waitFor(() => seen.some((e) => e.id === sum && e.status === 'COMPLETED'));
    sub.unsubscribe();
    expect(seen.every((e) => e.name === 'sum_two_numbers')).toBe(true);
  });
});
