import { sql } from 'drizzle-orm';
import type { Database } from '../client.ts';
import { type TaskRow, type TaskUsage, taskLlmCalls, tasks, type UsageTotals } from '../schema.ts';
import { type Assignments, whereOf } from './transition-sql.ts';

/** One model call that reported usage, as `ctx.llm` hands it to the worker. */
export interface LlmCall {
  taskId: string;
  tenantId: string;
  taskName: string;
  /** The attempt that made it (`tasks.attempts` when it ran). */
  attempt: number;
  baseUrl: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** null: the model has no price. */
  costUsd: number | null;
}

type CallTotals = Pick<LlmCall, 'model' | 'promptTokens' | 'completionTokens' | 'costUsd'>;

/** Dollars as the sums keep them: 10 decimals (the ledger's `numeric(20, 10)`), no float dust. */
const dollars = (value: number) => Math.round(value * 1e10) / 1e10;

function add(totals: UsageTotals | undefined, call: CallTotals): UsageTotals {
  return {
    model: call.model,
    promptTokens: (totals?.promptTokens ?? 0) + call.promptTokens,
    completionTokens: (totals?.completionTokens ?? 0) + call.completionTokens,
    // Unknown once any call's price is: a sum of the known ones would pass for the whole.
    costUsd:
      (totals && totals.costUsd === null) || call.costUsd === null
        ? null
        : dollars((totals?.costUsd ?? 0) + call.costUsd),
    calls: (totals?.calls ?? 0) + 1,
  };
}

/**
 * A task's usage with one more call: added to the sum and to its attempt's entry (the last entry,
 * when it is this attempt's; a new entry otherwise: after a retry by hand, attempts count from 1
 * again, as in `attempt_errors`).
 */
export function addUsage(current: TaskUsage | null, call: CallTotals & { attempt: number }): TaskUsage {
  const attempts = [...(current?.attempts ?? [])];
  const last = attempts.at(-1);
  if (last && last.attempt === call.attempt) {
    attempts[attempts.length - 1] = { attempt: call.attempt, ...add(last, call) };
  } else {
    attempts.push({ attempt: call.attempt, ...add(undefined, call) });
  }
  return { ...add(current ?? undefined, call), attempts };
}

/**
 * Model usage: the ledger of calls (`task_llm_calls`) and each task's sum (`tasks.usage`). Reports
 * and budgets will read the ledger by tenant and time (`task_llm_calls_tenant_created_idx`).
 */
export class UsageStore {
  constructor(private readonly db: Database) {}

  /**
   * Records one call in one transaction: its ledger row, always, and its task's usage, by the
   * `recordUsage` transition (the task still RUNNING; its row locked, so that calls of one attempt
   * made at once all count). Answers the task row, or undefined when the task is no longer RUNNING
   * (an attempt that ended before its call did): the ledger has the call, the task's sum does not.
   */
  record(call: LlmCall): Promise<TaskRow | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.insert(taskLlmCalls).values({
        tenantId: call.tenantId,
        taskId: call.taskId,
        taskName: call.taskName,
        attempt: call.attempt,
        baseUrl: call.baseUrl,
        model: call.model,
        promptTokens: call.promptTokens,
        completionTokens: call.completionTokens,
        costUsd: call.costUsd,
      });
      const [current] = await tx
        .select({ usage: tasks.usage })
        .from(tasks)
        .where(whereOf('recordUsage', call.taskId))
        .for('update');
      if (!current) return undefined;
      const set: Assignments<'recordUsage'> = { usage: addUsage(current.usage, call) };
      const [row] = await tx
        .update(tasks)
        .set({ ...set, updatedAt: sql`now()`, version: sql`${tasks.version} + 1` })
        .where(whereOf('recordUsage', call.taskId))
        .returning();
      return row;
    });
  }
}
