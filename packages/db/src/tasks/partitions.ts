import type postgres from 'postgres';

/*
 * The weekly partitions of the `tasks` table and of its steps' (`task_steps`, a week of steps
 * holding the steps of that week's tasks) (docs/partitioning.md, "Partitions made ahead" and
 * "Retention by partition"; implementation steps 5 and 7). The sweeper's leader keeps weeks made
 * ahead and drops the weeks past retention, a week of tasks with its week of steps. On an
 * unpartitioned table every method finds no partition and does nothing.
 */

const WEEK_MS = 7 * 24 * 3600 * 1000;

/**
 * Weeks after the current one kept made ahead: by every migration run (each process's start) and
 * by the worker's sweeper. A row past the last week fails its insert.
 */
export const WEEKS_AHEAD = 4;

/** The start of the week (Monday 00:00 UTC) holding `ms`. */
export function weekStart(ms: number): number {
  const day = new Date(ms);
  const midnight = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate());
  const sinceMonday = (day.getUTCDay() + 6) % 7;
  return midnight - sinceMonday * 24 * 3600 * 1000;
}

/** The tables partitioned by week, each by the column that holds its task's created_at. */
export type WeeklyTable = 'tasks' | 'task_steps';
const KEY: Record<WeeklyTable, string> = { tasks: 'created_at', task_steps: 'task_created_at' };

