import type postgres from 'postgres';

/*
 * The weekly partitions of a partitioned `tasks` table (docs/partitioning.md, "Partitions made
 * ahead" and "Retention by partition"; implementation step 5). The sweeper's leader keeps weeks
 * made ahead and drops the weeks past retention. On an unpartitioned table every method finds no
 * partition and does nothing: the table is partitioned by a migration of its own (step 6).
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

/** A week's partition's name: `tasks_w` and its Monday (`tasks_w20261130`). */
export function weekName(start: number): string {
  return `tasks_w${new Date(start).toISOString().slice(0, 10).replaceAll('-', '')}`;
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

/** The tables whose rows belong to a task, deleted with its week (as `pruneFinished` does). */
const DEPENDENTS = ['webhook_deliveries', 'task_steps', 'wait_tokens', 'task_keys'] as const;

const BOUND = /FROM \((?:MINVALUE|'([^']+)')\) TO \('([^']+)'\)/;

export class TaskPartitions {
  private readonly tasks: string;

  /** `schema`: where `tasks` and its dependents are (public; a test's own). */
  constructor(
    private readonly sql: postgres.Sql,
    private readonly schema = 'public',
  ) {
    this.tasks = `${quote(schema)}.tasks`;
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

  /** The partitions of `tasks`, oldest first. */
  async list(): Promise<TaskPartition[]> {
    const rows = await this.sql<{ name: string; bound: string; pending: boolean }[]>`
      select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound, i.inhdetachpending as pending
      from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = to_regclass(${this.tasks})`;
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

  /** Whole weeks after the current one that have their partition (0 when not partitioned). */
  async weeksAhead(now = Date.now()): Promise<number> {
    const partitions = await this.list();
    const last = partitions.at(-1);
    if (!last) return 0;
    return Math.max(0, Math.floor((last.to.getTime() - weekStart(now)) / WEEK_MS) - 1);
  }

  /**
   * Makes the partitions of the current week and the `weeks` after it that are missing, each as a
   * table of its own then attached (`CREATE TABLE … PARTITION OF` would take an ACCESS EXCLUSIVE
   * lock on `tasks`; ATTACH takes SHARE UPDATE EXCLUSIVE, and builds the parent's indexes on the
   * empty table at once), with the storage parameters of the newest partition. The names made.
   */
  async makeAhead(weeks: number, now = Date.now()): Promise<string[]> {
    const partitions = await this.list();
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
      const week = weekName(weekStart(from));
      const name = this.qualified(week);
      const [start, end] = [new Date(from).toISOString(), new Date(to).toISOString()];
      await this.sql.unsafe(
        `create table ${name} (like ${this.tasks} including defaults including constraints including storage)${storage}`,
      );
      // The range as a check: ATTACH then need not scan the table for rows out of its range.
      await this.sql.unsafe(
        `alter table ${name} add constraint ${quote(`${week}_range`)} check (created_at >= '${start}' and created_at < '${end}')`,
      );
      await this.sql.unsafe(
        `alter table ${this.tasks} attach partition ${name} for values from ('${start}') to ('${end}')`,
      );
      made.push(week);
      from = to;
    }
    return made;
  }

  /**
   * Drops the partitions that end at or before `cutoff` and hold only tasks that finished before
   * it: DETACH … CONCURRENTLY (reads and writes of `tasks` go on), their dependents' rows deleted,
   * then DROP. A week with a task still unfinished, or finished since the cutoff (a
   * retry by hand), stays, and is reported; it goes once its last task has. A task made unfinished
   * between the check and the detach (a retry) is found on the detached table, which is then
   * attached again instead of dropped.
   */
  async dropExpired(cutoff: Date): Promise<RetentionReport> {
    const report: RetentionReport = { dropped: [], kept: [] };
    await this.settleOrphans(cutoff, report);
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
      await this.dropDetached(table);
      report.dropped.push(partition.name);
    }
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
        await this.dropDetached(table);
        report.dropped.push(orphan.name);
      }
    }
  }

  /** A detached week's dependents, then the week. */
  private async dropDetached(table: string): Promise<void> {
    for (const dependent of DEPENDENTS)
      await this.sql.unsafe(
        `delete from ${this.qualified(dependent)} where task_id in (select id from ${table})`,
      );
    await this.sql.unsafe(`drop table ${table}`);
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
