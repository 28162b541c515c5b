import type { BulkOperationRow, Suspension, TaskError, TaskRow, TaskStepRow } from '@tasker/db';
import type { LlmCache, LlmCallUsage } from '@tasker/tasks';
import { type BulkRunEnd, type BulkRunOptions, runBulk } from './bulk.ts';
import { cancel, endCancelled } from './cancel.ts';
import { type Claim, claim, release } from './claim.ts';
import { complete } from './complete.ts';
import { expireDue } from './expire.ts';
import { fail } from './fail.ts';
import { hold } from './hold.ts';
import { isPaused, pause, resume } from './pause.ts';
import { type ProgressReporter, progressReporter } from './progress.ts';
import { maintainPartitions, prune, type RecoveryReport, recover, vacuum } from './recover.ts';
import type { LifecycleResources } from './resources.ts';
import { retry } from './retry.ts';
import { StepRunner } from './steps.ts';
import { type SubmitRequest, type Submitted, submit } from './submit.ts';
import { type BatchItem, submitMany } from './submit-many.ts';
import { llmCacheOf, pruneLlmCache, recordUsage } from './usage.ts';
import { wait, wakeDue } from './wait.ts';

/**
 * The one module that changes a task's state. Each step lives in its own file of this folder, and
 * does "PostgreSQL transition (announced by PostgreSQL on commit) → cache → queue operation" once:
 * the server's procedures and the worker's processor only call these.
 *
 * | step | file | who calls it |
 * |---|---|---|
 * | submit | `submit.ts` | server (`runTask`, `POST /run-task`) |
 * | submitMany | `submit-many.ts` | server (`runTasks`, `POST /tasks/batch`) |
 * | claim, release | `claim.ts` | worker, when it takes a job / shuts down |
 * | progress | `progress.ts` | worker, while the handler runs |
 * | recordUsage | `usage.ts` | worker, when a model call of the handler (`ctx.llm`) reported its usage |
 * | hold | `hold.ts` | worker, when a model call found its tenant over an LLM budget |
 * | complete | `complete.ts` | worker, the handler returned a valid output |
 * | fail | `fail.ts` | worker, the handler threw or timed out |
 * | cancel, endCancelled | `cancel.ts` | server (`cancelTask`); worker (the abort) |
 * | retry | `retry.ts` | server (`retryTask`) |
 * | pause, resume, isPaused | `pause.ts` | server (`pauseQueue`, `resumeQueue`); worker |
 * | expire | `expire.ts` | every worker, every EXPIRE_INTERVAL_MS; the claim of an expired task |
 * | steps | `steps.ts` | worker: a run's `ctx.step` and `ctx.sleep` (`StepRunner`) |
 * | wait, wake | `wait.ts` | worker: a handler that slept; the leading dispatcher's worker, every WAKE_INTERVAL_MS |
 * | recover, prune, maintainPartitions, vacuum | `recover.ts` | the worker's sweeper |
 * | runBulk | `bulk.ts` | the worker's bulk runner: a bulk cancel or retry, a chunk at a time |
 */
export class TaskLifecycle {
  constructor(readonly resources: LifecycleResources) {}

  submit(request: SubmitRequest): Promise<Submitted> {
    return submit(this.resources, request);
  }

  /** A batch of one tenant's submissions, all or nothing, answered in order (`submit-many.ts`). */
  submitMany(tenantId: string, requests: readonly Omit<SubmitRequest, 'tenantId'>[]): Promise<BatchItem[]> {
    return submitMany(this.resources, tenantId, requests);
  }

  claim(taskId: string, workerId: string, attempt: number): Promise<Claim> {
    return claim(this.resources, taskId, workerId, attempt);
  }

  release(taskId: string): Promise<TaskRow | undefined> {
    return release(this.resources, taskId);
  }

  progress(row: TaskRow): ProgressReporter {
    return progressReporter(this.resources, row);
  }

  /**
   * Throws BudgetExceededError when the tenant has reached an LLM budget (no finished read taken:
   * `Budgets.check`): `ctx.llm` asks before each model call.
   */
  checkBudget(tenantId: string): Promise<void> {
    return this.resources.limits.budgets.check(tenantId);
  }

  /** The tenant's identical-prompt cache, for `ctx.llm` (`usage.ts`). */
  llmCache(tenantId: string): LlmCache {
    return llmCacheOf(this.resources, tenantId);
  }

