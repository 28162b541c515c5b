import { type TaskFilter as DbTaskFilter, isTerminal, type TaskRow } from '@tasker/db';
import { InvalidArgumentError } from './errors/invalid-argument.ts';
import { TaskNotFoundError } from './errors/task-not-found.ts';
import type { SubmitRequest, TaskLifecycle } from './lifecycle/index.ts';
import type { QueueState } from './queue.ts';
import {
  CHILD_LIST_LIMIT,
  NO_CHILDREN,
  type TaskEvent,
  type TaskSummary,
  type TaskView,
  toTaskSummary,
  toTaskView,
} from './view.ts';

/** Task types whose processing is paused, beside the state of the whole queue. */
export interface ProcessingState extends QueueState {
  pausedTypes: string[];
  /** Tasks WAITING (a sleep, child tasks, a wait token): they hold no slot and no job. */
  suspended: number;
}

export interface SubmitResult {
  id: string;
  /** True when an idempotency key answered with the task it created earlier. */
  replayed: boolean;
  /**
   * When a key answered with an existing task instead of a new one: `singleton` (the unfinished
   * task holding the singleton key) or `debounce` (the PENDING task holding the debounce key, with
   * this submission's input and start now).
   */
  deduplicated?: 'singleton' | 'debounce';
  /** The task as recorded (PENDING), or the earlier task on a replay: no second read needed. */
  task: TaskView;
}

/** What one item of a batch answers (POST /tasks/batch): its task's id, and whether it was created or matched. */
export interface BatchItemResult {
  id: string;
  /** True when the batch stored this item as a new task (a single submission's 201). */
  created: boolean;
  /**
   * Null when created; else why an existing task answers: `idempotency` (the task this idempotency
   * key made earlier, a replay) or `singleton` (the unfinished task holding the singleton key).
   */
  matched: 'idempotency' | 'singleton' | null;
}

/**
 * Which of the caller's tasks: the one filter of GET /tasks (statuses, types, creation times,
 * payload containment, tags, metadata containment), combined with AND. The store's `TaskFilter`
 * without its tenant, which every call names beside it.
 */
export type TaskFilter = Omit<DbTaskFilter, 'tenantId'>;

export interface ListFilter extends TaskFilter {
  /** `nextCursor` of the previous page. */
  cursor?: string;
  limit: number;
}

/** Tasks that finished in one minute: completed and failed (cancelled ones are neither). */
export interface MinuteCounts {
  /** The minute's start (ISO 8601). */
  minute: string;
  completed: number;
  failed: number;
}

export interface TaskPage {
  /** Rows with bounded previews of their payloads (toTaskSummary), never the whole records. */
  tasks: TaskSummary[];
  nextCursor: string | null;
}

/** The old service's view of a task: it knows only PENDING, COMPLETED and FAILED. */
export interface LegacyTaskOutput {
  status: 'PENDING' | 'COMPLETED' | 'FAILED';
  result: unknown;
  error: string | null;
}

/**
 * What the HTTP API (tRPC, REST, and the tools built on them) may ask: plain data in and out. The
 * tRPC context carries this interface, not the classes behind it, because the router's type is
 * published inside the SDK and must not drag the server's dependencies (BullMQ, drizzle) along.
 */
export interface TaskApi {
  /** Every task call is made for one tenant: another tenant's task is not found (404), like an unknown id. */
  submit(tenantId: string, request: Omit<SubmitRequest, 'tenantId'>): Promise<SubmitResult>;
  /** A batch, all or nothing: one answer per item, in order (`lifecycle/submit-many.ts`). */
  submitMany(
    tenantId: string,
    requests: readonly Omit<SubmitRequest, 'tenantId'>[],
  ): Promise<BatchItemResult[]>;
  get(tenantId: string, id: string): Promise<TaskView>;
  list(tenantId: string, filter: ListFilter): Promise<TaskPage>;
  /** `GET /get-task-output`: from the result cache when the task is finished, else PostgreSQL. */
  legacyOutput(tenantId: string, id: string): Promise<LegacyTaskOutput>;
  cancel(tenantId: string, id: string): Promise<TaskView>;
  retry(tenantId: string, id: string): Promise<TaskView>;
  /** The operator's: the queue is shared by every tenant. */
  pause(name?: string): Promise<ProcessingState>;
  resume(name?: string): Promise<ProcessingState>;
  queueState(): Promise<ProcessingState>;
  /** Completed and failed counts of this tenant's tasks, per minute over the last `minutes`, oldest first (every minute, zeros included). */
  throughput(tenantId: string, minutes: number): Promise<MinuteCounts[]>;
}

function encodeCursor(row: Pick<TaskRow, 'createdAt' | 'id'>): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (!id || !/^[0-9a-f-]{36}$/i.test(id) || Number.isNaN(createdAt.getTime())) {
    throw new InvalidArgumentError('cursor', 'not a cursor returned by this API');
  }
  return { createdAt, id };
}

