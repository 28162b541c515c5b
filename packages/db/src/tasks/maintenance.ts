import { sql } from 'drizzle-orm';
import type { Database } from '../client.ts';
import { taskSteps, tasks, webhookDeliveries } from '../schema.ts';

/** Keeping the tasks table lean: retention and vacuum. */
export class TaskMaintenance {
  constructor(private readonly db: Database) {}

  /**
   * Deletes up to `limit` tasks that finished before `before` (one short statement: no long lock),
   * and their webhook deliveries, steps, wait tokens and keys with them (by `webhook_deliveries_task_idx`,
   * `task_steps_pkey`, `wait_tokens_task_step_idx` and `task_keys_task_idx`: a task's deliveries,
   * steps, tokens and keys (its idempotency key, its schedule tick's) go when it goes). Returns how many tasks it deleted; call again until it returns less than `limit`.
   */
  async pruneFinished(before: Date, limit: number): Promise<number> {
    const [row] = await this.db.execute<{ count: number }>(sql`
      with gone as (
        delete from ${tasks} where ${tasks.id} in (
          select ${tasks.id} from ${tasks}
          where ${tasks.finishedAt} is not null and ${tasks.finishedAt} < ${before.toISOString()}::timestamptz
          limit ${limit})
        returning ${tasks.id} as id),
      deliveries as (delete from ${webhookDeliveries} where ${webhookDeliveries.taskId} in (select id from gone)),
      steps as (delete from ${taskSteps} where ${taskSteps.taskId} in (select id from gone)),
      tokens as (delete from wait_tokens where task_id in (select id from gone)),
      keys as (delete from task_keys where task_id in (select id from gone))
      select count(*)::int as count from gone`);
    return row?.count ?? 0;
  }

  /**
   * Vacuums (and analyzes) each partition of the tasks table (the table itself, were it not
   * partitioned) whose dead rows pass `share` of its live ones (and at least `minDead`). Every task
   * leaves two or more dead row versions behind (no update of a task can be HOT: status and
   * updated_at are indexed), and a PostgreSQL whose autovacuum is off, or behind, lets them pile up
   * until every claim and every index scan slows down. Mostly the current week's partition: the
   * finished weeks change little. Returns whether it vacuumed. VACUUM takes no lock that stops
   * reads or writes.
   */
  async vacuumIfBloated({ share = 0.2, minDead = 10_000 } = {}): Promise<boolean> {
    const bloated = await this.db.execute<{ name: string }>(sql`
      select s.relid::regclass::text as name
      from pg_stat_user_tables s
      where (s.relid = 'tasks'::regclass
          or s.relid in (select inhrelid from pg_inherits where inhparent = 'tasks'::regclass))
        and s.n_dead_tup >= greatest(${minDead}::bigint, ${share}::float8 * s.n_live_tup)`);
    for (const { name } of bloated) await this.db.execute(sql.raw(`vacuum (analyze) ${name}`));
    return bloated.length > 0;
  }
}
