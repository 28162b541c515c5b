import { ACTIVE_STATUSES, TASK_STATUSES, type TaskStatus, TERMINAL_STATUSES } from '@tasker/states';
import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

// Every status and transition is stated once, in @tasker/states; the store builds its SQL from it.
export {
  ACTIVE_STATUSES,
  isTerminal,
  TASK_STATUSES,
  type TaskStatus,
  TERMINAL_STATUSES,
  type TerminalStatus,
  UNFINISHED_STATUSES,
} from '@tasker/states';

/** `('A', 'B')` for a status list in SQL (constants only, never user input). */
const statusList = (statuses: readonly TaskStatus[]) =>
  sql.raw(`(${statuses.map((s) => `'${s}'`).join(', ')})`);

export const taskStatus = pgEnum('task_status', TASK_STATUSES);

/** What a failed attempt (or a failed or cancelled task) records. Never a stack trace: it may reach clients. */
export interface TaskError {
  message: string;
  name: string;
  /** Machine-readable reason, e.g. `TIMEOUT`, `CANCELLED`, `STALLED`, `HANDLER_ERROR`. */
  code: string;
  attempt?: number;
  at?: string;
}

/**
 * What a WAITING task waits for (`tasks.waiting_for`, set exactly while it is WAITING). `time`: a
 * sleep (`ctx.sleep`, `ctx.sleepUntil`), until `until` (also its `run_after`). `children`: its
 * child tasks (`ctx.run`, `ctx.runMany`, migration 0027), by id, until the last of them ends.
 * `token`: a wait token's completion (`ctx.waitForToken`, migration 0028), `token` its id, `until`
 * its timeout (the task goes back to PENDING then at the latest).
 */
export interface WaitingFor {
  kind: 'time' | 'children' | 'token';
  /** ISO 8601: when the wait ends and the task goes back to PENDING (a sleep; a token's timeout). */
  until?: string;
  /** The child tasks it waits for (kind `children`). */
  children?: string[];
  /** The wait token it waits for (kind `token`). */
  token?: string;
}

/** What model calls used: one attempt's, or a task's summed over its attempts. */
export interface UsageTotals {
  /** The model of the latest call. */
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** US dollars; null when a call's model has no price (its tokens are still counted). */
  costUsd: number | null;
  calls: number;
  /** Of the calls, those answered from the identical-prompt cache (no provider call, no tokens, no cost); absent: 0. */
  cachedCalls?: number;
  /** True when every call was answered from the cache (absent: false). */
  cached?: boolean;
}

/** A task's model usage (`tasks.usage`, migration 0025): summed over every attempt, and per attempt. */
export interface TaskUsage extends UsageTotals {
  /** Each attempt that called a model, in order (`attempt` as in `attempt_errors`). */
  attempts: (UsageTotals & { attempt: number })[];
}

/** Millisecond precision, like JavaScript's Date, so that keyset cursors round-trip exactly. */
const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date', precision: 3 });

/**
 * One row per accepted task. PostgreSQL is the source of truth; the BullMQ job whose id is `id`
 * is only how the row reaches a worker. Partitioned by RANGE (created_at), a partition a week
 * (migrations 0037-0039, docs/partitioning.md): the primary key is (id, created_at), and a task's
 * UUIDv7 id carries its created_at, so that a statement by id reads one partition.
 */
