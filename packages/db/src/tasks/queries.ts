import {
  and,
  asc,
  desc,
  eq,
  getTableColumns,
  gt,
  gte,
  inArray,
  isNotNull,
  lt,
  or,
  type SQL,
  sql,
} from 'drizzle-orm';
import type { Database } from '../client.ts';
import {
  ACTIVE_STATUSES,
  type TaskKeyKind,
  type TaskRow,
  type TaskStatus,
  taskHandouts,
  taskKeys,
  tasks,
} from '../schema.ts';
import { createdAtOf, createdAtWindow } from './id-time.ts';
import { pgArray } from './rows.ts';
import {
  afterCursor,
  earlier,
  readStepped,
  type TimeWindow,
  timeWindows,
  windowConditions,
} from './time-steps.ts';

/**
 * Characters of each payload's JSON text a listing reads from PostgreSQL (the API cuts the preview
 * further, to PREVIEW_BYTES of UTF-8): a page never carries whole inputs and outputs, and never
 * reads them out of the database either.
 */
export const LIST_HEAD_CHARS = 1024;

/**
 * A row as a listing reads it: the task without its payloads, with the first LIST_HEAD_CHARS
 * characters of each one's JSON text (PostgreSQL's rendering of the jsonb) and its whole size in
 * bytes; the error with its message cut the same way. The full row: `get`.
 */
export type TaskListRow = Omit<TaskRow, 'input' | 'output' | 'error' | 'attemptErrors' | 'progress'> & {
  inputHead: string;
  inputBytes: number;
  /** Null when the task has no output. */
  outputHead: string | null;
  outputBytes: number | null;
  error: TaskRow['error'];
};

/**
 * Which of a tenant's tasks: the one filter of GET /tasks (and of anything else that acts on "the
 * tasks that match"), every field optional but the tenant, all of them combined with AND. Its SQL:
 * `taskFilterConditions`.
 */
export interface TaskFilter {
  tenantId: string;
  statuses?: TaskStatus[];
  names?: string[];
  createdAfter?: Date;
  createdBefore?: Date;
  /**
   * Only tasks whose input contains this JSON value (`input @> value`: an object matches any input
   * holding at least its keys with those values, recursively; an array any input array holding its
   * elements; a scalar only itself). `undefined`: no condition.
   */
  inputContains?: unknown;
  /** Only tasks whose output contains this JSON value (`output @> value`); never a task without output. */
  outputContains?: unknown;
  /** Only tasks that carry every one of these tags (`tags @> …`). Empty or `undefined`: no condition. */
  tags?: string[];
  /** Only tasks whose metadata contains this JSON object (`metadata @> …`); never a task without metadata. */
  metadataContains?: Record<string, unknown>;
  /** Only the child tasks of this task (`parent_id`: ctx.run, ctx.runMany). */
  parentId?: string;
}

/** A page of `TaskFilter`'s tasks: after `cursor`, at most `limit`. */
export interface TaskListFilter extends TaskFilter {
  /** The last row of the previous page. */
  cursor?: { createdAt: Date; id: string };
  limit: number;
}

/**
 * The WHERE conditions of a `TaskFilter` (to be joined with AND), the tenant's first. Containment is
 * answered from the GIN indexes (tasks_input_idx, tasks_output_idx, tasks_tags_idx,
 * tasks_metadata_idx) when it is selective; otherwise the planner walks a listing index and filters.
 * Each query is planned for its own value (plan_cache_mode = force_custom_plan, client.ts), which is
 * what lets it tell the two apart.
 */
export function taskFilterConditions(filter: TaskFilter): SQL[] {
  const conditions: SQL[] = [eq(tasks.tenantId, filter.tenantId)];
  if (filter.statuses?.length) conditions.push(inArray(tasks.status, filter.statuses));
  if (filter.names?.length) conditions.push(inArray(tasks.name, filter.names));
  if (filter.createdAfter) conditions.push(gte(tasks.createdAt, filter.createdAfter));
  if (filter.createdBefore) conditions.push(lt(tasks.createdAt, filter.createdBefore));
  if (filter.inputContains !== undefined)
    conditions.push(sql`${tasks.input} @> ${JSON.stringify(filter.inputContains)}::jsonb`);
  if (filter.outputContains !== undefined)
    conditions.push(sql`${tasks.output} @> ${JSON.stringify(filter.outputContains)}::jsonb`);
  // tasks_tags_idx holds only the rows with tags: the condition repeats its predicate.
  if (filter.tags?.length)
    conditions.push(sql`cardinality(${tasks.tags}) > 0 and ${tasks.tags} @> ${pgArray(filter.tags)}::text[]`);
  if (filter.metadataContains !== undefined)
    conditions.push(sql`${tasks.metadata} @> ${JSON.stringify(filter.metadataContains)}::jsonb`);
  if (filter.parentId !== undefined) conditions.push(eq(tasks.parentId, filter.parentId));
  return conditions;
}

