import { and, asc, eq, gt, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import type { Database } from './client.ts';
import { type NewTaskRow, type TaskError, type TaskRow, tasks } from './schema.ts';

const UNFINISHED = ['PENDING', 'RUNNING'] as const;

/** A row that may need re-delivery: what the sweeper needs to rebuild its job. */
export type StaleTask = Pick<
  TaskRow,
  'id' | 'name' | 'status' | 'priority' | 'runAfter' | 'updatedAt' | 'maxAttempts'
>;

/**
 * Every read and write of task rows. State transitions are conditional updates, so that two
 * workers racing on one task can never both record a result.
 */
export class TaskStore {
  // Hot paths are prepared once: building a drizzle query costs more CPU than running it.
  private readonly prepared;

  constructor(private readonly db: Database) {
    const p = <T extends string>(name: T) => sql.placeholder(name);
    const byId = eq(tasks.id, p('id'));
    this.prepared = {
      insert: db
        .insert(tasks)
        .values({
          id: p('id'),
          ownerId: p('ownerId'),
          name: p('name'),
          input: sql`${p('input')}::jsonb`,
          maxAttempts: p('maxAttempts'),
          priority: p('priority'),
          timeoutMs: p('timeoutMs'),
          idempotencyKey: p('idempotencyKey'),
          runAfter: sql`${p('runAfter')}`,
        })
        .returning()
        .prepare('tasks_insert'),
      get: db.select().from(tasks).where(byId).limit(1).prepare('tasks_get'),
      start: db
        .update(tasks)
        .set({
          status: 'RUNNING',
          attempts: sql`${tasks.attempts} + 1`,
          startedAt: sql`coalesce(${tasks.startedAt}, now())`,
          updatedAt: sql`now()`,
          workerId: sql`${p('workerId')}`,
        })
        .where(and(byId, inArray(tasks.status, UNFINISHED), isNull(tasks.cancelRequestedAt)))
        .returning()
        .prepare('tasks_start'),
      complete: db
        .update(tasks)
        .set({
          status: 'COMPLETED',
          output: sql`${p('output')}::jsonb`,
          error: null,
          finishedAt: sql`now()`,
          updatedAt: sql`now()`,
        })
        .where(and(byId, eq(tasks.status, 'RUNNING')))
        .returning()
        .prepare('tasks_complete'),
      setProgress: db
        .update(tasks)
        .set({ progress: sql`${p('progress')}::jsonb`, updatedAt: sql`now()` })
        .where(and(byId, eq(tasks.status, 'RUNNING')))
        .returning()
        .prepare('tasks_set_progress'),
    };
  }

  async insert(row: NewTaskRow): Promise<TaskRow> {
    const [inserted] = await this.prepared.insert.execute({
      id: row.id,
      ownerId: row.ownerId ?? 'default',
      name: row.name,
      input: JSON.stringify(row.input ?? null),
      maxAttempts: row.maxAttempts ?? 1,
      priority: row.priority ?? 0,
      timeoutMs: row.timeoutMs ?? null,
      idempotencyKey: row.idempotencyKey ?? null,
      runAfter: row.runAfter ?? null,
    });
    if (!inserted) throw new Error('insert returned no row');
    return inserted;
  }

  async get(id: string): Promise<TaskRow | undefined> {
    const [row] = await this.prepared.get.execute({ id });
    return row;
  }

  /**
   * Claims the task for one attempt: PENDING (or RUNNING left by a dead worker) becomes RUNNING and
   * the attempt is counted. Returns undefined when the task is already finished or being cancelled.
   */
  async start(id: string, workerId: string): Promise<TaskRow | undefined> {
    const [row] = await this.prepared.start.execute({ id, workerId });
    return row;
  }

  /** RUNNING → COMPLETED. Undefined when another attempt already finished the task. */
  async complete(id: string, output: unknown): Promise<TaskRow | undefined> {
    const [row] = await this.prepared.complete.execute({ id, output: JSON.stringify(output ?? null) });
    return row;
  }

  /**
   * Records a failed attempt. `final`: the task is FAILED with this error; otherwise it goes back to
   * PENDING to wait for its retry. Undefined when the task is no longer RUNNING.
   */
  async failAttempt(id: string, error: TaskError, final: boolean): Promise<TaskRow | undefined> {
    const [row] = await this.db
      .update(tasks)
      .set({
        status: final ? 'FAILED' : 'PENDING',
        error: final ? error : null,
        attemptErrors: sql`${tasks.attemptErrors} || ${JSON.stringify([error])}::jsonb`,
        finishedAt: final ? sql`now()` : null,
        updatedAt: sql`now()`,
      })
      .where(and(eq(tasks.id, id), eq(tasks.status, 'RUNNING')))
      .returning();
    return row;
  }

  /** Latest progress of a RUNNING task. */
  async setProgress(id: string, progress: unknown): Promise<TaskRow | undefined> {
    const [row] = await this.prepared.setProgress.execute({ id, progress: JSON.stringify(progress ?? null) });
    return row;
  }

  /** Gives an attempt back without counting it (graceful shutdown): RUNNING → PENDING. */
  async release(id: string): Promise<TaskRow | undefined> {
    const [row] = await this.db
      .update(tasks)
      .set({
        status: 'PENDING',
        attempts: sql`greatest(${tasks.attempts} - 1, 0)`,
        updatedAt: sql`now()`,
      })
      .where(and(eq(tasks.id, id), eq(tasks.status, 'RUNNING')))
      .returning();
    return row;
  }

  /** Ends an unfinished task as FAILED from outside a worker (e.g. its job was lost for good). */
  async failUnfinished(id: string, error: TaskError): Promise<TaskRow | undefined> {
    const [row] = await this.db
      .update(tasks)
      .set({
        status: 'FAILED',
        error,
        attemptErrors: sql`${tasks.attemptErrors} || ${JSON.stringify([error])}::jsonb`,
        finishedAt: sql`now()`,
        updatedAt: sql`now()`,
      })
      .where(and(eq(tasks.id, id), inArray(tasks.status, UNFINISHED)))
      .returning();
    return row;
  }

  /**
   * Unfinished rows that have not changed since `before`, oldest first, after the keyset
   * `cursor` (exclusive). Used by the sweeper to find tasks whose job may be missing.
   */
  async findStale(
    before: Date,
    limit: number,
    cursor?: { updatedAt: Date; id: string },
  ): Promise<StaleTask[]> {
    const conditions = [inArray(tasks.status, UNFINISHED), lt(tasks.updatedAt, before)];
    if (cursor) {
      conditions.push(
        or(
          gt(tasks.updatedAt, cursor.updatedAt),
          and(eq(tasks.updatedAt, cursor.updatedAt), gt(tasks.id, cursor.id)),
        ) as ReturnType<typeof eq>,
      );
    }
    return this.db
      .select({
        id: tasks.id,
        name: tasks.name,
        status: tasks.status,
        priority: tasks.priority,
        runAfter: tasks.runAfter,
        updatedAt: tasks.updatedAt,
        maxAttempts: tasks.maxAttempts,
      })
      .from(tasks)
      .where(and(...conditions))
      .orderBy(asc(tasks.updatedAt), asc(tasks.id))
      .limit(limit);
  }
}
