import { QueueFullError, type TaskInsert, type TaskRow, type TaskStore, uuidv7 } from '@tasker/db';
import { getTaskDefinition, type TaskDefinition } from '@tasker/tasks';
import { budgetError } from '../budgets.ts';
import { DependencyUnavailableError } from '../errors/dependency-unavailable.ts';
import { InvalidArgumentError } from '../errors/invalid-argument.ts';
import { InvalidTaskInputError } from '../errors/invalid-task-input.ts';
import { currentTraceCarrier } from '../observability/tracing.ts';
import { emit, type LifecycleResources } from './resources.ts';

/** The run options that debounce excludes, by the names the doors take them. */
const WIRE_NAMES = {
  delayMs: 'delay_ms',
  runAt: 'run_at',
  idempotencyKey: 'idempotency_key',
  singletonKey: 'singleton_key',
} as const;

/** The tenant of every task when AUTH_MODE=disabled (and of the rows made before tenants existed). */
export const DEFAULT_TENANT = 'default';

/** A submission: the task type, its parameters, and optional run options (the type gives defaults). */
export interface SubmitRequest {
  name: string;
  input: unknown;
  tenantId?: string;
  /** 0..100, higher first. */
  priority?: number;
  delayMs?: number;
  runAt?: Date;
  maxAttempts?: number;
  timeoutMs?: number;
  /** Not started within this many ms (from run_after, else now): it ends EXPIRED without running. */
  ttlMs?: number;
  /**
   * A type that calls a model: its identical calls within this many ms come from the cache (0: no
   * cache); default its `llm.cacheTtlMs`. Refused (400) on a type that calls no model.
   */
  cacheTtlMs?: number;
  idempotencyKey?: string;
  /** The task shares the concurrency limits of this key (`max_running_per_key`); default: the tenant. */
  concurrencyKey?: string;
  /** While a task of this tenant with this key is unfinished (PENDING, RUNNING), the submission returns it instead. */
  singletonKey?: string;
  /**
   * Submissions of this tenant with `key` collapse into one PENDING task, which starts `delayMs`
   * after the last of them, with the last one's input and options. Not with `delayMs`/`runAt`,
   * `idempotencyKey` or `singletonKey`.
   */
  debounce?: { key: string; delayMs: number };
  /** Labels to find the task by (checked at the edge: at most 10, 1-64 characters each, no duplicates). */
  tags?: string[];
  /** A small JSON object of the caller's, kept with the task (checked at the edge: at most 4 KB as JSON). */
  metadata?: Record<string, unknown>;
  /**
   * When the task finishes, its final state is POSTed here, signed with the tenant's task webhook
   * secret (POST /webhooks/task-secret), at least once (the same URL rules as a webhook's).
   */
  webhookUrl?: string;
  /** The task whose handler submits this one (`ctx.run`, `ctx.runMany`): its `parent_id`. */
  parentId?: string;
}

export interface Submitted {
  row: TaskRow;
  /** True when an idempotency key answered with the task it created earlier. */
  replayed: boolean;
  /**
   * When an existing task answered instead of a new one because of a key: `singleton` (the
   * unfinished task holding the singleton key, unchanged) or `debounce` (the PENDING task holding
   * the debounce key, which took this submission's input and start).
   */
  deduplicated?: 'singleton' | 'debounce';
}

/**
 * Steps 2–4 of a task's way (docs/architecture.md, "A task's way, from submit to result"): checks
 * the parameters against the task type's schema (the only place they are checked: the worker trusts
 * the stored, parsed input), then records the row (PENDING; PostgreSQL announces it on commit).
 * That is all a submission writes: the task waits in PostgreSQL for its turn, and the dispatcher
 * (`dispatch/dispatcher.ts`, in a worker) hands it to the queue when its tenant's turn and limits
 * allow. A submission thus needs only PostgreSQL.
 */
export async function submit(r: LifecycleResources, request: SubmitRequest): Promise<Submitted> {
  const definition = getTaskDefinition(request.name);
  if (!definition) {
    throw new InvalidTaskInputError(`Unknown task type "${request.name}"`, [
      {
        code: 'custom',
        path: [],
        message: `Unknown task type "${request.name}"`,
        input: request.name,
      },
    ]);
  }
  const parsed = definition.input.safeParse(request.input);
  if (!parsed.success) throw new InvalidTaskInputError('Invalid task parameters', parsed.error.issues);
  if (request.cacheTtlMs !== undefined && !definition.llm)
    throw new InvalidArgumentError(
      'cache_ttl_ms',
      `${definition.name} calls no model: it has nothing to cache`,
    );
  // The tenant's own limit first: over its LLM budget it is told so, whatever the server's provider.
  if (definition.llm) await refuseOverBudget(r, request.tenantId ?? DEFAULT_TENANT, [definition.name]);
  const unavailable = definition.unavailable?.(r.config);
  if (unavailable) throw new DependencyUnavailableError(definition.name, unavailable);

  const { debounce } = request;
  if (debounce) {
    // It sets the start and the key itself; every door's 400 names `debounce` in its issues.
    const others = (['delayMs', 'runAt', 'idempotencyKey', 'singletonKey'] as const)
      .filter((option) => request[option] !== undefined)
      .map((option) => WIRE_NAMES[option]);
    if (others.length > 0) {
      throw new InvalidArgumentError(
        'debounce',
        `give debounce without ${others.join(' or ')} (it sets the start and the key itself)`,
      );
    }
  }

  if (request.webhookUrl !== undefined) {
    const refusal = await r.checkWebhookUrl(request.tenantId ?? DEFAULT_TENANT, request.webhookUrl);
    if (refusal !== undefined) throw new InvalidArgumentError('webhook_url', refusal);
  }

  const { row, created, matched } = await insertWithinLimits(r, taskRow(request, definition, parsed.data));
  if (matched === 'debounce') return joined(r, row, definition.name);
  if (matched === 'singleton') {
    emit(r, { kind: 'deduplicated', row, reason: 'singleton' });
    return { row, replayed: false, deduplicated: 'singleton' };
  }
  if (!created) {
    emit(r, { kind: 'deduplicated', row, reason: 'idempotency' });
    return { row, replayed: true }; // an idempotent replay
  }
  emit(r, { kind: 'created', row });
  // The row waits for its turn: the dispatcher, woken by the insert's announcement, hands it to the queue.
  return { row, replayed: false };
}

