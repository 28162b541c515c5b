import { randomUUID } from 'node:crypto';
import {
  isTerminal,
  type Logger,
  type StatusBus,
  type TaskEvent,
  type TaskQueue,
  type TaskView,
  toTaskView,
} from '@tasker/core';
import type { TaskRow, TaskStore } from '@tasker/db';
import { getTaskDefinition, type TaskConfig } from '@tasker/tasks';
import { TRPCError } from '@trpc/server';
import { describeIssues, toPublicIssues } from './errors.ts';

const ENQUEUE_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The old service's view of a task: it knows only PENDING, COMPLETED and FAILED. */
export interface LegacyTaskOutput {
  status: 'PENDING' | 'COMPLETED' | 'FAILED';
  result: unknown;
  error: string | null;
}

function toLegacy(task: Pick<TaskEvent, 'status' | 'output' | 'error'>): LegacyTaskOutput {
  switch (task.status) {
    case 'COMPLETED':
      return { status: 'COMPLETED', result: task.output ?? null, error: null };
    case 'FAILED':
      return { status: 'FAILED', result: null, error: task.error?.message ?? 'task failed' };
    case 'CANCELLED':
      return { status: 'FAILED', result: null, error: task.error?.message ?? 'task was cancelled' };
    default:
      return { status: 'PENDING', result: null, error: null };
  }
}

/** What the procedures do, apart from HTTP: submission and reads. */
export class TaskService {
  constructor(
    private readonly store: TaskStore,
    private readonly queue: TaskQueue,
    private readonly bus: StatusBus,
    private readonly config: TaskConfig,
    private readonly log: Logger,
  ) {}

  /**
   * Validates, records (PostgreSQL first: it is the source of truth), then enqueues. If the enqueue
   * fails the task is still accepted: the worker's sweeper enqueues it once Redis answers again.
   */
  async submit(name: string, parameters: unknown): Promise<TaskRow> {
    const definition = getTaskDefinition(name);
    if (!definition) throw new TRPCError({ code: 'BAD_REQUEST', message: `Unknown task_name "${name}"` });
    const parsed = definition.input.safeParse(parameters);
    if (!parsed.success) {
      const issues = toPublicIssues(parsed.error.issues).map((i) => ({
        ...i,
        path: `task_parameters.${i.path}`,
      }));
      throw new TRPCError({ code: 'BAD_REQUEST', message: describeIssues(issues) });
    }
    const unavailable = definition.unavailable?.(this.config);
    if (unavailable) throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: unavailable });

    const row = await this.store.insert({
      id: randomUUID(),
      name,
      input: parsed.data,
      maxAttempts: definition.retry.attempts,
    });
    try {
      // Bounded: while Redis is away the request must not hang; the row is already safe.
      await withTimeout(this.queue.enqueue([row]), ENQUEUE_TIMEOUT_MS, 'enqueue');
    } catch (error) {
      this.log.warn(
        { taskId: row.id, err: error },
        'enqueue failed; the sweeper will enqueue the task later',
      );
    }
    return row;
  }

  async get(id: string): Promise<TaskView> {
    return toTaskView(await this.row(id));
  }

  private async row(id: string): Promise<TaskRow> {
    const row = await this.store.get(id);
    if (!row) throw new TRPCError({ code: 'NOT_FOUND', message: 'Task not found' });
    return row;
  }

  /** The seed route's answer: from the Redis result cache when the task is finished, else PostgreSQL. */
  async legacyOutput(id: string): Promise<LegacyTaskOutput> {
    const cached = await this.bus.cached(id).catch(() => undefined);
    if (cached && isTerminal(cached.status)) return toLegacy(cached);
    const row = await this.row(id);
    return toLegacy({ status: row.status, output: row.output, error: row.error ?? null });
  }
}
