import { type BatchInserted, QueueFullError, type TaskInsert } from '@tasker/db';
import { getTaskDefinition } from '@tasker/tasks';
import { DependencyUnavailableError } from '../errors/dependency-unavailable.ts';
import { describeIssues, type PublicIssue, toPublicIssues } from '../errors/http.ts';
import { PublicFailureError } from '../errors/public-failure.ts';
import { emit, type LifecycleResources } from './resources.ts';
import { DEFAULT_TENANT, refuseOverBudget, type SubmitRequest, taskRow } from './submit.ts';

/** Most tasks one batch holds (POST /tasks/batch). */
export const MAX_BATCH_SIZE = 1000;

/** What one item of a batch answers: its task, and whether the batch created it or a key matched one. */
export interface BatchItem {
  /** The new task; or, when none was created, the task that answers instead (see `matched`). */
  row: BatchInserted['row'];
  /** True when this item stored a new task (a single submission's 201). */
  created: boolean;
  /**
   * Why no task was created: `idempotency` (the tenant's task with this idempotency key, within the
   * window: a replay, answered 201 by a single submission) or `singleton` (the unfinished task
   * holding the singleton key, unchanged: a single submission's 200).
   */
  matched?: 'idempotency' | 'singleton';
}

/**
 * A batch of one tenant's submissions, all or nothing (POST /tasks/batch, tRPC runTasks): every
 * item is checked first (its type, its parameters against the type's schema; no debounce in a
 * batch), and any bad item refuses the whole batch with a 400 whose issues name each bad item by
 * its index (`tasks.3.input.a`). Then every row is stored in one transaction (`store.insertBatch`),
 * idempotency and singleton keys answering per item as for a single submission, under the tenant's
 * and the types' `max_queued` counted for the batch as a whole (QueueFullError: 429 QUEUE_FULL,
 * nothing stored). The answers are in the order of the items.
 */
export async function submitMany(
  r: LifecycleResources,
  tenantId: string = DEFAULT_TENANT,
  requests: readonly Omit<SubmitRequest, 'tenantId'>[],
): Promise<BatchItem[]> {
  const issues: PublicIssue[] = [];
  const rows: TaskInsert[] = [];
  let unavailable: DependencyUnavailableError | undefined;
  if (requests.length === 0 || requests.length > MAX_BATCH_SIZE) {
    issues.push({
      path: 'tasks',
      message: `must hold 1 to ${MAX_BATCH_SIZE} tasks (it holds ${requests.length})`,
    });
  }
  requests.forEach((request, i) => {
    const definition = getTaskDefinition(request.name);
    if (!definition) {
      issues.push({ path: `tasks.${i}.name`, message: `Unknown task type "${request.name}"` });
      return;
    }
    if (request.debounce) {
      issues.push({
        path: `tasks.${i}.debounce`,
        message: 'is not taken in a batch: submit a debounced task on its own (POST /tasks)',
      });
    }
    if (request.cacheTtlMs !== undefined && !definition.llm)
      issues.push({
        path: `tasks.${i}.cache_ttl_ms`,
        message: `${definition.name} calls no model: it has nothing to cache`,
      });
    const parsed = definition.input.safeParse(request.input);
    if (!parsed.success) {
      issues.push(...toPublicIssues(parsed.error.issues, ['tasks', i, 'input']));
      return;
    }
    const missing = definition.unavailable?.(r.config);
    if (missing) unavailable ??= new DependencyUnavailableError(definition.name, missing);
    rows.push(taskRow({ ...request, tenantId }, definition, parsed.data));
  });
  // A webhook_url is checked as on a task of its own (its address, the tenant's secret): once per
  // distinct URL, however many items carry it (each check resolves the host and reads the secret).
  const checks = new Map<string, Promise<string | undefined>>();
  const check = (url: string) => {
    const known = checks.get(url);
    if (known) return known;
    const refusal = r.checkWebhookUrl(tenantId, url);
    checks.set(url, refusal);
    return refusal;
  };
  const refusals = await Promise.all(
    requests.map((request) => (request.webhookUrl === undefined ? undefined : check(request.webhookUrl))),
  );
  refusals.forEach((message, i) => {
    if (message !== undefined) issues.push({ path: `tasks.${i}.webhook_url`, message });
  });
  if (issues.length > 0)
    throw new PublicFailureError({ status: 400, message: describeIssues(issues), issues });
  // A parent's children (ctx.run, ctx.runMany) are not refused over a budget: they are stored and
  // held by the dispatcher like any queued LLM task. Refused, the parent's attempt would be handed
  // back uncounted and run again at once, over and over, until the window turned.
  const llmNames = [...new Set(rows.filter((row) => row.parentId == null).map((row) => row.name))].filter(
    (name) => getTaskDefinition(name)?.llm,
  );
  if (llmNames.length > 0) await refuseOverBudget(r, tenantId, llmNames);
  if (unavailable) throw unavailable;

  const names = [...new Set(rows.map((row) => row.name))];
  const [tenant, types] = await Promise.all([
    r.limits.tenant(tenantId),
    Promise.all(names.map(async (name) => [name, (await r.limits.type(name)).maxQueued] as const)),
  ]);
  let answers: BatchInserted[];
  try {
    answers = await r.store.insertBatch(rows, { tenant: tenant.maxQueued, types: new Map(types) });
  } catch (error) {
    if (error instanceof QueueFullError)
      for (const row of rows) emit(r, { kind: 'refused', reason: 'QUEUE_FULL', name: row.name, tenantId });
    throw error;
  }
  return answers.map(({ row, created, matched }) => {
    if (created) {
      emit(r, { kind: 'created', row });
      return { row, created };
    }
    const reason = matched === 'singleton' ? 'singleton' : 'idempotency';
    emit(r, { kind: 'deduplicated', row, reason });
    return { row, created, matched: reason };
  });
}
