import { uuidv7Time } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import { startServer, type TaskerServer } from '../src/server.ts';

export interface Stack {
  env: TestEnv;
  server: TaskerServer;
  worker?: AppProcess;
  url: string;
  close(): Promise<void>;
}

/** The server in this process and, unless `worker: false`, a real worker process, on a private database and key prefix. */
export async function startStack(vars: Record<string, string> = {}, { worker = true } = {}): Promise<Stack> {
  const env = createTestEnv(vars);
  const parsed = loadEnv(env.vars);
  const server = await startServer(parsed, createLogger(parsed, 'test-server'));
  const workerProcess = worker ? await spawnApp('worker', env.vars) : undefined;
  return {
    env,
    server,
    worker: workerProcess,
    url: server.url,
    close: async () => {
      await workerProcess?.stop();
      await server.close();
      await env.cleanup();
    },
  };
}

export async function postJson(url: string, body: unknown) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function runTask(url: string, task_name: string, task_parameters: unknown): Promise<string> {
  const res = await postJson(`${url}/run-task`, { task_name, task_parameters });
  if (res.status !== 200) throw new Error(`run-task answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body.task_uuid as string;
}

export interface LegacyOutput {
  status: string;
  result: unknown;
  error: unknown;
}

/** Polls GET /get-task-output the way the old clients do: while status == PENDING. */
export async function awaitOutput(url: string, id: string, timeoutMs = 10_000): Promise<LegacyOutput> {
  return waitFor(
    async () => {
      const res = await fetch(`${url}/get-task-output?task_uuid=${id}`);
      const body = (await res.json()) as { task_output: LegacyOutput };
      return body.task_output.status === 'PENDING' ? undefined : body.task_output;
    },
    { timeoutMs, intervalMs: 10, what: `task ${id}` },
  );
}

/** A task's created_at, from its id: the service's ids are UUIDv7, and a task's created_at is its id's time. */
export function createdAtOf(id: string): Date {
  const at = uuidv7Time(id);
  if (!at) throw new Error(`${id} is no UUIDv7: its created_at is not its id's time`);
  return at;
}