  /** Expired cache entries, and each tenant's beyond its cap, deleted (the sweep). */
  pruneLlmCache(): Promise<number> {
    return pruneLlmCache(this.resources);
  }

  /** The attempt found its tenant over an LLM budget: given back uncounted, the task held (`hold.ts`). */
  hold(row: TaskRow): Promise<TaskRow | undefined> {
    return hold(this.resources, row);
  }

  /** One model call of the attempt that claimed `row`: the ledger's row and the task's usage. */
  recordUsage(row: TaskRow, usage: LlmCallUsage): Promise<TaskRow | undefined> {
    return recordUsage(this.resources, row, usage);
  }

  complete(row: TaskRow, output: unknown): Promise<TaskRow | undefined> {
    return complete(this.resources, row, output);
  }

  fail(row: TaskRow, error: TaskError, final: boolean): Promise<TaskRow | undefined> {
    return fail(this.resources, row, error, final);
  }

  cancel(taskId: string, tenantId?: string): Promise<TaskRow> {
    return cancel(this.resources, taskId, tenantId);
  }

  /** `running`: the row as the attempt being ended claimed it (the worker's abort). */
  endCancelled(taskId: string, attempt?: number, running?: TaskRow): Promise<TaskRow | undefined> {
    return endCancelled(this.resources, taskId, attempt, running);
  }

  retry(taskId: string, tenantId?: string): Promise<TaskRow> {
    return retry(this.resources, taskId, tenantId);
  }

  pause(name?: string): Promise<void> {
    return pause(this.resources, name);
  }

  resume(name?: string): Promise<void> {
    return resume(this.resources, name);
  }

  isPaused(name: string): Promise<boolean> {
    return isPaused(this.resources, name);
  }

  /** The durable steps of one run of this claimed task's handler (`ctx.step`, `ctx.sleep`). */
  steps(row: TaskRow, signal: AbortSignal): StepRunner {
    return new StepRunner(this.resources, row, signal);
  }

  /** The steps a task's handler recorded, in its order (`createdAt`: the task's, to read its week only). */
  stepsOf(taskId: string, createdAt?: Date): Promise<TaskStepRow[]> {
    return this.resources.store.steps.list(taskId, createdAt);
  }

  /** The handler slept: RUNNING → WAITING (or CANCELLED, if a cancel was asked for meanwhile). */
  wait(row: TaskRow, suspension: Suspension): Promise<TaskRow | undefined> {
    return wait(this.resources, row, suspension);
  }

  /** WAITING → PENDING for every task whose wait is over; how many. */
  wake(): Promise<number> {
    return wakeDue(this.resources);
  }

  /** Ends EXPIRED every PENDING task past its expiry; how many. */
  expire(): Promise<number> {
    return expireDue(this.resources);
  }

  recover(graceMs: number): Promise<RecoveryReport> {
    return recover(this.resources, graceMs);
  }

  prune(retentionMs: number): Promise<number> {
    return prune(this.resources, retentionMs);
  }

  /** A partitioned tasks table's weeks: made ahead, dropped past retention (none until it is partitioned). */
  maintainPartitions(retentionMs: number): Promise<void> {
    return maintainPartitions(this.resources, retentionMs);
  }

  vacuum(): Promise<boolean> {
    return vacuum(this.resources);
  }

  /** Works through a bulk operation that `runner` took (`store.bulk.take`), to its end or until stopped. */
  runBulk(op: BulkOperationRow, runner: string, options: BulkRunOptions): Promise<BulkRunEnd> {
    return runBulk(this.resources, op, runner, options);
  }
}

export { type BulkRunEnd, type BulkRunOptions, filterOf, isEmptyFilter } from './bulk.ts';
export { cancelledError } from './cancel.ts';
export type { Claim } from './claim.ts';
export { expiredError } from './expire.ts';
export type { ProgressReporter } from './progress.ts';
export type { RecoveryReport } from './recover.ts';
export { bestEffort, type LifecycleResources, withTimeout } from './resources.ts';
export { IN_PROCESS_SLEEP_MS, type StepContext, StepRunner } from './steps.ts';
export { DEFAULT_TENANT, type SubmitRequest, type Submitted } from './submit.ts';
export { type BatchItem, MAX_BATCH_SIZE } from './submit-many.ts';