/** A week's partition's name: the table's, `_w` and its Monday (`tasks_w20261130`). */
export function weekName(start: number, table: WeeklyTable = 'tasks'): string {
  return `${table}_w${new Date(start).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

export interface TaskPartition {
  name: string;
  /** Its lower bound; null: MINVALUE (the legacy partition, the table as it was before). */
  from: Date | null;
  to: Date;
  /** A DETACH … CONCURRENTLY that did not finish (finished by the next `dropExpired`). */
  detachPending: boolean;
}

export interface RetentionReport {
  dropped: string[];
  /** Weeks past the cutoff that stay, and why (a task still unfinished, or finished since). */
  kept: { name: string; why: string }[];
}

/**
 * The tables whose rows belong to a task, deleted with its week (as `pruneFinished` does). Its
 * steps go with their own week's partition (`dropSteps`).
 */
const DEPENDENTS = ['webhook_deliveries', 'wait_tokens', 'task_keys'] as const;

const BOUND = /FROM \((?:MINVALUE|'([^']+)')\) TO \('([^']+)'\)/;

export class TaskPartitions {
  private readonly tasks: string;
  private readonly steps: string;

  /** `schema`: where `tasks` and its dependents are (public; a test's own). */
  constructor(
    private readonly sql: postgres.Sql,
    private readonly schema = 'public',
  ) {
    this.tasks = `${quote(schema)}.tasks`;
    this.steps = `${quote(schema)}.task_steps`;
  }

  private qualified(name: string): string {
    return `${quote(this.schema)}.${quote(name)}`;
  }

  /** Whether `tasks` is a partitioned table. */
  async partitioned(): Promise<boolean> {
    const [row] = await this.sql<{ partitioned: boolean }[]>`
      select coalesce((select relkind = 'p' from pg_class where oid = to_regclass(${this.tasks})), false) as partitioned`;
    return row?.partitioned ?? false;
  }

  /** The partitions of `tasks` (or of `task_steps`), oldest first. */
  async list(table: WeeklyTable = 'tasks'): Promise<TaskPartition[]> {
    const rows = await this.sql<{ name: string; bound: string; pending: boolean }[]>`
      select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound, i.inhdetachpending as pending
      from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = to_regclass(${this.qualified(table)})`;
    const partitions: TaskPartition[] = [];
    for (const row of rows) {
      const match = BOUND.exec(row.bound);
      if (!match?.[2]) continue; // not a range partition of ours (a DEFAULT one)
      partitions.push({
        name: row.name,
        from: match[1] ? new Date(match[1]) : null,
        to: new Date(match[2]),
        detachPending: row.pending,
      });
    }
    return partitions.sort((a, b) => a.to.getTime() - b.to.getTime());
  }

  /**
   * The switch of an upgraded installation's task_steps to a partitioned table (migration 0042's
   * `tasker_partition_task_steps`), once `tasker_step_cutover()` has passed: by then no process of
   * the release before 0040 (whose upserts name the old key) is left. Its legacy partition ends at
   * the next Monday, a range first added NOT VALID and validated (a scan that lets writes go on), so
   * that the switch, under its lock, does not scan; its weeks are `makeAhead`'s. Whether it
   * switched: false when done already, not due, or before migration 0042. Only for the service's
   * own tables (schema public, where the migrations' functions are). Run by `migrateDatabase`
   * (every process's start), under the migrations' lock: one process at a time, so that no check is
   * added to a table another process has just switched.
   */
  async partitionStepsWhenDue(now = Date.now()): Promise<boolean> {
    if (this.schema !== 'public') return false;
    const [state] = await this.sql<{ partitioned: boolean | null; switch: boolean }[]>`
      select (select relkind = 'p' from pg_class where oid = to_regclass('public.task_steps')) as partitioned,
             to_regprocedure('public.tasker_partition_task_steps(timestamptz)') is not null as switch`;
    if (state?.partitioned !== false || !state.switch) return false;
    const [cutover] = await this.sql<{ at: string }[]>`select public.tasker_step_cutover()::text as at`;
    if (!cutover || now < new Date(cutover.at).getTime()) return false;
    const to = weekStart(now) + WEEK_MS;
    const legacyTo = new Date(to).toISOString();
    // Named by its bound: two processes at once (a sweep, a start) add the same one once, and a
    // check a switch cut short left in another week is another name (any valid one at or below the
    // bound spares the scan; the switch drops them all).
    const check = `${weekName(to, 'task_steps').replace('_w', '_legacy_range_')}`;
    await this.sql.unsafe(`
      do $$ begin
        alter table public.task_steps add constraint ${quote(check)} check (task_created_at < '${legacyTo}') not valid;
      exception when duplicate_object then null;
      end $$`);
    await this.sql.unsafe(`alter table public.task_steps validate constraint ${quote(check)}`);
    await this.sql`select public.tasker_partition_task_steps(${legacyTo}::timestamptz)`;
    return true;
  }

  /** Whole weeks after the current one that have their partition (0 when not partitioned). */
  async weeksAhead(now = Date.now()): Promise<number> {
    const partitions = await this.list();
    const last = partitions.at(-1);
    if (!last) return 0;
    return Math.max(0, Math.floor((last.to.getTime() - weekStart(now)) / WEEK_MS) - 1);
  }

  /**
   * Makes the partitions of the current week and the `weeks` after it that are missing, of `tasks`
   * and of `task_steps`, each as a table of its own then attached (`CREATE TABLE … PARTITION OF`
   * would take an ACCESS EXCLUSIVE lock on the parent; ATTACH takes SHARE UPDATE EXCLUSIVE, and
   * builds the parent's indexes on the empty table at once), with the storage parameters of the
   * newest partition. The names made.
   */
  async makeAhead(weeks: number, now = Date.now()): Promise<string[]> {
    return [
      ...(await this.makeWeeks('tasks', weeks, now)),
      ...(await this.makeWeeks('task_steps', weeks, now)),
    ];
  }

  private async makeWeeks(table: WeeklyTable, weeks: number, now: number): Promise<string[]> {
    const partitions = await this.list(table);
    const newest = partitions.at(-1);
    if (!newest) return [];
    const until = weekStart(now) + (weeks + 1) * WEEK_MS;
    const made: string[] = [];
    const [options] = await this.sql<{ reloptions: string[] | null }[]>`
      select reloptions from pg_class where oid = to_regclass(${this.qualified(newest.name)})`;
    const storage = options?.reloptions?.length ? ` with (${options.reloptions.join(', ')})` : '';
    // The next partition starts where the newest ends (a Monday, but for a legacy partition cut
    // elsewhere: its first week is then short) and ends on the Monday after.
    for (let from = newest.to.getTime(); from < until; ) {
      const to = weekStart(from) + WEEK_MS;
      const week = weekName(weekStart(from), table);
      const name = this.qualified(week);
      const [start, end] = [new Date(from).toISOString(), new Date(to).toISOString()];
      const parent = this.qualified(table);
      await this.sql.unsafe(
        `create table ${name} (like ${parent} including defaults including constraints including storage)${storage}`,
      );
      // The range as a check: ATTACH then need not scan the table for rows out of its range.
      await this.sql.unsafe(
        `alter table ${name} add constraint ${quote(`${week}_range`)} check (${KEY[table]} >= '${start}' and ${KEY[table]} < '${end}')`,
      );
      await this.sql.unsafe(
        `alter table ${parent} attach partition ${name} for values from ('${start}') to ('${end}')`,
      );
      made.push(week);
      from = to;
    }
    return made;
  }

  /**
   * Drops the partitions that end at or before `cutoff` and hold only tasks that finished before
   * it: DETACH … CONCURRENTLY (reads and writes of `tasks` go on), their dependents' rows deleted
   * and their week of steps dropped, then DROP. A week with a task still unfinished, or finished
   * since the cutoff (a
   * retry by hand), stays, and is reported; it goes once its last task has. A task made unfinished
   * between the check and the detach (a retry) is found on the detached table, which is then
   * attached again instead of dropped.
   */
  async dropExpired(cutoff: Date): Promise<RetentionReport> {
    const report: RetentionReport = { dropped: [], kept: [] };
    await this.settleOrphans(cutoff, report);
    await this.settleSteps(report);
    const all = await this.list();
    // A detach cut short first: PostgreSQL detaches one partition of a table at a time.
    const ordered = [...all.filter((p) => p.detachPending), ...all.filter((p) => !p.detachPending)];
    for (const partition of ordered) {
      const expired = partition.to.getTime() <= cutoff.getTime();
      if (!expired && !partition.detachPending) continue;
      const table = this.qualified(partition.name);
      const range = `for values from (${partition.from ? `'${partition.from.toISOString()}'` : 'MINVALUE'}) to ('${partition.to.toISOString()}')`;
      if (!partition.detachPending) {
        const why = await this.whyKept(table, cutoff);
        if (why) {
          report.kept.push({ name: partition.name, why });
          continue;
        }
        await this.sql.unsafe(`alter table ${this.tasks} detach partition ${table} concurrently`);
      } else {
        await this.sql.unsafe(`alter table ${this.tasks} detach partition ${table} finalize`);
      }
      const why = expired ? await this.whyKept(table, cutoff) : 'not past the cutoff';
      if (why) {
        await this.sql.unsafe(`alter table ${this.tasks} attach partition ${table} ${range}`);
        const how = partition.detachPending ? 'its detach was cut short' : 'changed since the check';
        report.kept.push({ name: partition.name, why: `${why} (${how}: attached again)` });
        continue;
      }
      // Its dependents go only now: detached, its tasks can change no more (a retry by hand since
      // the check has attached it again above, its steps, tokens and keys untouched).
      await this.dropDetached(table, partition, report);
      report.dropped.push(partition.name);
    }
    await this.dropLegacySteps(report);
    return report;
  }

  /**
   * Weeks a crash left detached and not dropped (between DETACH and DROP): attached again when a
   * task of theirs is unfinished or finished after the cutoff (a retry by hand in that instant:
   * else it would be lost with the table), dropped with their dependents otherwise. Found by name
   * and their range check, which `makeAhead` gives every week.
   */
  private async settleOrphans(cutoff: Date, report: RetentionReport): Promise<void> {
    const orphans = await this.sql<{ name: string; def: string }[]>`
      select c.relname as name, pg_get_constraintdef(k.oid) as def
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_constraint k on k.conrelid = c.oid and k.conname = c.relname || '_range'
      where n.nspname = ${this.schema} and c.relkind = 'r' and not c.relispartition
        and c.relname ~ '^tasks_w[0-9]{8}$'`;
    for (const orphan of orphans) {
      const bounds = /'([^']+)'[^']*'([^']+)'/.exec(orphan.def);
      if (!bounds?.[1] || !bounds[2]) continue;
      const [from, to] = [new Date(bounds[1]), new Date(bounds[2])];
      const table = this.qualified(orphan.name);
      const why = to.getTime() > cutoff.getTime() ? 'not past the cutoff' : await this.whyKept(table, cutoff);
      if (why) {
        await this.sql.unsafe(
          `alter table ${this.tasks} attach partition ${table} for values from ('${from.toISOString()}') to ('${to.toISOString()}')`,
        );
        report.kept.push({ name: orphan.name, why: `${why} (left detached: attached again)` });
      } else {
        await this.dropDetached(table, { from, to }, report);
        report.dropped.push(orphan.name);
      }
    }
  }

  /** A detached week's dependents, then the week. */
  private async dropDetached(
    table: string,
    bounds: Pick<TaskPartition, 'from' | 'to'>,
    report: RetentionReport,
  ): Promise<void> {
    for (const dependent of DEPENDENTS)
      await this.sql.unsafe(
        `delete from ${this.qualified(dependent)} where task_id in (select id from ${table})`,
      );
    await this.dropSteps(table, bounds, report);
    await this.sql.unsafe(`drop table ${table}`);
  }

  /**
   * The steps of a detached week of tasks: its week of steps (the same bounds) dropped whole; else
   * (a week before the steps' cutover, migration 0042) its tasks' rows, in the legacy partition
   * where tasker_step_time put them ('-infinity'). On an unpartitioned task_steps, its tasks' rows.
   */
  private async dropSteps(
    table: string,
    bounds: Pick<TaskPartition, 'from' | 'to'>,
    report: RetentionReport,
  ): Promise<void> {
    const steps = await this.list('task_steps');
    const twin = steps.find(
      (s) =>
        s.to.getTime() === bounds.to.getTime() &&
        (s.from?.getTime() ?? null) === (bounds.from?.getTime() ?? null),
    );
    if (twin) {
      await this.sql.unsafe(
        `alter table ${this.steps} detach partition ${this.qualified(twin.name)} ${twin.detachPending ? 'finalize' : 'concurrently'}`,
      );
      await this.sql.unsafe(`drop table ${this.qualified(twin.name)}`);
      report.dropped.push(twin.name);
      return;
    }
    // Its tasks' steps are at '-infinity' or in its range: the statement reads those partitions only.
    const from = bounds.from ? `'${bounds.from.toISOString()}'` : `'-infinity'`;
    const range = `task_created_at >= ${from} and task_created_at < '${bounds.to.toISOString()}'`;
    const where = steps.length > 0 ? `(task_created_at = '-infinity' or ${range}) and` : '';
    await this.sql.unsafe(`delete from ${this.steps} where ${where} task_id in (select id from ${table})`);
  }

  /**
   * The legacy partition of task_steps once no week of tasks starts before its end: every task
   * whose steps it holds is gone (the rows left are those of tasks `pruneFinished` deleted).
   */
  private async dropLegacySteps(report: RetentionReport): Promise<void> {
    const legacy = (await this.list('task_steps')).find((s) => s.from === null);
    if (!legacy) return;
    const tasks = await this.list();
    if (tasks.some((t) => t.from === null || t.from.getTime() < legacy.to.getTime())) return;
    const name = this.qualified(legacy.name);
    await this.sql.unsafe(
      `alter table ${this.steps} detach partition ${name} ${legacy.detachPending ? 'finalize' : 'concurrently'}`,
    );
    await this.sql.unsafe(`drop table ${name}`);
    report.dropped.push(legacy.name);
  }

  /**
   * Weeks of steps a crash left detaching or detached (between their DETACH and DROP, which come
   * after their week of tasks' DETACH): attached again while their week of tasks is attached, so
   * that no task loses its steps; dropped otherwise.
   */
  private async settleSteps(report: RetentionReport): Promise<void> {
    const tasks = await this.list();
    for (const pending of (await this.list('task_steps')).filter((s) => s.detachPending))
      await this.sql.unsafe(
        `alter table ${this.steps} detach partition ${this.qualified(pending.name)} finalize`,
      );
    const orphans = await this.sql<{ name: string }[]>`
      select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${this.schema} and c.relkind = 'r' and not c.relispartition
        and c.relname ~ '^task_steps_(w[0-9]{8}|legacy)$'`;
    for (const { name } of orphans) {
      const twin = tasks.find((t) => t.name === `tasks${name.slice('task_steps'.length)}`);
      if (twin && twin.from === null) {
        // The legacy steps are detached only once no week of tasks starts before their end.
        report.kept.push({
          name,
          why: 'left detached while tasks_legacy is still attached: attach it by hand',
        });
      } else if (twin) {
        await this.sql.unsafe(
          `alter table ${this.steps} attach partition ${this.qualified(name)} for values from ('${twin.from?.toISOString()}') to ('${twin.to.toISOString()}')`,
        );
        report.kept.push({ name, why: `its week of tasks is attached (left detached: attached again)` });
      } else {
        await this.sql.unsafe(`drop table ${this.qualified(name)}`);
        report.dropped.push(name);
      }
    }
  }

  /** Why this week must stay past `cutoff`; undefined when it may go. */
  private async whyKept(table: string, cutoff: Date): Promise<string | undefined> {
    const [row] = await this.sql.unsafe<{ unfinished: string | null; last: Date | null }[]>(
      `select (select id::text from ${table} where finished_at is null limit 1) as unfinished,
              (select max(finished_at) from ${table}) as last`,
    );
    if (row?.unfinished) return `task ${row.unfinished} is unfinished`;
    if (row?.last && new Date(row.last).getTime() >= cutoff.getTime())
      return `a task of it finished at ${new Date(row.last).toISOString()}, after the cutoff`;
    return undefined;
  }
}

/** An identifier, quoted for SQL. */
function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
