import type { DbClient } from './client.ts';
import type { TaskError, TaskRow } from './schema.ts';
import { BatchInserts } from './tasks/batch.ts';
import { BulkOperations } from './tasks/bulk.ts';
import { TaskChildren } from './tasks/children.ts';
import { DispatchQueries } from './tasks/dispatch.ts';
import { type FailedAttempt, HotTransitions } from './tasks/hot.ts';
import { TaskMaintenance } from './tasks/maintenance.ts';
import { TaskPartitions } from './tasks/partitions.ts';
import { TaskQueries } from './tasks/queries.ts';
import { TaskSteps } from './tasks/steps.ts';
import { WaitTokens } from './tasks/tokens.ts';
import { OtherTransitions, type Suspension } from './tasks/transitions.ts';
import { type LlmCall, UsageStore } from './tasks/usage.ts';

export type { BatchInserted, BatchLimits } from './tasks/batch.ts';
export { actionStatuses, type BulkCursor, BulkOperations, type NewBulkOperation } from './tasks/bulk.ts';
export type { ChildRow, ChildrenSummary } from './tasks/children.ts';
export type { HoldingGroup, ReadyTask } from './tasks/dispatch.ts';
export type { FailedAttempt, Inserted, TaskInsert } from './tasks/hot.ts';
export {
  LIST_HEAD_CHARS,
  type StaleTask,
  type TaskFilter,
  type TaskListFilter,
  type TaskListRow,
  taskFilterConditions,
} from './tasks/queries.ts';
export type { StepRecord } from './tasks/steps.ts';
export type { Suspension } from './tasks/transitions.ts';
export { addUsage, type LlmCall, UsageStore } from './tasks/usage.ts';

export interface TaskStoreOptions {
  /** How long an idempotency key keeps answering with its first task. */
  idempotencyWindowSeconds: number;
}

/**
 * Every read and write of task rows, split by concern (one folder, `tasks/`):
 *
 * | part | file | what |
 * |---|---|---|
 * | `hot` | `tasks/hot.ts` | insert, claim, complete, fail: batched, one statement per batch |
 * | `transitions` | `tasks/transitions.ts` | every other change of state (cancel, retry, expire, ...) |
 * | `queries` | `tasks/queries.ts` | reads: one task, pages, searches, counts |
 * | `maintenance` | `tasks/maintenance.ts` | retention, vacuum |
 * | `partitions` | `tasks/partitions.ts` | a partitioned table's weeks: made ahead, dropped past retention |
 * | `dispatch` | `tasks/dispatch.ts` | the dispatcher: who waits for a turn, who holds a slot, handing out |
 * | `bulk` | `tasks/bulk.ts` | bulk cancel and retry by filter: their operations, a chunk at a time |
 * | `usage` | `tasks/usage.ts` | model calls: their ledger (`task_llm_calls`) and each task's sum |
 * | `steps` | `tasks/steps.ts` | the steps of durable handlers (`task_steps`): read, record |
 * | `children` | `tasks/children.ts` | child tasks: by parent, summaries, the parents' wake (`childrenDone`) |
 * | `tokens` | `tasks/tokens.ts` | wait tokens (`wait_tokens`): made by a step, completed once, waking their task |
 *
 * Every change is a transition of @tasker/states, made by a conditional UPDATE built from it
 * (`tasks/transition-sql.ts`): two workers racing on one task can never both record a result.
 * The methods below are the whole surface the engine uses.
 */
export class TaskStore {
  readonly hot: HotTransitions;
  readonly transitions: OtherTransitions;
  readonly queries: TaskQueries;
  readonly maintenance: TaskMaintenance;
  /** The weeks of a partitioned `tasks` (none yet: docs/partitioning.md): `tasks/partitions.ts`. */
  readonly partitions: TaskPartitions;
  readonly dispatch: DispatchQueries;
  /** All-or-nothing batches of new tasks (POST /tasks/batch), one transaction each. */
  readonly batch: BatchInserts;
  /** Bulk cancel and retry by filter: the operations' rows and their chunks (`tasks/bulk.ts`). */
  readonly bulk: BulkOperations;
  /** Model usage: the calls' ledger and each task's sum (`tasks/usage.ts`). */
  readonly usage: UsageStore;
  /** The steps of durable handlers (`ctx.step`, `ctx.sleep`): `tasks/steps.ts`. */
  readonly steps: TaskSteps;
  /** Child tasks (`ctx.run`, `ctx.runMany`): by parent, summaries, the parents' wake: `tasks/children.ts`. */
  readonly children: TaskChildren;
  /** Wait tokens (`ctx.createToken`, `ctx.waitForToken`, POST /tokens/{id}/complete): `tasks/tokens.ts`. */
  readonly tokens: WaitTokens;

