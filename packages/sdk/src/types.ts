import type {
  AppRouter,
  Preview,
  TaskSummary as ServerTaskSummary,
  TaskEvent,
  TaskStepEvent,
  TaskTypes,
  TaskView,
} from '@tasker/server';
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';

export type { AppRouter };

/** Every task type the server runs, by name. */
export type TaskName = keyof TaskTypes & string;
/** The parameters of a task type. */
export type TaskInput<N extends TaskName> = TaskTypes[N]['input'];
/** The result of a task type. */
export type TaskOutput<N extends TaskName> = TaskTypes[N]['output'];

export type TaskStatus = TaskView['status'];
export type TaskError = NonNullable<TaskView['error']>;
/** What a task's model calls used: summed over its attempts, and per attempt (`attempts`). */
export type TaskUsage = NonNullable<TaskView['usage']>;

/** A task's full record, its input and output typed by its name. */
export type Task<N extends TaskName = TaskName> = Omit<TaskView, 'name' | 'input' | 'output'> & {
  name: N;
  input: TaskInput<N>;
  /** The result once COMPLETED, else null. */
  output: TaskOutput<N> | null;
};

export type { Preview };

/**
 * One durable step of a task's handler (`ctx.step`, `ctx.sleep`), as `get(id)` shows it in `steps`:
 * its id, status (`completed`, `failed`, `waiting`), times, and a preview of its result.
 */
export type TaskStep = NonNullable<TaskView['steps']>[number];
/** What a `WAITING` task waits for (`waitingFor`): a time, for a sleep. */
export type WaitingFor = NonNullable<TaskView['waitingFor']>;
/**
 * A task's child tasks (`ctx.run`, `ctx.runMany`) counted (`children`, in `get(id)` and `list()`):
 * `total`, and `byStatus` with every status.
 */
export type ChildrenSummary = NonNullable<TaskView['children']>;
/** One child task as `get(id)` lists it in `childTasks` (the first 100): id, type, status, times. */
export type ChildTask = NonNullable<TaskView['childTasks']>[number];

/**
 * A task as `list()` gives it: the record's fixed fields, with a preview of its input and output
 * (`inputPreview`, `outputPreview`: their JSON text cut at 1 KiB, `truncated` when cut, and the
 * whole size in `bytes`), its error with the message cut, and no progress nor attempt errors. A
 * page stays small whatever the tasks hold; `get(id)` gives the full record.
 */
export type TaskSummary<N extends TaskName = TaskName> = Omit<ServerTaskSummary, 'name'> & { name: N };

/** One state of a task as it changes (the record without its input). */
export type TaskUpdate<N extends TaskName = TaskName> = Omit<TaskEvent, 'name' | 'output'> & {
  name: N;
  output: TaskOutput<N> | null;
};

/**
 * A durable step of a task as its activity stream sends it when the step is written (it completed,
 * failed, or a wait began): the step (`TaskStep`) with its task's id. A later event for the same
 * step id replaces the earlier one.
 */
export type { TaskStepEvent };

/**
 * One event of `task(id).activity()`: a new state of the task (`{type: "state", task}`, as
 * `updates()` gives it), or one of its durable steps written (`{type: "step", step}`).
 */
export type TaskActivity<N extends TaskName = TaskName> =
  | { type: 'state'; task: TaskUpdate<N> }
  | { type: 'step'; step: TaskStepEvent };

/**
 * The inputs of the router's procedures as they travel (snake_case, as the REST API has them).
 * The SDK's own options are camelCase and are mapped to these in one place (`wire.ts`).
 */
export type WireInputs = inferRouterInputs<AppRouter>;
/** The outputs of the router's procedures as they travel. */
export type WireOutputs = inferRouterOutputs<AppRouter>;

/** How to run a task: the third argument of `tasker.run(name, parameters, options)`. Every field is optional. */
export interface RunOptions {
  /** From 0 (the default) to 100: a task of higher priority runs first. */
  priority?: number;
  /** Start no sooner than this many milliseconds from now (at most 30 days). Not together with `runAt`. */
  delayMs?: number;
  /**
   * Start no sooner than this time, at most 30 days ahead: a `Date`, or an ISO 8601 date-time with
   * its offset (`2026-11-28T09:00:00Z`). Not together with `delayMs`.
   */
  runAt?: Date | string;
  /** Attempts in all, from 1 to 100 (default: the task type's own). */
  maxAttempts?: number;
  /**
   * An attempt running longer than this many milliseconds (100 ms to 1 day) is aborted and counts as
   * failed (default: the task type's own).
   */
  timeoutMs?: number;
  /**
   * Not started within this many milliseconds (100 ms to 30 days, counted from `runAt`/`delayMs`,
   * else from now), the task ends `EXPIRED` without running (default: the task type's, else never).
   */
  ttlMs?: number;
  /**
   * A task type that calls a model only: its identical calls (same tenant, model, messages,
   * parameters) within this many ms are answered from the cache, marked cached, at no cost; 0: no
   * cache (default: the type's `llm.cacheTtlMs`, else none). At most 7 days.
   */
  cacheTtlMs?: number;
  /**
   * The same key within the server's idempotency window returns the first task instead of making a
   * new one. It also makes `run()` safe to retry, so the client retries it on transient failures.
   */
  idempotencyKey?: string;
  /**
   * Tasks with one concurrency key share that key's concurrency limits (their task type's
   * `max_running_per_key`); default: the tenant. 1 to 200 characters, no control character.
   */
  concurrencyKey?: string;
  /**
   * While a task of this tenant with this key is `PENDING` or `RUNNING`, `run()` returns a handle on
   * that task instead of making a new one (`deduplicated` is then true). 1 to 200 characters.
   */
  singletonKey?: string;
  /**
   * Runs with the same `key` while its task has not started collapse into that one task: it starts
   * `delayMs` (0 to 1 day) after the last of them, with the last one's parameters and options, and
   * every caller gets its handle. Not with `delayMs`, `runAt`, `idempotencyKey` or `singletonKey`.
   */
  debounce?: DebounceOptions;
  /**
   * Labels to find the task by (`list({ tags })`): at most 10, each 1 to 64 characters with no
   * control character and no comma; duplicates are dropped.
   */
  tags?: string[];
  /** A JSON object of yours, kept with the task and shown with it: at most 4096 bytes as JSON. */
  metadata?: Record<string, unknown>;
  /**
   * When the task finishes, its final state is POSTed here at least once, signed with the tenant's
   * task webhook secret (`webhooks.rotateTaskSecret()`), as a webhook's deliveries are.
   */
  webhookUrl?: string;
}