export const tasks = pgTable(
  'tasks',
  {
    id: uuid('id').notNull(),
    /** The tenant the task belongs to (its API key's). Every read and write is scoped to it. */
    tenantId: text('owner_id').notNull().default('default'),
    name: text('name').notNull(),
    input: jsonb('input').$type<unknown>().notNull(),
    status: taskStatus('status').notNull().default('PENDING'),
    /** The handler's output (JSON; `0`, `false` and `""` are kept as themselves). SQL NULL until COMPLETED. */
    output: jsonb('output').$type<unknown>(),
    error: jsonb('error').$type<TaskError>(),
    /** Every failed attempt's error, oldest first. */
    attemptErrors: jsonb('attempt_errors').$type<TaskError[]>().notNull().default(sql`'[]'::jsonb`),
    progress: jsonb('progress').$type<unknown>(),
    /** +1 on every change: the id of each published state, so that watchers never go backwards. */
    version: integer('version').notNull().default(0),
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull().default(1),
    priority: integer('priority').notNull().default(0),
    timeoutMs: integer('timeout_ms'),
    idempotencyKey: text('idempotency_key'),
    /**
     * Tasks with one key share that key's concurrency limit (`max_running_per_key` of their type);
     * the tenant's id when the submission gives none. Null only on rows older than the column.
     */
    concurrencyKey: text('concurrency_key'),
    /** While a task with this key is unfinished, a submission with the same key returns it (per tenant). */
    singletonKey: text('singleton_key'),
    /** Submissions with this key within the delay collapse into this task while it is PENDING (per tenant). */
    debounceKey: text('debounce_key'),
    runAfter: timestamptz('run_after'),
    /** While WAITING (and only then): what the task waits for; its wait ends at run_after (migration 0024). */
    waitingFor: jsonb('waiting_for').$type<WaitingFor>(),
    /**
     * The submitting request's W3C trace context (with tracing on), handed to the job when the
     * dispatcher queues the task, so that the worker's attempt joins the request's trace.
     */
    trace: jsonb('trace').$type<{ traceparent?: string; tracestate?: string }>(),
    /** The caller's labels (at most 10, each 1-64 characters, no duplicates); '{}' when none. */
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    /** The caller's JSON object (at most 4 KB serialised, checked at the edge); null when none. */
    metadata: jsonb('metadata').$type<Record<string, unknown>>(),
    /** How long the task may wait to start (submit's `ttl_ms`); null: forever. */
    ttlMs: integer('ttl_ms'),
    /** created_at + ttl_ms: a task not started by then ends EXPIRED (`expire` transition). */
    expiresAt: timestamptz('expires_at'),
    cancelRequestedAt: timestamptz('cancel_requested_at'),
    /** Which worker process ran the latest attempt (host:pid). */
    workerId: text('worker_id'),
    /** Submit's `webhook_url`: a delivery is stored for it when the task finishes (migration 0019). */
    webhookUrl: text('webhook_url'),
    /** The submission's cache_ttl_ms (migration 0029): its model calls may be answered from the identical-prompt cache. */
    llmCacheTtlMs: integer('llm_cache_ttl_ms'),
    /** The schedule whose tick made this task (no foreign key: a deleted schedule's tasks keep its id). */
    scheduleId: uuid('schedule_id'),
    /** The tick this task was made for: one task per (schedule_id, scheduled_for), tasks_schedule_tick_idx. */
    scheduledFor: timestamptz('scheduled_for'),
    /**
     * The task whose handler submitted this one (`ctx.run`, `ctx.runMany`; same tenant), or null: a
     * top-level task (migration 0027). No foreign key: retention deletes by age.
     */
    parentId: uuid('parent_id'),
    /** What its model calls used, summed and per attempt (`ctx.llm`, migration 0025); null: no call reported usage. */
    usage: jsonb('usage').$type<TaskUsage>(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    startedAt: timestamptz('started_at'),
    finishedAt: timestamptz('finished_at'),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    // Listing, newest first, per owner (cursor pagination on (created_at, id)). NULLS FIRST is what
    // a plain ORDER BY ... DESC means: with NULLS LAST the planner would sort instead of walking it.
    index('tasks_owner_created_idx').on(
      t.tenantId,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    // The same, filtered by status or by task type.
    index('tasks_owner_status_created_idx').on(
      t.tenantId,
      t.status,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index('tasks_owner_name_created_idx').on(
      t.tenantId,
      t.name,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    // Search by payload (`input @> $value`, `output @> $value`): jsonb_path_ops indexes only what
    // containment needs, smaller and faster than the default jsonb_ops. A selective search reads
    // its few matches from here; an unselective one walks tasks_owner_created_idx instead. New
    // entries wait in a pending list that every search reads through: at the default 4 MB that read
    // took 7 to 26 ms at 1M rows; 256 kB keeps it near a millisecond and costs writes little more
    // (200,000 inserts with this index alone: 3.9 s with 4 MB, 4.1 s with 256 kB, 9.0 s with
    // fastupdate off, 1.9 s without the index; a shared, noisy machine).
    index('tasks_input_idx').using('gin', t.input.op('jsonb_path_ops')).with({ gin_pending_list_limit: 256 }),
    // Filter by tag (`tags @> …`) and by metadata containment (`metadata @> …`), over the rows that
    // have some only (migration 0017), with the same small pending list.
    index('tasks_tags_idx')
      .using('gin', t.tags)
      .with({ gin_pending_list_limit: 256 })
      .where(sql`cardinality(${t.tags}) > 0`),
    index('tasks_metadata_idx')
      .using('gin', t.metadata.op('jsonb_path_ops'))
      .with({ gin_pending_list_limit: 256 })
      .where(sql`${t.metadata} is not null`),
    index('tasks_output_idx')
      .using('gin', t.output.op('jsonb_path_ops'))
      .with({ gin_pending_list_limit: 256 })
      .where(sql`${t.output} is not null`),
    // The recovery sweeper: rows that may hold a job (PENDING, RUNNING) and have not moved for a while.
    index('tasks_unfinished_idx')
      .on(t.updatedAt)
      .where(sql`${t.status} in ${statusList(ACTIVE_STATUSES)}`),
    // Retention and the finished-per-minute chart: finished tasks by age. `finished_at` is set
    // exactly when the status is terminal (tasks_finished_check), so the predicate names no status
    // and a new terminal status needs no new index.
    index('tasks_finished_idx').on(t.finishedAt).where(sql`${t.finishedAt} is not null`),
    // Stated with the terminal statuses, the status as text (migration 0024: a value added in the
    // migration's transaction cannot be used there as a task_status), so that a new unfinished
    // status needs no new check.
    check(
      'tasks_finished_check',
      sql`(${t.finishedAt} is null) = (${t.status}::text not in ${statusList(TERMINAL_STATUSES)})`,
    ),
    // The waker (WAITING → PENDING): waiting tasks by the end of their wait (waiting_for is set
    // exactly while WAITING).
    index('tasks_waiting_idx').on(t.runAfter).where(sql`${t.waitingFor} is not null`),
    // A task's children (migration 0027), and the parents waiting for theirs (the waker's pass).
    index('tasks_parent_idx').on(t.parentId, t.createdAt).where(sql`${t.parentId} is not null`),
    index('tasks_waiting_children_idx').on(t.id).where(sql`(${t.waitingFor} ->> 'kind') = 'children'`),
    // A task type's PENDING tasks: its max_queued count, and its counts on the limits routes.
    index('tasks_pending_name_idx').on(t.name).where(sql`${t.status} = 'PENDING'`),
    // Expiry: queued tasks that carry a deadline, soonest first.
    index('tasks_expiry_idx')
      .on(t.expiresAt)
      .where(sql`${t.status} = 'PENDING' and ${t.expiresAt} is not null`),
    // The dispatcher: each tenant's PENDING tasks in the order they are handed out (it skips those
    // handed out already, see taskHandouts: at most the queue's buffer and retries in their backoff).
    index('tasks_ready_idx')
      .on(t.tenantId, t.priority.desc().nullsFirst(), t.createdAt, t.id)
      .where(sql`${t.status} = 'PENDING'`),
    // The table's key: a unique index of a partitioned table holds the partition key.
    primaryKey({ name: 'tasks_pkey', columns: [t.id, t.createdAt] }),
    // A schedule's latest runs, newest first. Not unique (it would be only within a partition):
    // a tick's one task is task_keys' (migration 0035), as are the idempotency and singleton keys.
    index('tasks_schedule_tick_idx').on(t.scheduleId, t.scheduledFor).where(sql`${t.scheduleId} is not null`),
  ],
);

export type TaskRow = typeof tasks.$inferSelect;
export type NewTaskRow = typeof tasks.$inferInsert;

/**
 * The tasks handed to the queue (their job exists) and not finished: one narrow row per task in
 * flight, written by the dispatcher when it adds the job, deleted in the commit that finishes the
 * task (trigger `tasks_finished`, migration 0023) or when its job is taken back (a paused type). A task's
 * slot is held exactly while its handout exists; the PENDING tasks without one wait for their turn.
 * Not a state of the task (no version, no event): where its delivery stands. A row of its own rather
 * than a column of `tasks`, because rewriting the task's wide row (and every index entry of it) to
 * mark it was the dearest write of a task's life.
 */
export const taskHandouts = pgTable('task_handouts', {
  taskId: uuid('task_id').primaryKey(),
  tenantId: text('owner_id').notNull(),
  name: text('name').notNull(),
  /** The task's concurrency key (the tenant's id when it has none). */
  concurrencyKey: text('concurrency_key').notNull(),
  handedAt: timestamptz('handed_at').notNull().defaultNow(),
  // The job, in PostgreSQL-only mode (migration 0036; `JobQueries`): with Redis these keep their
  // defaults, BullMQ holding the job.
  /** Its place in the queue: 1 first (the dispatcher's order among its tenant's tasks in flight). */
  jobPriority: integer('job_priority').notNull().default(0),
  /** Not to be taken before this (a retry's backoff, a job delayed again); null: at once. */
  runAt: timestamptz('run_at'),
  maxAttempts: integer('max_attempts').notNull().default(1),
  /** Attempts that ended in an error and asked for a retry (BullMQ's attemptsMade). */
  attemptsMade: integer('attempts_made').notNull().default(0),
  /** The worker that holds the job, until `lockedUntil` (renewed while it runs); null: waiting. */
  lockedBy: text('locked_by'),
  lockedUntil: timestamptz('locked_until'),
  /** How often its lease lapsed (its worker died): past the limit the job fails. */
  stalls: integer('stalls').notNull().default(0),
  /** Why the queue gave up on the job (the sweeper then fails the task); null: it has not. */
  failedReason: text('failed_reason'),
  trace: jsonb('trace').$type<{ traceparent?: string; tracestate?: string }>(),
});

/** Whether the whole queue is paused, in PostgreSQL-only mode (migration 0036): one row. */
export const queueState = pgTable(
  'queue_state',
  {
    id: boolean('id').primaryKey().default(true),
    paused: boolean('paused').notNull().default(false),
  },
  (t) => [check('queue_state_one_row', sql`${t.id}`)],
);

/** What a task_keys row holds (migration 0035). */
export const TASK_KEY_KINDS = ['idempotency', 'singleton', 'debounce', 'schedule'] as const;
export type TaskKeyKind = (typeof TASK_KEY_KINDS)[number];

/**
 * The unique keys of tasks (migration 0035; docs/partitioning.md): one row per key held, naming its
 * holder by (task_id, task_created_at). Kept by triggers on `tasks`: a keyed insert claims its keys
 * (a key held already skips the row), a task's end frees its singleton key and a retry takes it
 * again, leaving PENDING frees a debounce key; an idempotency key lives until its window passes
 * (`freeExpiredKeys`), an idempotency or tick key until its task is deleted (`pruneFinished`).
 */
export const taskKeys = pgTable(
  'task_keys',
  {
    tenantId: text('owner_id').notNull(),
    kind: text('kind').$type<TaskKeyKind>().notNull(),
    key: text('key').notNull(),
    taskId: uuid('task_id').notNull(),
    taskCreatedAt: timestamptz('task_created_at').notNull(),
  },
  (t) => [
    primaryKey({ name: 'task_keys_pkey', columns: [t.tenantId, t.kind, t.key] }),
    index('task_keys_task_idx').on(t.taskId),
    index('task_keys_created_idx').on(t.taskCreatedAt),
    check('task_keys_kind_check', sql`${t.kind} in ('idempotency', 'singleton', 'debounce', 'schedule')`),
  ],
);

/** How far a step got: `completed` (its output recorded), `failed` (its last run threw: it runs again), `waiting` (a sleep not over yet). */
export const STEP_STATUSES = ['completed', 'failed', 'waiting'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/**
 * The steps of durable handlers (`ctx.step`, `ctx.sleep`; migration 0024): one row per step a task's
 * handler reached, keyed by the handler's own step id. A later run of the task answers a completed
 * step from `output` without running it. Partitioned by RANGE (task_created_at), the weeks of the
 * tasks (migrations 0040-0042): a week of steps is dropped with its week of tasks; a step of a task
 * pruned row by row (`pruneFinished`) is deleted with it.
 */
export const taskSteps = pgTable(
  'task_steps',
  {
    taskId: uuid('task_id').notNull(),
    stepId: text('step_id').notNull(),
    /** The step's place in the handler's order, 0 first: a run that reaches its steps in another order fails. */
    seq: integer('seq').notNull(),
    status: text('status').$type<StepStatus>().notNull(),
    /** The step's JSON result once completed (a sleep's: `{until}`); null before. */
    output: jsonb('output').$type<unknown>(),
    /** The last error of a failed step; null otherwise. */
    error: jsonb('error').$type<TaskError>(),
    startedAt: timestamptz('started_at').notNull(),
    finishedAt: timestamptz('finished_at'),
    /**
     * The partition key (migrations 0040-0042): `tasker_step_time` of the task's created_at, so that
     * a step is in the week of its task and goes with it; '-infinity' for a task created before
     * the cutover (the legacy partition).
     */
    taskCreatedAt: timestamptz('task_created_at').notNull(),
  },
  (t) => [
    primaryKey({ name: 'task_steps_pkey', columns: [t.taskId, t.stepId, t.taskCreatedAt] }),
    check('task_steps_status_check', sql`${t.status} in ('completed', 'failed', 'waiting')`),
  ],
);
/** A step as the service reads it: without its partition key (a storage detail: '-infinity' in the legacy partition). */
export type TaskStepRow = Omit<typeof taskSteps.$inferSelect, 'taskCreatedAt'>;

/**
 * Every model call that reported usage, one row each (`ctx.llm`; migration 0025): the ledger that
 * usage reports and budgets read, by tenant and time. No foreign key: it outlives its task's
 * retention (a month's spend is still a month's spend once the tasks are pruned).
 */
export const taskLlmCalls = pgTable(
  'task_llm_calls',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    tenantId: text('tenant_id').notNull(),
    taskId: uuid('task_id').notNull(),
    taskName: text('task_name').notNull(),
    attempt: integer('attempt').notNull(),
    /** The provider's base URL. */
    baseUrl: text('base_url').notNull(),
    /** The model asked for (the price table's key). */
    model: text('model').notNull(),
    promptTokens: integer('prompt_tokens').notNull(),
    completionTokens: integer('completion_tokens').notNull(),
    /** US dollars from the price table of the worker that recorded it; null: the model has no price. */
    costUsd: numeric('cost_usd', { precision: 20, scale: 10, mode: 'number' }),
    /** Answered from the identical-prompt cache (migration 0029): no provider call, cost 0. */
    cached: boolean('cached').notNull().default(false),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    // A tenant's calls by time (its usage report, its budget's window); every tenant's by time.
    index('task_llm_calls_tenant_created_idx').on(t.tenantId, t.createdAt),
    index('task_llm_calls_created_idx').on(t.createdAt),
  ],
);
export type TaskLlmCallRow = typeof taskLlmCalls.$inferSelect;

/**
 * The identical-prompt cache (migration 0029): a reply stored per tenant under a SHA-256 of the
 * model, messages and parameters of its call, until `expires_at`.
 */
export const llmCache = pgTable(
  'llm_cache',
  {
    tenantId: text('tenant_id').notNull(),
    key: text('key').notNull(),
    model: text('model').notNull(),
    reply: text('reply').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    expiresAt: timestamptz('expires_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.key], name: 'llm_cache_pkey' }),
    index('llm_cache_expires_idx').on(t.expiresAt),
    index('llm_cache_tenant_created_idx').on(t.tenantId, t.createdAt),
  ],
);

/**
 * The scopes an API key may carry: `tasks:write` and `tasks:read` (its tenant's tasks), `admin` (its
 * own tenant: its keys), `operator` (across tenants: the shared queue, any tenant's keys; made only
 * by the CLI against the database or by another operator key).
 */
export const API_KEY_SCOPES = ['tasks:write', 'tasks:read', 'admin', 'operator'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/**
 * API keys. The key itself (`tsk_...`) is shown once, at creation; only its SHA-256 is stored (a
 * 256-bit random secret needs no slow hash). `prefix` (the first characters) tells keys apart in
 * listings.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    name: text('name').notNull(),
    /** Hex SHA-256 of the whole key. */
    hash: text('hash').notNull(),
    prefix: text('prefix').notNull(),
    scopes: text('scopes').array().$type<ApiKeyScope[]>().notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    /** Written at most once a minute per key, never once per request. */
    lastUsedAt: timestamptz('last_used_at'),
    expiresAt: timestamptz('expires_at'),
    revokedAt: timestamptz('revoked_at'),
    /** The key whose holder made this one over the API; null when made by the CLI against the database. */
    createdBy: uuid('created_by').references((): AnyPgColumn => apiKeys.id),
  },
  (t) => [
    uniqueIndex('api_keys_hash_idx').on(t.hash),
    index('api_keys_tenant_idx').on(t.tenantId, t.createdAt),
  ],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;

/**
 * The task types whose processing is paused, in PostgreSQL-only mode (with Redis, a Redis set holds
 * them: see `@tasker/engine` paused-types.ts). Every process reads it, at most 1 s stale.
 */
export const pausedTaskTypes = pgTable('paused_task_types', {
  name: text('name').primaryKey(),
  pausedAt: timestamptz('paused_at').notNull().defaultNow(),
});

/** The limits of one kind of holder (a tenant, a task type): null means no limit. */
const limitColumns = {
  /** At most this many of its tasks RUNNING at once, across every worker. */
  maxRunning: integer('max_running'),
  /** A submission beyond this many of its tasks PENDING is refused (429 QUEUE_FULL), nothing stored. */
  maxQueued: integer('max_queued'),
  /** Its task starts are spread to at most this many per minute. */
  startsPerMinute: integer('starts_per_minute'),
  updatedAt: timestamptz('updated_at').notNull().defaultNow(),
};

/**
 * Limits set at runtime per tenant (`PUT /tenants/{tenant}/limits`). A tenant without a row has the
 * defaults of the environment (TENANT_MAX_RUNNING, ...), unlimited where unset.
 */
export const tenantLimits = pgTable('tenant_limits', {
  tenantId: text('tenant_id').primaryKey(),
  ...limitColumns,
  /** LLM budget (migration 0029): tokens (prompt + completion) per UTC day; null: none. */
  llmTokensPerDay: bigint('llm_tokens_per_day', { mode: 'number' }),
  /** LLM budget (migration 0029): US dollars per UTC month; null: none. */
  llmCostPerMonthUsd: numeric('llm_cost_per_month_usd', { precision: 20, scale: 10, mode: 'number' }),
});
export type TenantLimitsRow = typeof tenantLimits.$inferSelect;

/**
 * Limits set at runtime per task type (`PUT /task-types/{name}/limits`), over the defaults of its
 * `defineTask({ limits })`; `max_running_per_key` bounds each concurrency key of the type.
 */
export const taskTypeLimits = pgTable('task_type_limits', {
  name: text('name').primaryKey(),
  ...limitColumns,
  maxRunningPerKey: integer('max_running_per_key'),
});
export type TaskTypeLimitsRow = typeof taskTypeLimits.$inferSelect;

/** What a schedule does with the ticks missed while nothing fired (every worker down, or paused: see schedules.ts). */
export const CATCH_UP_POLICIES = ['none', 'latest', 'all'] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];

/**
 * Schedules (migration 0018): a task type, its input and run options, fired at each tick of a cron
 * in a time zone. Each fire is one ordinary PENDING task carrying `schedule_id` and `scheduled_for`.
 */
export const schedules = pgTable(
  'schedules',
  {
    id: uuid('id').primaryKey(),
    tenantId: text('owner_id').notNull(),
    /** The caller's name for it, unique per tenant: a create with an existing key updates that schedule. */
    key: text('key'),
    /** The task type. */
    name: text('name').notNull(),
    /** The task's input, as its type's schema parsed it. */
    input: jsonb('input').$type<unknown>().notNull(),
    /** 5 fields, or 6 with seconds first. */
    cron: text('cron').notNull(),
    /** An IANA zone. */
    timezone: text('timezone').notNull().default('UTC'),
    catchUp: text('catch_up').$type<CatchUpPolicy>().notNull().default('latest'),
    paused: boolean('paused').notNull().default(false),
    priority: integer('priority').notNull().default(0),
    maxAttempts: integer('max_attempts'),
    timeoutMs: integer('timeout_ms'),
    ttlMs: integer('ttl_ms'),
    concurrencyKey: text('concurrency_key'),
    /** The next tick to fire; null: the cron fires no more. */
    nextFireAt: timestamptz('next_fire_at'),
    /** The latest tick fired. */
    lastFireAt: timestamptz('last_fire_at'),
    /** Ticks not fired because of a full queue (max_queued) or the catch-up policy. */
    skippedRuns: integer('skipped_runs').notNull().default(0),
    lastSkippedFor: timestamptz('last_skipped_for'),
    lastSkipReason: text('last_skip_reason'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('schedules_owner_key_idx').on(t.tenantId, t.key).where(sql`${t.key} is not null`),
    index('schedules_owner_created_idx').on(t.tenantId, t.createdAt, t.id),
    index('schedules_due_idx').on(t.nextFireAt).where(sql`${t.paused} = false`),
    check('schedules_catch_up_check', sql`${t.catchUp} in ('none', 'latest', 'all')`),
  ],
);
export type ScheduleRow = typeof schedules.$inferSelect;

/** The events a webhook may ask for: a task that finished, by how. */
export const WEBHOOK_EVENTS = ['task.completed', 'task.failed', 'task.cancelled', 'task.expired'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/**
 * A tenant's completion webhooks (`POST /webhooks`, migration 0019). When one of the tenant's tasks
 * finishes with one of `events` (and its type is among `taskNames`, when given), the trigger
 * `tasks_finished` (migration 0023) stores a delivery to `url` in the transaction that finished it. `secret`
 * (`whsec_...`) signs each delivery (Standard Webhooks); it is shown once, at creation.
 */
export const webhooks = pgTable(
  'webhooks',
  {
    id: uuid('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    url: text('url').notNull(),
    events: text('events').array().$type<WebhookEvent[]>().notNull(),
    /** Only tasks of these types; null: every type. */
    taskNames: text('task_names').array(),
    secret: text('secret').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [index('webhooks_tenant_idx').on(t.tenantId, t.createdAt)],
);
export type WebhookRow = typeof webhooks.$inferSelect;

/** The secret (`whsec_...`) that signs the deliveries to the `webhook_url`s of a tenant's tasks. */
export const tenantWebhookSecrets = pgTable('tenant_webhook_secrets', {
  tenantId: text('tenant_id').primaryKey(),
  secret: text('secret').notNull(),
  createdAt: timestamptz('created_at').notNull().defaultNow(),
});

export const WEBHOOK_DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];

/** One attempt of a delivery, as its `log` keeps it. */
export interface WebhookAttempt {
  at: string;
  /** The receiver's HTTP status; null when none came (refused, timed out, unreachable). */
  status: number | null;
  error: string | null;
  durationMs: number;
}

/**
 * One event to send to one URL (at least once). `id` is the `webhook-id` header, the same on every
 * attempt; `body` is written before the first attempt and every attempt sends those bytes. A sender
 * takes a due `pending` row by moving `next_attempt_at` ahead (its lease) before it sends.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    /** Null for a delivery to the task's own `webhook_url`. Deleting the webhook deletes its deliveries. */
    webhookId: uuid('webhook_id').references(() => webhooks.id, { onDelete: 'cascade' }),
    url: text('url').notNull(),
    event: text('event').$type<WebhookEvent>().notNull(),
    taskId: uuid('task_id').notNull(),
    body: text('body'),
    status: text('status').$type<WebhookDeliveryStatus>().notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamptz('next_attempt_at').notNull().defaultNow(),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    log: jsonb('log').$type<WebhookAttempt[]>().notNull().default(sql`'[]'::jsonb`),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    check('webhook_deliveries_status_check', sql`${t.status} in ('pending', 'delivered', 'failed')`),
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    index('webhook_deliveries_webhook_idx').on(
      t.webhookId,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index('webhook_deliveries_task_idx').on(t.taskId),
  ],
);
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;

/** What a bulk operation does to every matching task: cancel it, or retry it. */
export const BULK_ACTIONS = ['cancel', 'retry'] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];
/** running: a worker works through it (or will: see `leaseUntil`); done; failed (see `error`). */
export const BULK_OPERATION_STATUSES = ['running', 'done', 'failed'] as const;
export type BulkOperationStatus = (typeof BULK_OPERATION_STATUSES)[number];

/**
 * Bulk cancel and retry by filter (`POST /tasks/cancel`, `POST /tasks/retry`), one row per
 * operation (migration 0020). A worker works through the matching tasks in chunks, newest first
 * (keyset on (created_at, id), the cursor below); each chunk's task changes and its progress (`done`,
 * the cursor, the lease) commit in one transaction, so the counts stay exact across a crash. A row
 * left `running` whose lease ran out (its worker died) is taken over by another worker.
 */
export const bulkOperations = pgTable(
  'bulk_operations',
  {
    id: uuid('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    action: text('action').$type<BulkAction>().notNull(),
    /** The filter as given (the engine's words, dates as ISO text), read back with zod. */
    filter: jsonb('filter').$type<unknown>().notNull(),
    status: text('status').$type<BulkOperationStatus>().notNull().default('running'),
    /** The tasks the filter matched, of the statuses the action applies to, when it was made. */
    matched: integer('matched').notNull().default(0),
    /** The tasks it changed so far (cancelled or asked to stop; retried). */
    done: integer('done').notNull().default(0),
    error: text('error'),
    /** The key that asked for it; null in AUTH_MODE=disabled. */
    createdBy: uuid('created_by').references((): AnyPgColumn => apiKeys.id, { onDelete: 'set null' }),
    /** The last task a chunk went through (keyset, newest first); null before the first chunk. */
    cursorCreatedAt: timestamptz('cursor_created_at'),
    cursorId: uuid('cursor_id'),
    /** The worker that runs it (host:pid) until `leaseUntil`; another takes it over after that. */
    runner: text('runner'),
    leaseUntil: timestamptz('lease_until'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
    finishedAt: timestamptz('finished_at'),
  },
  (t) => [
    index('bulk_operations_tenant_created_idx').on(t.tenantId, t.createdAt),
    index('bulk_operations_running_idx').on(t.createdAt).where(sql`${t.status} = 'running'`),
    check('bulk_operations_action_check', sql`${t.action} in ('cancel', 'retry')`),
    check('bulk_operations_status_check', sql`${t.status} in ('running', 'done', 'failed')`),
  ],
);
export type BulkOperationRow = typeof bulkOperations.$inferSelect;

/**
 * Leases of server processes on the tenants whose tasks they stream tenant-wide (`TenantWatchers`,
 * tenant-watchers.ts): the insert trigger announces a new task whole only while its tenant has a
 * live lease, else by its key (migration 0030_announce_per_statement).
 */
export const tenantWatchers = pgTable(
  'tasker_tenant_watchers',
  {
    tenantId: text('tenant_id').notNull(),
    watcherId: text('watcher_id').notNull(),
    expiresAt: timestamptz('expires_at').notNull(),
  },
  (t) => [primaryKey({ name: 'tasker_tenant_watchers_pkey', columns: [t.tenantId, t.watcherId] })],
);
