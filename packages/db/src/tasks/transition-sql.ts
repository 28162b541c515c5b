import { type FieldsOf, type Guard, type TaskStatus, TRANSITIONS, type TransitionName } from '@tasker/states';
import { and, eq, type SQL, sql } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { tasks } from '../schema.ts';
import { childAfterParent, createdAtOf } from './id-time.ts';

/**
 * The SQL of the state machine (@tasker/states): every UPDATE of a task row takes its WHERE clause
 * from here, built from the transition's `from` statuses and guards, so the rules live in one table
 * and the statements cannot drift from them.
 */

/** Each guard over the task row aliased `t`: constant text, no parameter (ofTenant takes one: `whereOf`). */
const GUARD_SQL: Record<Exclude<Guard, 'ofTenant'>, (t: string) => string> = {
  cancelNotRequested: (t) => `${t}.cancel_requested_at is null`,
  cancelRequested: (t) => `${t}.cancel_requested_at is not null`,
  notExpired: (t) => `(${t}.expires_at is null or ${t}.expires_at > now())`,
  expired: (t) => `${t}.expires_at <= now()`,
  due: (t) => `(${t}.run_after is null or ${t}.run_after <= now())`,
  // Children are created after their parent (childAfterParent): older partitions are not read.
  noUnfinishedChildren: (t) =>
    `not exists (select 1 from tasks c where c.parent_id = ${t}.id and ${childAfterParent('c', t)} and c.finished_at is null)`,
  singletonKeyFree: (t) =>
    `(${t}.singleton_key is null or not exists (select 1 from task_keys k where k.owner_id = ${t}.owner_id and k.kind = 'singleton' and k.key = ${t}.singleton_key))`,
};

const quoted = (statuses: readonly TaskStatus[]) => statuses.map((s) => `'${s}'`).join(', ');

/**
 * `t.status` is one of `statuses`, for a statement that finds its rows by id: compared as text, so
 * that no index on status (the partial ones over unfinished, PENDING or RUNNING tasks) can serve it
 * and the rows are found by the primary key whatever the planner's statistics say. Compared as the
 * enum, a planner that thinks few tasks are unfinished (statistics taken on a quiet table, or none
 * at all on a new database whose autovacuum is off) walks every unfinished task for each batch
 * instead of looking 20 ids up: measured with 10,000 PENDING tasks, 500 claims of 20 took 43 s
 * against 2.2 s.
 */
export function statusByIdText(statuses: readonly TaskStatus[], t = 't'): string {
  return statuses.length === 1
    ? `${t}.status::text = '${statuses[0]}'`
    : `${t}.status::text in (${quoted(statuses)})`;
}

/**
 * Transition `name`'s condition on the row aliased `t` (its statuses and guards), as constant SQL
 * text for the batched statements, which find their rows by id (`statusByIdText`). A transition
 * guarded by tenant is not allowed here: it needs a parameter (`whereOf`).
 */
export function conditionText(name: TransitionName, t = 't'): string {
  const { from, guards } = TRANSITIONS[name];
  const parts = [statusByIdText(from, t)];
  for (const guard of guards as readonly Guard[]) {
    if (guard === 'ofTenant') throw new Error(`transition ${name} needs a tenant: use whereOf`);
    parts.push(GUARD_SQL[guard](t));
  }
  return parts.join(' and ');
}

/**
 * The status condition shared by several transitions that one statement chooses among (`choiceText`):
 * they must start from the same statuses. For statements that find their rows by id (`statusByIdText`).
 */
export function sharedFromText(names: readonly TransitionName[], t = 't'): string {
  const froms = new Set(names.map((n) => TRANSITIONS[n].from.join()));
  const first = names[0];
  if (!first || froms.size !== 1)
    throw new Error(`transitions ${names.join(', ')} start from different statuses`);
  return statusByIdText(TRANSITIONS[first].from, t);
}

/**
 * The WHERE clause of transition `name` on task `id` (drizzle; with the id's created_at bounds):
 * its statuses and guards, and the
 * tenant when the transition is guarded by one and a tenant is given (another tenant's task is as
 * good as missing).
 */
export function whereOf(name: TransitionName, id: string, tenantId?: string): SQL | undefined {
  const { from, guards } = TRANSITIONS[name];
  const parts: (SQL | undefined)[] = [
    eq(tasks.id, id),
    createdAtOf([id]),
    sql.raw(`"tasks".status in (${quoted(from)})`),
  ];
  for (const guard of guards as readonly Guard[]) {
    if (guard === 'ofTenant') {
      if (tenantId !== undefined) parts.push(eq(tasks.tenantId, tenantId));
    } else {
      parts.push(sql.raw(GUARD_SQL[guard]('"tasks"')));
    }
  }
  return and(...parts);
}

/**
 * Transition `name`'s condition on any row of the statement (drizzle, table `tasks`): its statuses
 * and guards, the `ofTenant` guard as `tenantId` (a statement over many rows: a bulk action).
 */
export function conditionOf(name: TransitionName, tenantId: string): SQL | undefined {
  const { from, guards } = TRANSITIONS[name];
  const parts: (SQL | undefined)[] = [sql.raw(`"tasks".status in (${quoted(from)})`)];
  for (const guard of guards as readonly Guard[]) {
    parts.push(guard === 'ofTenant' ? eq(tasks.tenantId, tenantId) : sql.raw(GUARD_SQL[guard]('"tasks"')));
  }
  return and(...parts);
}

/** The status transition `name` writes (undefined: the status stays). */
export function statusAfter(name: TransitionName): TaskStatus | undefined {
  const to = TRANSITIONS[name].to;
  return to === 'unchanged' ? undefined : to;
}

/**
 * One of several transitions chosen per row, in order: `case when <guards of the first> [and its
 * extra condition] then '<its status>' ... end`. The last branch is the `else`. Every branch must
 * start from statuses the statement's WHERE clause allows (the caller's `conditionText` of their
 * common `from`).
 */
export function choiceText(branches: readonly { name: TransitionName; when?: string }[], t = 't'): string {
  const last = branches.at(-1);
  if (!last) throw new Error('choiceText needs a branch');
  const to = (name: TransitionName) => `'${statusAfter(name) ?? 'unchanged'}'`;
  const arms = branches.slice(0, -1).map(({ name, when }) => {
    const guards = (TRANSITIONS[name].guards as readonly Guard[]).map((g) => {
      if (g === 'ofTenant') throw new Error(`transition ${name} needs a tenant`);
      return GUARD_SQL[g](t);
    });
    const condition = [...guards, ...(when ? [when] : [])].join(' and ') || 'true';
    return `when ${condition} then ${to(name)}`;
  });
  return `(case ${arms.join(' ')} else ${to(last.name)} end)::task_status`;
}

/**
 * What transition `T` writes: exactly the fields it declares in @tasker/states, each required (a
 * statement that writes a field its transition does not declare is a type error).
 */
export type Assignments<T extends TransitionName> = {
  [K in FieldsOf<T>]: PgUpdateSetSource<typeof tasks>[K];
};

// Every field a transition may declare is a column of the tasks table.
type Undeclared = Exclude<FieldsOf<TransitionName>, keyof typeof tasks.$inferInsert>;
const everyFieldIsAColumn: [Undeclared] extends [never] ? true : Undeclared = true;
void everyFieldIsAColumn;