/** A row that may need re-delivery: what the sweeper needs to rebuild its job. */
export type StaleTask = Pick<
  TaskRow,
  'id' | 'name' | 'status' | 'priority' | 'runAfter' | 'updatedAt' | 'maxAttempts'
>;

/** Reads of task rows: one task, pages, searches, counts. */
export class TaskQueries {
  private readonly getById;

  constructor(private readonly db: Database) {
    this.getById = db
      .select()
      .from(tasks)
      // The id's created_at bounds (createdAtWindow), null for an id that is no UUIDv7: planned for
      // its values (client.ts), the test of null folds away, and the bounds are constants.
      .where(
        and(
          eq(tasks.id, sql.placeholder('id')),
          sql`(${sql.placeholder('from')}::timestamptz is null or ${tasks.createdAt} between ${sql.placeholder('from')}::timestamptz and ${sql.placeholder('to')}::timestamptz)`,
        ),
      )
      .limit(1)
      .prepare('tasks_get');
  }

  /** The task, if it exists (and belongs to `tenantId`, when given: another tenant's is not found). */
  async get(id: string, tenantId?: string): Promise<TaskRow | undefined> {
    const window = createdAtWindow([id]);
    const [row] = await this.getById.execute({ id, from: window?.from ?? null, to: window?.to ?? null });
    return tenantId === undefined || row?.tenantId === tenantId ? row : undefined;
  }

  /** The current version of each of these rows (missing ids are left out): cheap change detection. */
  versions(ids: readonly string[]): Promise<{ id: string; version: number }[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.db
      .select({ id: tasks.id, version: tasks.version })
      .from(tasks)
      .where(and(inArray(tasks.id, [...ids]), createdAtOf(ids)));
  }

  /** Several rows by id (missing ids are left out). */
  getMany(ids: readonly string[]): Promise<TaskRow[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.db
      .select()
      .from(tasks)
      .where(and(inArray(tasks.id, [...ids]), createdAtOf(ids)));
  }

  /** The id of the task that holds a tenant's key of `kind` (task_keys), if one does. */
  async keyHolder(tenantId: string, kind: TaskKeyKind, key: string): Promise<string | undefined> {
    const [row] = await this.db
      .select({ taskId: taskKeys.taskId })
      .from(taskKeys)
      .where(and(eq(taskKeys.tenantId, tenantId), eq(taskKeys.kind, kind), eq(taskKeys.key, key)));
    return row?.taskId;
  }

  /** The ids among these whose cancellation was requested (the worker's check on what it runs). */
  async cancelRequested(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .select({ id: tasks.id })
      .from(tasks)
      .where(and(inArray(tasks.id, [...ids]), createdAtOf(ids), isNotNull(tasks.cancelRequestedAt)));
    return rows.map((r) => r.id);
  }

  /**
   * One page of an owner's tasks, newest first, after `cursor` (exclusive). Keyset pagination on
   * (created_at, id): every page costs the same, however deep (no OFFSET). Read in steps of time
   * (time-steps.ts): a day back from the cursor (or now), then a week, a month, the rest, until the
   * page is full.
   */
  list(filter: TaskListFilter): Promise<TaskListRow[]> {
    const windows = timeWindows(
      earlier(filter.createdBefore, afterCursor(filter.cursor)),
      filter.createdAfter,
    );
    return readStepped(windows, filter.limit, (window, limit) => this.listWindow(filter, window, limit));
  }

  /**
   * One window's part of a page (`list`): at most `limit` of its rows, newest first. With no window,
   * the page in one query over all time (what bench:partition compares the steps with).
   */
  listWindow(filter: TaskListFilter, window: TimeWindow = {}, limit = filter.limit): Promise<TaskListRow[]> {
    const conditions = [...taskFilterConditions(filter), ...windowConditions(window)];
    if (filter.cursor) {
      conditions.push(
        sql`(${tasks.createdAt}, ${tasks.id}) < (${filter.cursor.createdAt.toISOString()}::timestamptz, ${filter.cursor.id}::uuid)`,
      );
    }
    // input is never null; output is, until the task completes.
    const head = <T extends string | null>(column: typeof tasks.input | typeof tasks.output) =>
      sql<T>`left(${column}::text, ${sql.raw(String(LIST_HEAD_CHARS))})`;
    const bytes = <T extends number | null>(column: typeof tasks.input | typeof tasks.output) =>
      sql<T>`octet_length(${column}::text)`.mapWith(Number);
    const cut = (field: 'message' | 'name' | 'code' | 'at', chars: number) =>
      sql`left(${tasks.error}->>${sql.raw(`'${field}'`)}, ${sql.raw(String(chars))})`;
    const {
      input: _i,
      output: _o,
      error: _e,
      attemptErrors: _a,
      progress: _p,
      ...fixed
    } = getTableColumns(tasks);
    return this.db
      .select({
        ...fixed,
        inputHead: head<string>(tasks.input),
        inputBytes: bytes<number>(tasks.input),
        outputHead: head<string | null>(tasks.output),
        outputBytes: bytes<number | null>(tasks.output),
        // The error with its strings cut: a handler's message may be as long as it likes.
        error: sql<
          TaskRow['error']
        >`case when ${tasks.error} is null then null else jsonb_strip_nulls(jsonb_build_object(
          'message', ${cut('message', LIST_HEAD_CHARS + 1)}, 'name', ${cut('name', 128)}, 'code', ${cut('code', 128)},
          'attempt', ${tasks.error}->'attempt', 'at', ${cut('at', 64)})) end`,
      })
      .from(tasks)
      .where(and(...conditions))
      .orderBy(desc(tasks.createdAt), desc(tasks.id))
      .limit(limit);
  }

