import { randomUUID } from 'node:crypto';
import { and, asc, desc, eq, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Database } from './client.ts';
import {
  type CatchUpPolicy,
  type ScheduleRow,
  schedules,
  type TaskRow,
  type TaskStatus,
  tasks,
} from './schema.ts';
import { CREATED_AT, createdMs, refuseClockSkew } from './tasks/id-time.ts';
import { lockKey } from './tasks/queue-limit.ts';
import { column, fromDriver, pgArray } from './tasks/rows.ts';
import { uuidv7 } from './uuidv7.ts';

/** What a schedule is made of (create, and the upsert by key). */
export interface ScheduleValues {
  tenantId: string;
  key: string | null;
  name: string;
  input: unknown;
  cron: string;
  timezone: string;
  catchUp: CatchUpPolicy;
  priority: number;
  maxAttempts: number | null;
  timeoutMs: number | null;
  ttlMs: number | null;
  concurrencyKey: string | null;
  paused: boolean;
  /** The first tick to fire (from the cron, computed by the caller). */
  nextFireAt: Date | null;
}

/** What a PATCH changes: a field left out stays as it is. */
export type ScheduleChange = Partial<
  Pick<ScheduleValues, 'cron' | 'timezone' | 'input' | 'paused' | 'catchUp' | 'nextFireAt'>
>;

/** One of a schedule's tasks, as its page lists it. */
export interface ScheduleRun {
  id: string;
  scheduledFor: Date;
  status: TaskStatus;
  createdAt: Date;
}

/** The ticks a firing pass decided for one due schedule (the engine's `planFires`). */
export interface PlannedFire {
  schedule: ScheduleRow;
  /** The ticks to fire now, oldest first: one task each. */
  ticks: Date[];
  /** The next tick after now (null: the cron fires no more). */
  nextFireAt: Date | null;
  /** The task rows' options, as the type resolves them. */
  maxAttempts: number;
  ttlMs: number | null;
  /** Why none of the ticks can fire (the task type left the catalog): each is recorded skipped. */
  skipAll?: 'UNKNOWN_TYPE';
}

/** The `max_queued` of the holders of a pass's fires (null: none). */
export interface FireLimits {
  tenant(id: string): number | null;
  type(name: string): number | null;
}

/** A tick's task, as a pass is about to insert it. */
export interface FiredTask {
  id: string;
  tenantId: string;
  name: string;
  scheduleId: string;
  scheduledFor: Date;
}

/** Why a tick made no task. */
export type SkipReason = 'QUEUE_FULL' | 'UNKNOWN_TYPE';

/** What one firing transaction did. */
export interface FireResult {
  /** Due schedules it held (and moved on). */
  schedules: number;
  /** The tasks it created, as stored. */
  fired: TaskRow[];
  /**
   * Ticks refused by a full queue (max_queued) or an unknown task type, recorded on their schedule:
   * one entry per tick (for the refusals' metric).
   */
  skipped: { tenantId: string; name: string; reason: SkipReason }[];
}

/**
 * The schedules table (migration 0018): a tenant's schedules, and the firing pass, which any number
 * of workers run at once (see `fire`).
 */
export class ScheduleStore {
  constructor(
    private readonly db: Database,
    private readonly pg: postgres.Sql,
  ) {}

  /**
   * A new schedule; with a key the tenant already uses, that schedule takes these values instead
   * (an upsert on schedules_owner_key_idx: racing creates with one key end with one schedule).
   */
  async upsert(values: ScheduleValues): Promise<{ row: ScheduleRow; created: boolean }> {
    const row = { id: randomUUID(), ...values };
    const [written] = await this.db
      .insert(schedules)
      .values(row)
      .onConflictDoUpdate({
        target: [schedules.tenantId, schedules.key],
        targetWhere: sql`${schedules.key} is not null`,
        set: {
          name: sql`excluded.name`,
          input: sql`excluded.input`,
          cron: sql`excluded.cron`,
          timezone: sql`excluded.timezone`,
          catchUp: sql`excluded.catch_up`,
          priority: sql`excluded.priority`,
          maxAttempts: sql`excluded.max_attempts`,
          timeoutMs: sql`excluded.timeout_ms`,
          ttlMs: sql`excluded.ttl_ms`,
          concurrencyKey: sql`excluded.concurrency_key`,
          paused: sql`excluded.paused`,
          nextFireAt: sql`excluded.next_fire_at`,
          updatedAt: sql`now()`,
        },
      })
      .returning();
    if (!written) throw new Error('schedule upsert returned no row');
    return { row: written, created: written.id === row.id };
  }