function toLegacy(task: Pick<TaskEvent, 'status' | 'output' | 'error'>): LegacyTaskOutput {
  switch (task.status) {
    case 'COMPLETED':
      return { status: 'COMPLETED', result: task.output ?? null, error: null };
    case 'FAILED':
      return { status: 'FAILED', result: null, error: task.error?.message ?? 'task failed' };
    case 'CANCELLED':
      return { status: 'FAILED', result: null, error: task.error?.message ?? 'task was cancelled' };
    case 'EXPIRED':
      return {
        status: 'FAILED',
        result: null,
        error: task.error?.message ?? 'task expired before it started',
      };
    default:
      return { status: 'PENDING', result: null, error: null };
  }
}

/** The API over the lifecycle (state changes) and the store (reads). */
export function createTaskApi(lifecycle: TaskLifecycle): TaskApi {
  const { store, cache, queue, paused } = lifecycle.resources;
  const row = async (tenantId: string, id: string) => {
    const found = await store.get(id, tenantId);
    if (!found) throw new TaskNotFoundError(id);
    return found;
  };
  const queueState = async (): Promise<ProcessingState> => {
    // Waiting: jobs in the queue, and tasks still waiting in PostgreSQL for their turn.
    const [state, pausedTypes, held, suspended] = await Promise.all([
      queue.state(),
      paused.list(),
      store.dispatch.waiting(),
      store.dispatch.suspended(),
    ]);
    return {
      ...state,
      waiting: state.waiting + held.due,
      delayed: state.delayed + held.delayed,
      pausedTypes,
      suspended,
    };
  };
  return {
    submit: async (tenantId, request) => {
      const { row: created, replayed, deduplicated } = await lifecycle.submit({ ...request, tenantId });
      return { id: created.id, replayed, deduplicated, task: toTaskView(created) };
    },
    submitMany: async (tenantId, requests) =>
      (await lifecycle.submitMany(tenantId, requests)).map(({ row: task, created, matched }) => ({
        id: task.id,
        created,
        matched: matched ?? null,
      })),
    // The full record: the row and its durable steps, read side by side (the steps are shown only
    // once the row is found to be the tenant's).
    get: async (tenantId, id) => {
      // The row first: an unknown (or another tenant's) task costs one query, not four, and so does
      // each request while PostgreSQL is down (four at once per request filled the pool's queue:
      // the 503s came after 4 s instead of at once).
      const task = await row(tenantId, id);
      const [steps, summaries, list] = await Promise.all([
        lifecycle.stepsOf(id, task.createdAt),
        store.children.summaries([id]),
        store.children.list(id, CHILD_LIST_LIMIT),
      ]);
      return toTaskView(task, steps, { summary: summaries.get(id) ?? NO_CHILDREN, list });
    },
    list: async (tenantId, { cursor, limit, ...filter }) => {
      const rows = await store.list({
        ...filter,
        tenantId,
        cursor: cursor ? decodeCursor(cursor) : undefined,
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      const children = await store.children.summaries(page.map((r) => r.id));
      return {
        tasks: page.map((r) => toTaskSummary(r, children.get(r.id) ?? NO_CHILDREN)),
        nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
      };
    },
    legacyOutput: async (tenantId, id) => {
      const cached = await cache.get(id).catch(() => undefined);
      if (cached?.tenantId === tenantId && isTerminal(cached.event.status)) return toLegacy(cached.event);
      const found = await row(tenantId, id);
      return toLegacy({ status: found.status, output: found.output, error: found.error ?? null });
    },
    cancel: async (tenantId, id) => toTaskView(await lifecycle.cancel(id, tenantId)),
    retry: async (tenantId, id) => toTaskView(await lifecycle.retry(id, tenantId)),
    pause: async (name) => {
      await lifecycle.pause(name);
      return queueState();
    },
    resume: async (name) => {
      await lifecycle.resume(name);
      return queueState();
    },
    queueState,
    throughput: async (tenantId, minutes) => {
      const MINUTE = 60_000;
      const current = Math.floor(Date.now() / MINUTE) * MINUTE;
      const first = current - (minutes - 1) * MINUTE;
      const buckets = Array.from({ length: minutes }, (_, i) => ({
        minute: new Date(first + i * MINUTE).toISOString(),
        completed: 0,
        failed: 0,
      }));
      for (const row of await store.finishedPerMinute(tenantId, new Date(first))) {
        const bucket = buckets[Math.round((row.minute.getTime() - first) / MINUTE)];
        if (!bucket) continue; // a clock step between the two reads
        if (row.status === 'COMPLETED') bucket.completed += row.count;
        else bucket.failed += row.count;
      }
      return buckets;
    },
  };
}
