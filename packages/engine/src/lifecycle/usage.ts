import type { TaskRow } from '@tasker/db';
import type { LlmCache, LlmCallUsage } from '@tasker/tasks';
import { emit, type LifecycleResources } from './resources.ts';

/**
 * A model call of a running attempt (`ctx.llm`) reported its usage: its row in the ledger
 * (`task_llm_calls`) and its tokens and cost added to the task's `usage` (summed, and per attempt),
 * in one transaction; PostgreSQL announces the task's change. `row` is the row as the attempt
 * claimed it. Undefined when the task was no longer RUNNING (only the ledger has the call then).
 */
export async function recordUsage(
  r: LifecycleResources,
  row: TaskRow,
  usage: LlmCallUsage,
): Promise<TaskRow | undefined> {
  const recorded = await r.store.recordUsage({
    taskId: row.id,
    tenantId: row.tenantId,
    taskName: row.name,
    attempt: row.attempts,
    baseUrl: usage.baseURL,
    model: usage.model,
    promptTokens: usage.promptTokens,
    completionTokens: usage.completionTokens,
    costUsd: usage.costUsd,
    cached: usage.cached ?? false,
  });
  // This process's next budget check of the tenant reads the ledger again (with this call in it).
  if (!usage.cached) r.limits.budgets.spent(row.tenantId);
  emit(r, { kind: 'llm-call', row, usage });
  return recorded;
}

/** The most entries the identical-prompt cache keeps per tenant (the sweep trims the oldest beyond). */
export const LLM_CACHE_MAX_PER_TENANT = 10_000;

/** The identical-prompt cache of one tenant, as `ctx.llm` uses it: the tenant bound, so it answers no other. */
export function llmCacheOf(r: LifecycleResources, tenantId: string): LlmCache {
  const { cache } = r.store.usage;
  return {
    get: (key) => cache.get(tenantId, key),
    put: (key, entry, ttlMs) => cache.put(tenantId, key, entry, ttlMs),
  };
}

/** The sweep's upkeep of the cache: expired entries, and each tenant's beyond LLM_CACHE_MAX_PER_TENANT. */
export async function pruneLlmCache(r: LifecycleResources): Promise<number> {
  const deleted = await r.store.usage.cache.prune(LLM_CACHE_MAX_PER_TENANT);
  if (deleted > 0) r.log.info({ deleted }, 'pruned the identical-prompt cache');
  return deleted;
}