/**
 * The row a checked submission stores (`input`: its parameters as its type's schema parsed them),
 * with the type's defaults; shared by `submit` and `submitMany`.
 */
export function taskRow(request: SubmitRequest, definition: TaskDefinition, input: unknown): TaskInsert {
  const { debounce } = request;
  const runAfter = request.runAt ?? (request.delayMs ? new Date(Date.now() + request.delayMs) : null);
  return {
    // Time-ordered (UUIDv7): a batch's rows land together at the primary key's right edge.
    id: uuidv7(),
    // The request's trace, for the job the dispatcher adds later (the attempt joins this trace).
    trace: currentTraceCarrier() ?? null,
    tenantId: request.tenantId ?? DEFAULT_TENANT,
    name: definition.name,
    input,
    maxAttempts: request.maxAttempts ?? definition.retry.attempts,
    priority: request.priority ?? 0,
    timeoutMs: request.timeoutMs ?? null,
    ttlMs: request.ttlMs ?? definition.ttlMs ?? null,
    idempotencyKey: request.idempotencyKey ?? null,
    runAfter,
    concurrencyKey: request.concurrencyKey ?? null,
    singletonKey: request.singletonKey ?? null,
    debounceKey: debounce?.key ?? null,
    debounceDelayMs: debounce?.delayMs,
    tags: request.tags ?? [],
    metadata: request.metadata ?? null,
    webhookUrl: request.webhookUrl ?? null,
    parentId: request.parentId ?? null,
    llmCacheTtlMs: request.cacheTtlMs ?? null,
  };
}

/**
 * `store.insert` under the `max_queued` of the task's tenant and of its type (effective limits, at
 * most 1 s old): with one, the insert counts the PENDING tasks under an advisory lock and refuses
 * the task beyond it (QueueFullError: 429 QUEUE_FULL, nothing stored, counted in
 * `tasker_tasks_refused_total`); without, it is the batched insert as ever.
 */
async function insertWithinLimits(
  r: LifecycleResources,
  row: Parameters<TaskStore['insert']>[0],
): ReturnType<TaskStore['insert']> {
  const tenantId = row.tenantId ?? DEFAULT_TENANT;
  const [tenant, type] = await Promise.all([r.limits.tenant(tenantId), r.limits.type(row.name)]);
  try {
    return await r.store.insert(row, { maxQueued: { tenant: tenant.maxQueued, type: type.maxQueued } });
  } catch (error) {
    if (error instanceof QueueFullError)
      emit(r, { kind: 'refused', reason: 'QUEUE_FULL', name: row.name, tenantId });
    throw error;
  }
}

/**
 * A submission of LLM task types (`names`) by a tenant over an LLM budget is refused
 * (BudgetExceededError: 429 BUDGET_EXCEEDED, Retry-After to the window's end), nothing stored,
 * counted in `tasker_tasks_refused_total`.
 */
export async function refuseOverBudget(
  r: LifecycleResources,
  tenantId: string,
  names: readonly string[],
): Promise<void> {
  const exceeded = await r.limits.budgets.exceeded(tenantId);
  if (!exceeded) return;
  for (const name of names) emit(r, { kind: 'refused', reason: 'BUDGET_EXCEEDED', name, tenantId });
  throw budgetError(tenantId, exceeded);
}

/**
 * A debounced submission joined the PENDING task holding its key: that task now has its input and
 * its start (run_after). Nothing else to move: the dispatcher hands out only tasks that are due, so
 * a debounced task has no job until then; one handed out just before the join (due, not started) is
 * refused by the claim, which never starts a task before its run_after, and waits until then.
 */
async function joined(r: LifecycleResources, row: TaskRow, name: string): Promise<Submitted> {
  if (row.name !== name) {
    throw new InvalidArgumentError(
      'debounce.key',
      `is held by a PENDING ${row.name} task (${row.id}): one debounce key collapses tasks of one type`,
    );
  }
  emit(r, { kind: 'debounced', row });
  return { row, replayed: false, deduplicated: 'debounce' };
}
