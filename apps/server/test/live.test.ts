import { spawn } from 'node:child_process';
import { request } from 'node:http';
import type { TaskActivity, TaskEvent, TaskStepEvent } from '@tasker/engine';
import { type FakeOpenAI, spawnApp, startFakeOpenAI, waitFor } from '@tasker/testing';
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { postJson, runTask, type Stack, startStack } from './helpers.ts';

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

/** A named SSE event (`event: step`) or a state (no name), in the order the stream sent them. */
type Sent =
  | { type: 'state'; id: string | undefined; task: TaskEvent }
  | { type: 'step'; step: TaskStepEvent };

function parseActivity(text: string): Sent[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as unknown;
      return /^event: step$/m.test(block)
        ? { type: 'step', step: data as TaskStepEvent }
        : { type: 'state', id: /^id: (.*)$/m.exec(block)?.[1], task: data as TaskEvent };
    });
}

/** An activity event in short: a step's id and status, or a state's status. */
const label = (
  e: Pick<TaskActivity, 'type'> & ({ step: TaskStepEvent } | { task: Pick<TaskEvent, 'status'> }),
) => ('step' in e ? `${e.step.id}:${e.step.status}` : e.task.status);

describe("a durable task's steps on its streams", () => {
  it('GET /tasks/{id}/events and onTaskActivity carry each step as it is written, in commit order with the states (WAITING with what it waits for)', async () => {
    await ensureWorker();
    const submitted = await postJson(`${stack.url}/tasks`, {
      name: 'summarize_documents',
      input: { documents: ['one', 'two'], require_approval: true },
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const id = submitted.body.id as string;
    const sse = curl(`${stack.url}/tasks/${id}/events`);
    const trpc = createTRPCClient<AppRouter>({
      links: [httpSubscriptionLink({ url: `${stack.url}/trpc`, EventSource })],
    });
    const viaTrpc: string[] = [];
    const trpcEnded = new Promise<void>((resolve, reject) => {
      const sub = trpc.onTaskActivity.subscribe(
        { id },
        {
          onData: (event) => {
            viaTrpc.push(label(event.data));
            if (event.data.type === 'state' && event.data.task.status === 'COMPLETED') {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    // Summarized, it waits for its approval: a token, visible to its tenant.
    const token = await waitFor(
      async () => {
        const task = (await (await fetch(`${stack.url}/tasks/${id}`)).json()) as TaskEvent;
        return task.status === 'WAITING' && task.waitingFor?.kind === 'token' ? task.waitingFor.token : false;
      },
      { timeoutMs: 30_000, what: 'the approval wait' },
    );
    const approved = await postJson(`${stack.url}/tokens/${token}/complete`, { output: { approved: true } });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);

    const sent = parseActivity(await sse);
    await trpcEnded;
    const steps = sent.flatMap((e) => (e.type === 'step' ? [e.step] : []));
    const states = sent.flatMap((e) => (e.type === 'state' ? [e.task] : []));
    expect(steps.every((s) => s.taskId === id)).toBe(true);
    // The fan-out's step, the token's making, its wait begun (waiting), then its wait over (completed).
    const waitStep = steps.filter((s) => s.id.startsWith('$token-wait:'));
    expect(waitStep.map((s) => s.status)).toEqual(expect.arrayContaining(['waiting', 'completed']));
    expect(steps.some((s) => s.id.startsWith('$token:') && s.status === 'completed')).toBe(true);
    expect(steps.filter((s) => !s.id.startsWith('$token')).length).toBeGreaterThan(0);
    // The token's callback URL (a secret) is never on the stream.
    expect(JSON.stringify(steps)).not.toContain('token-callbacks');
    expect(states.some((s) => s.status === 'WAITING' && s.waitingFor?.kind === 'token')).toBe(true);
    // In commit order: the wait's end before the state that resumed, the stream ending on COMPLETED.
    const last = sent.at(-1);
    expect(last?.type === 'state' && last.task.status).toBe('COMPLETED');
    const waitEnded = sent.findIndex(
      (e) => e.type === 'step' && e.step.id.startsWith('$token-wait:') && e.step.status === 'completed',
    );
    const completed = sent.findIndex((e) => e.type === 'state' && e.task.status === 'COMPLETED');
    expect(waitEnded).toBeGreaterThan(-1);
    expect(waitEnded).toBeLessThan(completed);
    // States keep their ids (versions, increasing); steps have none.
    const ids = sent.flatMap((e) => (e.type === 'state' ? [Number(e.id)] : []));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    // tRPC: the same steps, and the same end (the streams began at different moments).
    const sseSteps = sent.flatMap((e) => (e.type === 'step' ? [label(e)] : []));
    expect(new Set(viaTrpc.filter((l) => l.includes(':')))).toEqual(new Set(sseSteps));
    expect(viaTrpc.at(-1)).toBe('COMPLETED');
    expect(viaTrpc.findLastIndex((l) => /^\$token-wait:\d+:completed$/.test(l))).toBeLessThan(
      viaTrpc.length - 1,
    );
  }, 60_000);

  it("a finished task's stream sends its recorded steps, then its final state, and ends", async () => {
    const done = await waitFor(
      async () => {
        const res = await fetch(`${stack.url}/tasks?name=summarize_documents&status=COMPLETED`);
        const page = (await res.json()) as { tasks?: { id: string }[] };
        return page.tasks?.[0]?.id;
      },
      { what: 'a completed summarize_documents task' },
    );
    const sent = parseActivity(await curl(`${stack.url}/tasks/${done}/events`));
    expect(sent.filter((e) => e.type === 'step').length).toBeGreaterThan(2);
    expect(sent.filter((e) => e.type === 'state').map((e) => e.type === 'state' && e.task.status)).toEqual([
      'COMPLETED',
    ]);
  });
});
