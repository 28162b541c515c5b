import { TASK_STATUSES, type TaskStatus, UNFINISHED_STATUSES } from '@tasker/states';
import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  check,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

// Every status and transition is stated once, in @tasker/states; the store builds its SQL from it.
export {
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

/** Millisecond precision, like JavaScript's Date, so that keyset cursors round-trip exactly. */
const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date', precision: 3 });

/**
 * One row per accepted task. PostgreSQL is the source of truth; the BullMQ job whose id is `id`
 * is only how the row reaches a worker.
 */
export const tasks = pgTable(
  'tasks',
  {
    id: uuid('id').primaryKey(),
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
    /**
     * When the dispatcher handed the task to the queue (its job exists from then on). Null: the task
     * waits in PostgreSQL for its turn (fair dequeue, limits, run_after, a paused type). Not a state
     * of the task (no version, no event): where its delivery stands.
     */
    queuedAt: timestamptz('queued_at'),
    /**
     * The submitting request's W3C trace context (with tracing on), handed to the job when the
     * dispatcher queues the task, so that the worker's attempt joins the request's trace.
     */
    trace: jsonb('trace').$type<{ traceparent?: string; tracestate?: string }>(),
    /** How long the task may wait to start (submit's `ttl_ms`); null: forever. */
    ttlMs: integer('ttl_ms'),
    /** created_at + ttl_ms: a task not started by then ends EXPIRED (`expire` transition). */
    expiresAt: timestamptz('expires_at'),
    cancelRequestedAt: timestamptz('cancel_requested_at'),
    /** Which worker process ran the latest attempt (host:pid). */
    workerId: text('worker_id'),
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
    index('tasks_output_idx')
      .using('gin', t.output.op('jsonb_path_ops'))
      .with({ gin_pending_list_limit: 256 })
      .where(sql`${t.output} is not null`),
    // The recovery sweeper: unfinished rows that have not moved for a while.
    index('tasks_unfinished_idx')
      .on(t.updatedAt)
      .where(sql`${t.status} in ${statusList(UNFINISHED_STATUSES)}`),
    // Retention and the finished-per-minute chart: finished tasks by age. `finished_at` is set
    // exactly when the status is terminal (tasks_finished_check), so the predicate names no status
    // and a new terminal status needs no new index.
    index('tasks_finished_idx').on(t.finishedAt).where(sql`${t.finishedAt} is not null`),
    check(
      'tasks_finished_check',
      sql`(${t.finishedAt} is null) = (${t.status} in ${statusList(UNFINISHED_STATUSES)})`,
    ),
    // A task type's PENDING tasks: its max_queued count, and its counts on the limits routes.
    index('tasks_pending_name_idx').on(t.name).where(sql`${t.status} = 'PENDING'`),
    // Expiry: queued tasks that carry a deadline, soonest first.
    index('tasks_expiry_idx')
      .on(t.expiresAt)
      .where(sql`${t.status} = 'PENDING' and ${t.expiresAt} is not null`),
    // The dispatcher: tasks waiting for their turn, per tenant, in the order they are handed out.
    index('tasks_ready_idx')
      .on(t.tenantId, t.priority.desc().nullsFirst(), t.createdAt, t.id)
      .where(sql`${t.status} = 'PENDING' and ${t.queuedAt} is null`),
    // ... and the tasks holding a slot (handed to the queue, not finished), counted against limits.
    index('tasks_holding_idx')
      .on(t.tenantId, t.name, t.concurrencyKey)
      .where(sql`${t.queuedAt} is not null and ${t.status} in ${statusList(UNFINISHED_STATUSES)}`),
    // One unfinished task per (tenant, singleton key); one PENDING task per (tenant, debounce key).
    uniqueIndex('tasks_owner_singleton_idx')
      .on(t.tenantId, t.singletonKey)
      .where(sql`${t.singletonKey} is not null and ${t.status} in ${statusList(UNFINISHED_STATUSES)}`),
    uniqueIndex('tasks_owner_debounce_idx')
      .on(t.tenantId, t.debounceKey)
      .where(sql`${t.debounceKey} is not null and ${t.status} = 'PENDING'`),
    uniqueIndex('tasks_owner_idempotency_idx')
      .on(t.tenantId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} is not null`),
  ],
);

export type TaskRow = typeof tasks.$inferSelect;
export type NewTaskRow = typeof tasks.$inferInsert;

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