  /**
   * How many of an owner's tasks finished COMPLETED and FAILED in each minute since `since` (only
   * minutes with any). Walks `tasks_finished_idx` (finished tasks by `finished_at`): it reads the
   * rows finished since then, however many tasks are older.
   */
  async finishedPerMinute(
    tenantId: string,
    since: Date,
  ): Promise<{ minute: Date; status: 'COMPLETED' | 'FAILED'; count: number }[]> {
    const rows = await this.db.execute<{ minute: string; status: 'COMPLETED' | 'FAILED'; count: number }>(sql`
      select date_trunc('minute', ${tasks.finishedAt}) as minute, ${tasks.status} as status, count(*)::int as count
      from ${tasks}
      where ${tasks.finishedAt} >= ${since.toISOString()}::timestamptz
        and ${tasks.tenantId} = ${tenantId}
        and ${tasks.status} in ('COMPLETED', 'FAILED')
      group by 1, 2`);
    return rows.map((row) => ({ minute: new Date(row.minute), status: row.status, count: row.count }));
  }

  /** PENDING tasks of one type, oldest first, after the keyset `cursor`: what a resumed type enqueues. */
  pendingOfType(
    name: string,
    limit: number,
    cursor?: { createdAt: Date; id: string },
  ): Promise<Pick<TaskRow, 'id' | 'name' | 'priority' | 'runAfter' | 'maxAttempts' | 'createdAt'>[]> {
    const conditions = [eq(tasks.status, 'PENDING'), eq(tasks.name, name)];
    if (cursor) {
      conditions.push(
        sql`(${tasks.createdAt}, ${tasks.id}) > (${cursor.createdAt.toISOString()}::timestamptz, ${cursor.id}::uuid)`,
      );
    }
    return this.db
      .select({
        id: tasks.id,
        name: tasks.name,
        priority: tasks.priority,
        runAfter: tasks.runAfter,
        maxAttempts: tasks.maxAttempts,
        createdAt: tasks.createdAt,
      })
      .from(tasks)
      .where(and(...conditions))
      .orderBy(asc(tasks.createdAt), asc(tasks.id))
      .limit(limit);
  }

  /**
   * Unfinished rows that have not changed since `before`, oldest first, after the keyset
   * `cursor` (exclusive). Used by the sweeper to find tasks whose job may be missing.
   */
  async findStale(
    before: Date,
    limit: number,
    cursor?: { updatedAt: Date; id: string },
  ): Promise<StaleTask[]> {
    // Only tasks handed to the queue (a handout) have a job to miss; the others wait for the dispatcher
    // (or, WAITING, for their wait to end: they hold no handout).
    const conditions = [
      inArray(tasks.status, [...ACTIVE_STATUSES]),
      lt(tasks.updatedAt, before),
      lt(taskHandouts.handedAt, before),
    ];
    if (cursor) {
      conditions.push(
        or(
          gt(tasks.updatedAt, cursor.updatedAt),
          and(eq(tasks.updatedAt, cursor.updatedAt), gt(tasks.id, cursor.id)),
        ) as ReturnType<typeof eq>,
      );
    }
    return this.db
      .select({
        id: tasks.id,
        name: tasks.name,
        status: tasks.status,
        priority: tasks.priority,
        runAfter: tasks.runAfter,
        updatedAt: tasks.updatedAt,
        maxAttempts: tasks.maxAttempts,
      })
      .from(tasks)
      .innerJoin(taskHandouts, eq(taskHandouts.taskId, tasks.id))
      .where(and(...conditions))
      .orderBy(asc(tasks.updatedAt), asc(tasks.id))
      .limit(limit);
  }
}
