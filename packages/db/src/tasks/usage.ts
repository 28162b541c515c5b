import { sql } from 'drizzle-orm';
import type { Database } from '../client.ts';
import { llmCache, type TaskRow, type TaskUsage, taskLlmCalls, tasks, type UsageTotals } from '../schema.ts';
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
  /** Answered from the identical-prompt cache: no provider call (its tokens and cost are 0). */
  cached?: boolean;
}

type CallTotals = Pick<LlmCall, 'model' | 'promptTokens' | 'completionTokens' | 'costUsd' | 'cached'>;

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
    ...cachedOf(totals, call),
  };
}

/** The cache's share of a sum: present once any call was answered from the cache. */
function cachedOf(
  totals: UsageTotals | undefined,
  call: CallTotals,
): Pick<UsageTotals, 'cachedCalls' | 'cached'> {
  const cachedCalls = (totals?.cachedCalls ?? 0) + (call.cached ? 1 : 0);
  if (cachedCalls === 0) return {};
  return { cachedCalls, cached: cachedCalls === (totals?.calls ?? 0) + 1 };
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
  /** The identical-prompt cache (`llm_cache`). */
  readonly cache: LlmCacheStore;

  constructor(private readonly db: Database) {
    this.cache = new LlmCacheStore(db);
  }

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
        cached: call.cached ?? false,
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

/** What a usage report groups its calls by: the UTC day, the task type, the model, or the tenant. */
export const USAGE_GROUPS = ['day', 'task_type', 'model', 'tenant'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

/** What a set of calls used. */
export interface UsageSums {
  promptTokens: number;
  completionTokens: number;
  /** Dollars of the calls with a price (a call of a model without one counts 0 here). */
  costUsd: number;
  calls: number;
  /** Distinct tasks that made the calls. */
  tasks: number;
}

/** One group of a usage report: what its calls used. */
export interface UsageReportRow extends UsageSums {
  /** The group: a UTC day (`2026-12-03`), a task type, a model or a tenant. */
  key: string;
}

/** A usage report: its groups, by key, and the whole range (distinct tasks counted once). */
export interface UsageReport {
  rows: UsageReportRow[];
  total: UsageSums;
}

export interface UsageQuery {
  /** One tenant's calls; undefined: every tenant's (an operator's report). */
  tenantId: string | undefined;
  /** From this instant, included. */
  from: Date;
  /** To this instant, excluded. */
  to: Date;
  groupBy: UsageGroup;
}

const GROUP_KEYS: Record<UsageGroup, ReturnType<typeof sql>> = {
  day: sql`to_char(${taskLlmCalls.createdAt} at time zone 'UTC', 'YYYY-MM-DD')`,
  task_type: sql`${taskLlmCalls.taskName}`,
  model: sql`${taskLlmCalls.model}`,
  tenant: sql`${taskLlmCalls.tenantId}`,
};

/** The ledger's reads: usage reports (a budget's spend: `LimitStore.spend`). */
export class UsageReports {
  constructor(private readonly db: Database) {}

  /**
   * The calls of a tenant (or of every tenant) in [from, to), grouped, by key, and their total: one
   * query (`grouping sets`: the groups and the whole range; distinct tasks are counted over the
   * range, not summed: a task may call two models). A tenant's rows are read by
   * `task_llm_calls_tenant_created_idx`, every tenant's by `task_llm_calls_created_idx`.
   */
  async report(query: UsageQuery): Promise<UsageReport> {
    const key = GROUP_KEYS[query.groupBy];
    const tenant =
      query.tenantId === undefined ? sql`true` : sql`${taskLlmCalls.tenantId} = ${query.tenantId}`;
    const rows = await this.db.execute<{
      key: string | null;
      total: boolean;
      prompt_tokens: string | null;
      completion_tokens: string | null;
      cost_usd: string | null;
      calls: string;
      tasks: string;
    }>(sql`
      select ${key} as key,
             grouping(${key}) = 1 as total,
             sum(${taskLlmCalls.promptTokens})::text as prompt_tokens,
             sum(${taskLlmCalls.completionTokens})::text as completion_tokens,
             coalesce(sum(${taskLlmCalls.costUsd}), 0)::text as cost_usd,
             count(*)::text as calls,
             count(distinct ${taskLlmCalls.taskId})::text as tasks
      from ${taskLlmCalls}
      where ${tenant} and ${taskLlmCalls.createdAt} >= ${query.from.toISOString()}
        and ${taskLlmCalls.createdAt} < ${query.to.toISOString()}
      group by grouping sets ((${key}), ()) order by 2, 1`);
    const sums = (row: (typeof rows)[number]): UsageSums => ({
      promptTokens: Number(row.prompt_tokens ?? 0),
      completionTokens: Number(row.completion_tokens ?? 0),
      costUsd: dollars(Number(row.cost_usd ?? 0)),
      calls: Number(row.calls),
      tasks: Number(row.tasks),
    });
    // The whole range's row is there also without calls (zeros): an aggregate over no rows.
    const total = rows.find((row) => row.total);
    return {
      rows: rows.flatMap((row) => (row.total ? [] : [{ key: String(row.key), ...sums(row) }])),
      total: total ? sums(total) : { promptTokens: 0, completionTokens: 0, costUsd: 0, calls: 0, tasks: 0 },
    };
  }
}

/** A reply stored in the identical-prompt cache. */
export interface CachedReply {
  model: string;
  reply: string;
}

/** The most characters of a reply the cache stores (a longer one is not cached). */
export const MAX_CACHED_REPLY_CHARS = 200_000;

/**
 * The identical-prompt cache (`llm_cache`, migration 0029): replies by tenant and a hash of the
 * call (model, messages, parameters), each until its expiry. A tenant's entries answer only it (the
 * tenant is half the key). Bounded: `prune` deletes the expired, and a tenant's entries beyond
 * `maxPerTenant`, oldest first.
 */
export class LlmCacheStore {
  constructor(private readonly db: Database) {}

  /** The unexpired reply stored under (tenant, key), or undefined. One primary-key lookup. */
  async get(tenantId: string, key: string): Promise<CachedReply | undefined> {
    const [row] = await this.db
      .select({ model: llmCache.model, reply: llmCache.reply })
      .from(llmCache)
      .where(
        sql`${llmCache.tenantId} = ${tenantId} and ${llmCache.key} = ${key} and ${llmCache.expiresAt} > now()`,
      );
    return row;
  }

  /** Stores a reply for `ttlMs` (replacing one under the same key). A reply over MAX_CACHED_REPLY_CHARS is not stored. */
  async put(tenantId: string, key: string, entry: CachedReply, ttlMs: number): Promise<void> {
    if (entry.reply.length > MAX_CACHED_REPLY_CHARS) return;
    const expiresAt = sql`now() + ${ttlMs} * interval '1 millisecond'`;
    await this.db
      .insert(llmCache)
      .values({ tenantId, key, model: entry.model, reply: entry.reply, expiresAt })
      .onConflictDoUpdate({
        target: [llmCache.tenantId, llmCache.key],
        set: { model: entry.model, reply: entry.reply, createdAt: sql`now()`, expiresAt },
      });
  }

  /**
   * Deletes expired entries (up to `batch`, by `llm_cache_expires_idx`) and the entries of any
   * tenant beyond its `maxPerTenant` newest (up to `batch`: the tenants over it found by counting
   * `llm_cache_tenant_created_idx`, then only their entries ranked by window functions, no query
   * per tenant). Returns how many went.
   */
  async prune(maxPerTenant: number, batch = 5000): Promise<number> {
    const expired = await this.db.execute<{ n: number }>(sql`
      with gone as (
        delete from ${llmCache} where ctid in (
          select ctid from ${llmCache} where ${llmCache.expiresAt} <= now() limit ${batch})
        returning 1)
      select count(*)::int as n from gone`);
    // Only the tenants over their cap are ranked (counted from llm_cache_tenant_created_idx alone:
    // usually none, and then nothing is sorted). `newer`: how many entries of its tenant are newer
    // (ties by key). The oldest go first.
    const over = await this.db.execute<{ n: number }>(sql`
      with crowded as (
        select tenant_id from ${llmCache} group by tenant_id having count(*) > ${maxPerTenant}),
      gone as (
        delete from ${llmCache} where ctid in (
          select id from (
            select ctid as id,
                   count(*) over (partition by tenant_id)
                     - row_number() over (partition by tenant_id order by created_at, key) as newer
            from ${llmCache} where tenant_id in (select tenant_id from crowded)) ranked
          where newer >= ${maxPerTenant} limit ${batch})
        returning 1)
      select count(*)::int as n from gone`);
    return (expired[0]?.n ?? 0) + (over[0]?.n ?? 0);
  }
}
