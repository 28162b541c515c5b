import { TASK_STATUSES, type TaskStatus } from '@tasker/states';
import type postgres from 'postgres';
import type { TaskRow } from '../schema.ts';
import { andChildrenOf, andCreatedAt, childAfterParent } from './id-time.ts';
import { byId, pgArray } from './rows.ts';
import { conditionText } from './transition-sql.ts';

const CHILDREN_DONE = conditionText('childrenDone');

/** How many children a task has, in all and by status (every status named, 0 included). */
export interface ChildrenSummary {
  total: number;
  byStatus: Record<TaskStatus, number>;
}

/** A child as its parent's page lists it. */
export interface ChildRow {
  id: string;
  name: string;
  status: TaskStatus;
  createdAt: Date;
  finishedAt: Date | null;
}

const emptyCounts = (): Record<TaskStatus, number> =>
  Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;

/**
 * Child tasks (`ctx.run`, `ctx.runMany`; migration 0027): a task's children by `parent_id`, what a
 * parent waits for, and the `childrenDone` transition (WAITING → PENDING once no child of it is
 * unfinished). The finishing trigger makes that transition in the commit that ends the last child;
 * `wakeDone` is the waker's pass for the parent two last children ending at once both missed (or
 * that ended before the parent's wait committed).
 */
export class TaskChildren {
  constructor(private readonly pg: postgres.Sql) {}

  /** Each task's children counted by status (a task without children: absent from the map). */
  async summaries(parentIds: readonly string[]): Promise<Map<string, ChildrenSummary>> {
    const out = new Map<string, ChildrenSummary>();
    if (parentIds.length === 0) return out;
    const rows = await this.pg<{ parent_id: string; status: TaskStatus; count: number }[]>`
      select parent_id, status, count(*)::int as count from tasks t
      where parent_id = any(${pgArray(parentIds)}::uuid[]) ${andChildrenOf(this.pg, 't', parentIds)}
      group by parent_id, status`;
    for (const row of rows) {
      let summary = out.get(row.parent_id);
      if (!summary) {
        summary = { total: 0, byStatus: emptyCounts() };
        out.set(row.parent_id, summary);
      }
      summary.total += row.count;
      summary.byStatus[row.status] += row.count;
    }
    return out;
  }

  /** A task's first `limit` children, oldest first (its submission order). */
  async list(parentId: string, limit: number): Promise<ChildRow[]> {
    const rows = await this.pg<
      {
        id: string;
        name: string;
        status: TaskStatus;
        created_at: Date | string;
        finished_at: Date | string | null;
      }[]
    >`
      select id, name, status, created_at, finished_at from tasks t
      where parent_id = ${parentId}::uuid ${andChildrenOf(this.pg, 't', [parentId])}
      order by created_at, id limit ${limit}`;
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      status: r.status,
      createdAt: new Date(r.created_at),
      finishedAt: r.finished_at === null ? null : new Date(r.finished_at),
    }));
  }

  /** How many ancestors a task has (0: a top-level task), counted up to `max` + 1 at most. */
  async depth(id: string, max: number): Promise<number> {
    const [row] = await this.pg<{ depth: number }[]>`
      with recursive up as (
        select parent_id, 0 as depth from tasks t where t.id = ${id}::uuid ${andCreatedAt(this.pg, 't', [id])}
        union all
        select t.parent_id, up.depth + 1 from tasks t join up on t.id = up.parent_id
        where up.depth <= ${max})
      select max(depth)::int as depth from up`;
    return row?.depth ?? 0;
  }

  /** The ids of a task's children that are RUNNING with a cancel asked for (their workers get a signal). */
  async cancelling(parentId: string): Promise<string[]> {
    const rows = await this.pg<{ id: string }[]>`
      select id from tasks t where parent_id = ${parentId}::uuid ${andChildrenOf(this.pg, 't', [parentId])}
        and status::text = 'RUNNING' and cancel_requested_at is not null`;
    return rows.map((r) => r.id);
  }

  /** Whether a child of the task is unfinished (a retry of it is refused meanwhile). */
  async anyUnfinished(parentId: string): Promise<boolean> {
    const [row] = await this.pg<{ any: boolean }[]>`
      select exists (select 1 from tasks t where parent_id = ${parentId}::uuid
        ${andChildrenOf(this.pg, 't', [parentId])} and finished_at is null) as any`;
    return row?.any ?? false;
  }

  /**
   * `childrenDone` for up to `limit` parents waiting for children that have all ended (walks
   * tasks_waiting_children_idx), skipping rows another transaction holds.
   */
  async wakeDone(limit: number): Promise<TaskRow[]> {
    const rows = await this.pg`
      update tasks t set status = 'PENDING', version = t.version + 1, updated_at = now(), waiting_for = null
      from (select p.id from tasks p where (p.waiting_for ->> 'kind') = 'children'
              and not exists (select 1 from tasks c where c.parent_id = p.id
                and ${this.pg.unsafe(childAfterParent('c', 'p'))} and c.finished_at is null)
            limit ${limit} for update of p skip locked) due
      where t.id = due.id and (t.waiting_for ->> 'kind') = 'children' and ${this.pg.unsafe(CHILDREN_DONE)}
      returning t.*`;
    return [...byId(rows).values()];
  }
}