  constructor(
    { db, sql: pg }: Pick<DbClient, 'db' | 'sql'>,
    options: TaskStoreOptions = { idempotencyWindowSeconds: 24 * 3600 },
  ) {
    this.hot = new HotTransitions(pg, options);
    this.transitions = new OtherTransitions(db, pg);
    this.queries = new TaskQueries(db);
    this.maintenance = new TaskMaintenance(db);
    this.partitions = new TaskPartitions(pg);
    this.dispatch = new DispatchQueries(pg);
    this.batch = new BatchInserts(pg, options);
    this.bulk = new BulkOperations(db);
    this.usage = new UsageStore(db);
    this.steps = new TaskSteps(pg);
    this.children = new TaskChildren(pg);
    this.tokens = new WaitTokens(pg);
  }

  // Hot transitions (batched).
  insert: HotTransitions['insert'] = (row, options) => this.hot.insert(row, options);
  insertBatch: BatchInserts['insert'] = (rows, limits) => this.batch.insert(rows, limits);
  claim = (id: string, workerId: string, attempt: number): Promise<TaskRow | undefined> =>
    this.hot.claim(id, workerId, attempt);
  complete = (id: string, output: unknown): Promise<TaskRow | undefined> => this.hot.complete(id, output);
  fail = (attempt: FailedAttempt): Promise<TaskRow | undefined> => this.hot.fail(attempt);

  // Other transitions.
  setProgress = (id: string, progress: unknown) => this.transitions.setProgress(id, progress);
  recordUsage = (call: LlmCall): Promise<TaskRow | undefined> => this.usage.record(call);
  release = (id: string) => this.transitions.release(id);
  cancelPending = (id: string, error: TaskError, tenantId?: string) =>
    this.transitions.cancelPending(id, error, tenantId);
  requestCancel = (id: string, tenantId?: string) => this.transitions.requestCancel(id, tenantId);
  cancelRunning = (id: string, error: TaskError) => this.transitions.cancelRunning(id, error);
  failLost = (id: string, error: TaskError) => this.transitions.failLost(id, error);
  retry = (id: string, tenantId?: string) => this.transitions.retry(id, tenantId);
  expireDue = (limit: number, error: TaskError) => this.transitions.expireDue(limit, error);
  expire = (ids: readonly string[], error: TaskError) => this.transitions.expire(ids, error);
  wait = (id: string, suspension: Suspension) => this.transitions.wait(id, suspension);
  wakeDue = (limit: number) => this.transitions.wakeDue(limit);

  // Queries.
  get: TaskQueries['get'] = (id, tenantId) => this.queries.get(id, tenantId);
  getMany: TaskQueries['getMany'] = (ids) => this.queries.getMany(ids);
  versions: TaskQueries['versions'] = (ids) => this.queries.versions(ids);
  cancelRequested: TaskQueries['cancelRequested'] = (ids) => this.queries.cancelRequested(ids);
  keyHolder: TaskQueries['keyHolder'] = (tenantId, kind, key) => this.queries.keyHolder(tenantId, kind, key);
  list: TaskQueries['list'] = (filter) => this.queries.list(filter);
  finishedPerMinute: TaskQueries['finishedPerMinute'] = (tenantId, since) =>
    this.queries.finishedPerMinute(tenantId, since);
  pendingOfType: TaskQueries['pendingOfType'] = (name, limit, cursor) =>
    this.queries.pendingOfType(name, limit, cursor);
  findStale: TaskQueries['findStale'] = (before, limit, cursor) =>
    this.queries.findStale(before, limit, cursor);

  // Maintenance.
  pruneFinished: TaskMaintenance['pruneFinished'] = (before, limit) =>
    this.maintenance.pruneFinished(before, limit);
  vacuumIfBloated: TaskMaintenance['vacuumIfBloated'] = (options) =>
    this.maintenance.vacuumIfBloated(options);
}