/** One task of `tasker.runMany(tasks)`: its type, its parameters, and how to run it (no `debounce` in a batch). */
export type RunManyItem = {
  [N in TaskName]: { name: N; input: TaskInput<N> } & Omit<RunOptions, 'debounce'>;
}[TaskName];

/** `RunOptions.debounce`: the key whose runs collapse into one task, and how long after the last it starts. */
export interface DebounceOptions {
  /** 1 to 200 characters, no control character; per tenant. */
  key: string;
  /** The task starts this many milliseconds after the last run with the key (0 to 1 day). */
  delayMs: number;
}

/** Whether processing is paused (as a whole, and which task types on their own), and queue depths. */
export type QueueState = WireOutputs['getQueue'];

/** A task type the server runs: its name, description, JSON Schemas of parameters and result, defaults. */
export type TaskType = WireOutputs['listTaskTypes'][number];

/** Which processing `pauseQueue()` / `resumeQueue()` touch. */
export interface QueueOptions {
  /** Only this task type; without it, every task type. */
  taskName?: TaskName;
}

/**
 * What a JSONB containment search may give for a value of type T: an object any subset of its keys
 * (each one searched the same way, at any depth), an array some of its elements, a scalar itself.
 */
export type DeepPartial<T> = T extends readonly (infer E)[]
  ? readonly DeepPartial<E>[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/**
 * Filters and paging of `tasker.list(options)`. Every field is optional. With `name`, the payload
 * searches are typed by that task type's parameters and result.
 */
export interface ListOptions<N extends TaskName = TaskName> {
  /** Only tasks in this status, or in one of these statuses. */
  status?: TaskStatus | readonly TaskStatus[];
  /** Only tasks of this type, or of one of these types. */
  name?: N | readonly N[];
  /**
   * Only tasks whose parameters contain this (JSONB containment): `{ a: 1 }` finds every task whose
   * input has `a` equal to 1, whatever else it holds. It needs at least one value, not only empty
   * objects or arrays.
   */
  inputContains?: NoInfer<DeepPartial<TaskInput<N>>>;
  /** Only tasks whose result contains this (JSONB containment); a task with no result never matches. */
  outputContains?: NoInfer<DeepPartial<TaskOutput<N>>>;
  /** Only tasks carrying this tag, or every one of these tags. */
  tags?: string | readonly string[];
  /**
   * Only tasks whose metadata contains this object (JSONB containment): `{ team: 'a' }` finds every
   * task whose metadata has `team` equal to `'a'`, whatever else it holds.
   */
  metadataContains?: Record<string, unknown>;
  /** Only the child tasks of this task (`parentId`: those its handler ran with `ctx.run` / `ctx.runMany`). */
  parentId?: string;
  /** Only tasks created at or after this time (a `Date` or an ISO 8601 date-time with its offset). */
  createdAfter?: Date | string;
  /** Only tasks created before this time (a `Date` or an ISO 8601 date-time with its offset). */
  createdBefore?: Date | string;
  /** Page size, from 1 to 500 (default 50). */
  limit?: number;
  /** The `nextCursor` of the previous page, for the page after it. */
  cursor?: string;
}

/** A page of `tasker.list()`: tasks newest first, each a bounded summary (at most 16 KiB of JSON). */
export interface ListResult {
  tasks: TaskSummary[];
  /** Pass it as `cursor` for the next page; `null` on the last page. */
  nextCursor: string | null;
}

/**
 * Retries of idempotent calls on transient failures (network errors, HTTP 502, 503, 504): every
 * query, and `run()` when it carries an `idempotencyKey`. Other mutations (`cancel()`, `retry()`,
 * `run()` without a key) are never retried. The delay before retry n is `delayMs * 2^(n-1)`, at most
 * `maxDelayMs`, less up to a quarter at random (so that many clients do not retry in step).
 */
export interface RetryOptions {
  /** Attempts in all, the first one included (default 3). `1` never retries. */
  attempts?: number;
  /** The delay before the first retry, in milliseconds (default 200); it doubles at each retry. */
  delayMs?: number;
  /** The longest delay between two attempts, in milliseconds (default 1000). */
  maxDelayMs?: number;
}
