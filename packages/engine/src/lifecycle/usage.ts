import type { TaskRow } from '@tasker/db';
import type { LlmCallUsage } from '@tasker/tasks';
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
  });
  emit(r, { kind: 'llm-call', row, usage });
  return recorded;
}
