import { randomUUID } from 'node:crypto';
import {
  isTerminal,
  type Logger,
  type PausedTypes,
  type QueueState,
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

/** Every task belongs to an owner; until API keys exist (a later issue) there is one. */
const OWNER = 'default';

/** Optional run options of a submission (the task definition gives the defaults). */
export interface RunOptions {
  priority?: number;
  delayMs?: number;
  runAt?: Date;
  maxAttempts?: number;
  timeoutMs?: number;
  idempotencyKey?: string;
}

export interface ProcessingState extends QueueState {
  /** Task types whose processing is paused (beside a pause of everything, `paused`). */
  pausedTypes: string[];
}

export interface SubmitResult {
  id: string;
  /** True when an idempotency key answered with the task it created earlier. */
  replayed: boolean;
}

export interface ListFilter {
  statuses?: TaskView['status'][];
  names?: string[];
  createdAfter?: Date;
  createdBefore?: Date;
  cursor?: string;
  limit: number;
}

function encodeCursor(row: TaskRow): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (!id || !/^[0-9a-f-]{36}$/i.test(id) || Number.isNaN(createdAt.getTime())) {
    throw new TRPCError({ code: 'BAD_REQUEST', message: 'cursor: not a cursor returned by this API' });
  }
  return { createdAt, id };
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
    private readonly paused: PausedTypes,
  ) {}

  /**
   * Validates, records (PostgreSQL first: it is the source of truth), then enqueues. If the enqueue
   * fails the task is still accepted: the worker's sweeper enqueues it once Redis answers again.
   */
  async submit(name: string, parameters: unknown, options: RunOptions = {}): Promise<SubmitResult> {
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

    const runAfter = options.runAt ?? (options.delayMs ? new Date(Date.now() + options.delayMs) : undefined);
    const { row, created } = await this.store.insert({
      id: randomUUID(),
      ownerId: OWNER,
      name,
      input: parsed.data,
      maxAttempts: options.maxAttempts ?? definition.retry.attempts,
      priority: options.priority ?? 0,
      timeoutMs: options.timeoutMs ?? null,
      idempotencyKey: options.idempotencyKey ?? null,
      runAfter: runAfter ?? null,
    });
    if (!created) return { id: row.id, replayed: true }; // an idempotent replay: already queued
    // A paused type's tasks wait in PostgreSQL; resuming the type enqueues them.
    if (await this.paused.has(name).catch(() => false)) return { id: row.id, replayed: false };
    try {
      // Bounded: while Redis is away the request must not hang; the row is already safe.
      await withTimeout(this.queue.enqueue([row]), ENQUEUE_TIMEOUT_MS, 'enqueue');
    } catch (error) {
      this.log.warn(
        { taskId: row.id, err: error },
        'enqueue failed; the sweeper will enqueue the task later',
      );
    }
    return { id: row.id, replayed: false };
  }

  /**
   * PENDING (queued or delayed): CANCELLED at once, and its job removed. RUNNING: the request is
   * recorded and sent to every worker; the one running it aborts the handler and ends it CANCELLED.
   * Finished: 409.
   */
  async cancel(id: string): Promise<TaskView> {
    const error = {
      message: 'the task was cancelled',
      name: 'CancelledError',
      code: 'CANCELLED',
      at: new Date().toISOString(),
    };
    const pending = await this.store.cancelPending(id, error);
    if (pending) {
      await this.bus.announce(pending).catch(() => {});
      await this.queue.remove(id).catch(() => {});
      return toTaskView(pending);
    }
    const running = await this.store.requestCancel(id);
    if (running) {
      await this.bus.announce(running).catch(() => {});
      await this.bus.requestCancel(id);
      return toTaskView(running);
    }
    const row = await this.row(id);
    throw new TRPCError({
      code: 'CONFLICT',
      message: `Task is already ${row.status}; only a PENDING or RUNNING task can be cancelled`,
    });
  }

  /**
   * A FAILED or CANCELLED task runs again under the same id (its earlier attempt errors are kept).
   * Any other status: 409.
   */
  async retry(id: string): Promise<TaskView> {
    const row = await this.store.retry(id);
    if (!row) {
      const current = await this.row(id);
      throw new TRPCError({
        code: 'CONFLICT',
        message: `Task is ${current.status}; only a FAILED or CANCELLED task can be retried`,
      });
    }
    await this.bus.announce(row).catch(() => {});
    // The old job (failed in BullMQ) holds the id: remove it, then queue the new attempt.
    await this.queue.remove(id);
    try {
      await withTimeout(this.queue.enqueue([row]), ENQUEUE_TIMEOUT_MS, 'enqueue');
    } catch (error) {
      this.log.warn({ taskId: id, err: error }, 'enqueue failed; the sweeper will enqueue the task later');
    }
    return toTaskView(row);
  }

  /**
   * Pauses or resumes processing: of every task type (BullMQ's own pause), or of one. A paused
   * type's queued jobs are taken out of Redis (their rows stay PENDING, nothing is lost) and new
   * ones are not queued; workers also skip its jobs. Resuming it enqueues its PENDING rows again.
   */
  async setPaused(paused: boolean, name?: string): Promise<ProcessingState> {
    if (name === undefined) {
      await (paused ? this.queue.pause() : this.queue.resume());
    } else if (paused) {
      await this.paused.add(name);
      await this.queue.removeQueuedOfType(name);
    } else {
      await this.paused.remove(name);
      let cursor: { createdAt: Date; id: string } | undefined;
      for (;;) {
        const rows = await this.store.pendingOfType(name, 500, cursor);
        await this.queue.enqueue(rows);
        const last = rows.at(-1);
        if (!last || rows.length < 500) break;
        cursor = { createdAt: last.createdAt, id: last.id };
      }
    }
    return this.queueState();
  }

  async queueState(): Promise<ProcessingState> {
    const [state, pausedTypes] = await Promise.all([this.queue.state(), this.paused.list()]);
    return { ...state, pausedTypes };
  }

  /** A page of tasks, newest first; `cursor` is the `next_cursor` of the previous page. */
  async list(filter: ListFilter): Promise<{ tasks: TaskView[]; nextCursor: string | null }> {
    const rows = await this.store.list({
      ownerId: OWNER,
      statuses: filter.statuses,
      names: filter.names,
      createdAfter: filter.createdAfter,
      createdBefore: filter.createdBefore,
      cursor: filter.cursor ? decodeCursor(filter.cursor) : undefined,
      limit: filter.limit + 1,
    });
    const page = rows.slice(0, filter.limit);
    const last = page.at(-1);
    return {
      tasks: page.map(toTaskView),
      nextCursor: rows.length > filter.limit && last ? encodeCursor(last) : null,
    };
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