  /** The tenant's schedule, or undefined (another tenant's too). */
  async get(id: string, tenantId: string): Promise<ScheduleRow | undefined> {
    const [row] = await this.db
      .select()
      .from(schedules)
      .where(and(eq(schedules.id, id), eq(schedules.tenantId, tenantId)));
    return row;
  }

  /** A page of the tenant's schedules, oldest first; `cursor` is the last id of the previous page. */
  async list(
    tenantId: string,
    { limit, cursor }: { limit: number; cursor?: string },
  ): Promise<{ schedules: ScheduleRow[]; nextCursor: string | null }> {
    const after = cursor
      ? sql`(${schedules.createdAt}, ${schedules.id}) > (select created_at, id from schedules where id = ${cursor} and owner_id = ${tenantId})`
      : undefined;
    const rows = await this.db
      .select()
      .from(schedules)
      .where(and(eq(schedules.tenantId, tenantId), after))
      .orderBy(asc(schedules.createdAt), asc(schedules.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    return { schedules: page, nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
  }

  /** Whether `cursor` is one of the tenant's schedules (a cursor this API issued). */
  async exists(id: string, tenantId: string): Promise<boolean> {
    return (await this.get(id, tenantId)) !== undefined;
  }

  /** Changes the tenant's schedule; undefined when it has none with this id. */
  async update(id: string, tenantId: string, change: ScheduleChange): Promise<ScheduleRow | undefined> {
    const [row] = await this.db
      .update(schedules)
      .set({ ...change, updatedAt: sql`now()` })
      .where(and(eq(schedules.id, id), eq(schedules.tenantId, tenantId)))
      .returning();
    return row;
  }

  /** Deletes the tenant's schedule (its tasks stay, with its id); the row deleted, or undefined. */
  async delete(id: string, tenantId: string): Promise<ScheduleRow | undefined> {
    const [row] = await this.db
      .delete(schedules)
      .where(and(eq(schedules.id, id), eq(schedules.tenantId, tenantId)))
      .returning();
    return row;
  }

  /** The schedule's latest tasks, newest tick first (a backward walk of tasks_schedule_tick_idx). */
  async runs(id: string, tenantId: string, limit: number): Promise<ScheduleRun[]> {
    const rows = await this.db
      .select({
        id: tasks.id,
        scheduledFor: tasks.scheduledFor,
        status: tasks.status,
        createdAt: tasks.createdAt,
      })
      .from(tasks)
      .where(
        and(eq(tasks.scheduleId, id), eq(tasks.tenantId, tenantId), sql`${tasks.scheduleId} is not null`),
      )
      .orderBy(desc(tasks.scheduledFor))
      .limit(limit);
    return rows.map((r) => ({ ...r, scheduledFor: r.scheduledFor ?? r.createdAt }));
  }

  /**
   * One firing transaction: takes up to `batch` due schedules (not paused, next_fire_at passed)
   * with FOR UPDATE SKIP LOCKED, so that concurrent passes on other workers take other schedules;
   * asks `plan` which ticks fire; inserts one PENDING task per tick, its key in task_keys (the
   * trigger tasks_claim_keys skips the row of a tick already fired, by whatever pass); moves each
   * schedule's next_fire_at; commits all of it at once. A crash before the commit writes nothing
   * (the next pass fires the same ticks); after it, next_fire_at has moved past them.
   *
   * Under `max_queued` (the tenant's or the type's), as at submission: the holders' advisory locks
   * (tenants first, then types, each sorted, so that no two transactions wait in a cycle), a count
   * of their PENDING tasks, and only as many ticks as there is room for; the others are recorded as
   * skipped runs (`skipped_runs`, `last_skipped_for`, `last_skip_reason` QUEUE_FULL).
   */
  fire(
    batch: number,
    plan: (due: ScheduleRow[]) => Promise<{ fires: PlannedFire[]; limits: FireLimits }>,
  ): Promise<FireResult> {
    return this.pg.begin(async (tx) => {
      const raw = await tx`
        select * from schedules
        where paused = false and next_fire_at <= now()
        order by next_fire_at
        limit ${batch}
        for update skip locked`;
      if (raw.length === 0) return { schedules: 0, fired: [], skipped: [] };
      const rows = raw.map(scheduleFromDriver);
      const { fires: plans, limits } = await plan(rows);
      const skipped = new Map<string, { count: number; last: Date; reason: SkipReason }>();
      const refused: FireResult['skipped'] = [];
      const skip = (p: PlannedFire, tick: Date, reason: SkipReason) => {
        const s = skipped.get(p.schedule.id) ?? { count: 0, last: tick, reason };
        s.count += 1;
        if (tick >= s.last) s.last = tick;
        s.reason = reason;
        skipped.set(p.schedule.id, s);
        refused.push({ tenantId: p.schedule.tenantId, name: p.schedule.name, reason });
      };
      // Room under max_queued, per limited holder.
      const tenantIds = [...new Set(plans.filter((p) => !p.skipAll).map((p) => p.schedule.tenantId))]
        .filter((id) => limits.tenant(id) !== null)
        .sort();
      const typeNames = [...new Set(plans.filter((p) => !p.skipAll).map((p) => p.schedule.name))]
        .filter((name) => limits.type(name) !== null)
        .sort();
      const room = new Map<string, number>();
      // Tenants first, then types (the order of queue-limit.ts).
      const holders = [
        ...tenantIds.map((id) => ({ holder: 'tenant' as const, name: id, max: limits.tenant(id) ?? 0 })),
        ...typeNames.map((name) => ({ holder: 'type' as const, name, max: limits.type(name) ?? 0 })),
      ];
      if (holders.length > 0) {
        const locks = holders.map((h) => lockKey(h.holder, h.name));
        await tx`select pg_advisory_xact_lock(hashtextextended(k.key, 0))
                 from unnest(${pgArray(locks)}::text[]) with ordinality as k(key, n) order by k.n`;
        // Every holder's PENDING count in one statement (after the locks: a fresh snapshot), each
        // stopped at its limit.
        const counts = await tx<{ n: number }[]>`
          select case when k.holder = 'tenant'
            then (select count(*)::int from (select 1 from tasks where owner_id = k.name and status = 'PENDING' limit k.max) t)
            else (select count(*)::int from (select 1 from tasks where name = k.name and status = 'PENDING' limit k.max) t)
          end as n
          from unnest(${column(holders, (h) => h.holder)}::text[], ${column(holders, (h) => h.name)}::text[],
                      ${column(holders, (h) => h.max)}::int[]) with ordinality as k(holder, name, max, i)
          order by k.i`;
        holders.forEach((h, i) => {
          room.set(locks[i] as string, h.max - (counts[i]?.n ?? 0));
        });
      }
      const inserts: (FiredTask & PlannedFire)[] = [];
      const lastFire = new Map<string, Date>();
      for (const p of plans) {
        for (const tick of p.ticks) {
          if (p.skipAll) {
            skip(p, tick, p.skipAll);
            continue;
          }
          const holders = [lockKey('tenant', p.schedule.tenantId), lockKey('type', p.schedule.name)];
          if (holders.some((h) => (room.get(h) ?? 1) <= 0)) {
            skip(p, tick, 'QUEUE_FULL');
            continue;
          }
          for (const h of holders) if (room.has(h)) room.set(h, (room.get(h) ?? 0) - 1);
          lastFire.set(p.schedule.id, tick);
          inserts.push({
            ...p,
            id: uuidv7(),
            tenantId: p.schedule.tenantId,
            name: p.schedule.name,
            scheduleId: p.schedule.id,
            scheduledFor: tick,
          });
        }
      }
      const fired: TaskRow[] = [];
      if (inserts.length > 0) {
        const made = await tx`
          insert into tasks (id, owner_id, name, input, max_attempts, priority, timeout_ms, ttl_ms, concurrency_key,
                             schedule_id, scheduled_for, expires_at, created_at)
          select v.id, v.owner_id, v.name, v.input, v.max_attempts, v.priority, v.timeout_ms, v.ttl_ms,
                 coalesce(v.concurrency_key, v.owner_id), v.schedule_id, v.scheduled_for,
                 case when v.ttl_ms is null then null else now() + v.ttl_ms * interval '1 millisecond' end,
                 ${tx.unsafe(CREATED_AT)}
          from unnest(${column(inserts, (i) => i.id)}::uuid[], ${column(inserts, (i) => i.tenantId)}::text[],
            ${column(inserts, (i) => i.name)}::text[], ${column(inserts, (i) => JSON.stringify(i.schedule.input ?? null))}::jsonb[],
            ${column(inserts, (i) => i.maxAttempts)}::int[], ${column(inserts, (i) => i.schedule.priority)}::int[],
            ${column(inserts, (i) => i.schedule.timeoutMs)}::int[], ${column(inserts, (i) => i.ttlMs)}::int[],
            ${column(inserts, (i) => i.schedule.concurrencyKey)}::text[], ${column(inserts, (i) => i.scheduleId)}::uuid[],
            ${column(inserts, (i) => i.scheduledFor.toISOString())}::timestamptz[], ${column(inserts, createdMs)}::bigint[])
            as v(id, owner_id, name, input, max_attempts, priority, timeout_ms, ttl_ms, concurrency_key, schedule_id, scheduled_for,
                 created_ms)
          order by v.schedule_id, v.scheduled_for
          returning *`.catch(refuseClockSkew);
        for (const row of made) fired.push(fromDriver(row));
      }
      // Every held schedule moves on, in one statement.
      await tx`
        update schedules s set
          next_fire_at = v.next_fire_at,
          last_fire_at = coalesce(v.last_fire_at, s.last_fire_at),
          skipped_runs = s.skipped_runs + v.skipped,
          last_skipped_for = coalesce(v.last_skipped_for, s.last_skipped_for),
          last_skip_reason = coalesce(v.last_skip_reason, s.last_skip_reason)
        from unnest(${column(plans, (p) => p.schedule.id)}::uuid[],
                    ${column(plans, (p) => p.nextFireAt?.toISOString())}::timestamptz[],
                    ${column(plans, (p) => lastFire.get(p.schedule.id)?.toISOString())}::timestamptz[],
                    ${column(plans, (p) => skipped.get(p.schedule.id)?.count ?? 0)}::int[],
                    ${column(plans, (p) => skipped.get(p.schedule.id)?.last.toISOString())}::timestamptz[],
                    ${column(plans, (p) => skipped.get(p.schedule.id)?.reason)}::text[])
          as v(id, next_fire_at, last_fire_at, skipped, last_skipped_for, last_skip_reason)
        where s.id = v.id`;
      return {
        schedules: rows.length,
        fired,
        skipped: refused,
      };
    }) as Promise<FireResult>;
  }
}

/** A schedules row from postgres.js's raw snake_case answer. */
function scheduleFromDriver(raw: Record<string, unknown>): ScheduleRow {
  const date = (v: unknown) => (v == null ? null : new Date(v as string | Date));
  return {
    id: raw.id as string,
    tenantId: raw.owner_id as string,
    key: (raw.key as string | null) ?? null,
    name: raw.name as string,
    input: raw.input,
    cron: raw.cron as string,
    timezone: raw.timezone as string,
    catchUp: raw.catch_up as CatchUpPolicy,
    paused: raw.paused as boolean,
    priority: raw.priority as number,
    maxAttempts: (raw.max_attempts as number | null) ?? null,
    timeoutMs: (raw.timeout_ms as number | null) ?? null,
    ttlMs: (raw.ttl_ms as number | null) ?? null,
    concurrencyKey: (raw.concurrency_key as string | null) ?? null,
    nextFireAt: date(raw.next_fire_at),
    lastFireAt: date(raw.last_fire_at),
    skippedRuns: raw.skipped_runs as number,
    lastSkippedFor: date(raw.last_skipped_for),
    lastSkipReason: (raw.last_skip_reason as string | null) ?? null,
    createdAt: date(raw.created_at) as Date,
    updatedAt: date(raw.updated_at) as Date,
  };
}
