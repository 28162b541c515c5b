import { getTableColumns } from 'drizzle-orm';
import type postgres from 'postgres';
import { type TaskError, type TaskStepRow, taskSteps } from '../schema.ts';
import { pgArray } from './rows.ts';

/** A step's end as a run of its handler records it. */
export interface StepRecord {
  taskId: string;
  /** The task's created_at: the step goes in its task's week (`tasker_step_time`). */
  taskCreatedAt: Date;
  stepId: string;
  /** Its place in the handler's order, 0 first. */
  seq: number;
  status: 'completed' | 'failed';
  /** The step's result (JSON-serialisable) when completed. */
  output?: unknown;
  /** Why it failed, when failed. */
  error?: TaskError;
  startedAt: Date;
}

const { taskCreatedAt: _partitionKey, ...columns } = getTableColumns(taskSteps);

/**
 * A row as postgres.js returns it from raw SQL → the drizzle row type. JSON as postgres.js parsed it
 * (drizzle's jsonb mapping would parse a string result again: a step that returned "42" must get
 * "42" back, not 42); timestamps through their columns.
 */
function fromRow(raw: Record<string, unknown>): TaskStepRow {
  const row: Record<string, unknown> = {};
  for (const [key, col] of Object.entries(columns)) {
    const value = raw[col.name];
    if (value === null || value === undefined) row[key] = null;
    else row[key] = col.columnType === 'PgJsonb' ? value : col.mapFromDriverValue(value);
  }
  return row as TaskStepRow;
}

/**
 * The steps of durable handlers (`task_steps`): what a task's handler recorded, read once per run,
 * and each step's end. A completed step is never written again: a run that finishes a step another
 * run (a stalled delivery's) completed first gets that first result back, so that every run of the
 * task sees one result per step.
 */
export class TaskSteps {
  constructor(private readonly pg: postgres.Sql) {}

  /**
   * A task's steps in the handler's order. With the task's created_at, one partition is read (its
   * week's); without it, each partition's primary key is probed once.
   */
  async list(taskId: string, taskCreatedAt?: Date): Promise<TaskStepRow[]> {
    const week = taskCreatedAt
      ? this.pg`and task_created_at = tasker_step_time(${taskCreatedAt.toISOString()}::timestamptz)`
      : this.pg``;
    const rows = await this.pg`
      select * from task_steps where task_id = ${taskId}::uuid ${week} order by seq, started_at`;
    return rows.map(fromRow);
  }

  /** Steps by their keys, in no order (a step's announcement carries its key alone). */
  async getMany(keys: readonly { taskId: string; stepId: string }[]): Promise<TaskStepRow[]> {
    if (keys.length === 0) return [];
    const rows = await this.pg`
      select s.* from unnest(${pgArray(keys.map((k) => k.taskId))}::uuid[], ${pgArray(keys.map((k) => k.stepId))}::text[])
             as k(task_id, step_id)
      join task_steps s on s.task_id = k.task_id and s.step_id = k.step_id`;
    return rows.map(fromRow);
  }

  /**
   * Records a step's end (an upsert on its key: (task_id, step_id) in its task's week), unless it
   * was completed already: then the recorded step comes back unchanged. Returns the step as recorded.
   */
  async record(step: StepRecord): Promise<TaskStepRow> {
    const output = step.status === 'completed' ? JSON.stringify(step.output ?? null) : null;
    const error = step.error ? JSON.stringify(step.error) : null;
    const week = step.taskCreatedAt.toISOString();
    const [written] = await this.pg`
      insert into task_steps (task_id, task_created_at, step_id, seq, status, output, error, started_at, finished_at)
      values (${step.taskId}::uuid, tasker_step_time(${week}::timestamptz), ${step.stepId}, ${step.seq}, ${step.status},
              ${output}::jsonb, ${error}::jsonb, ${step.startedAt.toISOString()}::timestamptz, now())
      on conflict (task_id, step_id, task_created_at) do update set seq = excluded.seq, status = excluded.status,
        output = excluded.output, error = excluded.error, started_at = excluded.started_at,
        finished_at = excluded.finished_at
      where task_steps.status <> 'completed'
      returning *`;
    if (written) return fromRow(written);
    const [recorded] = await this.pg`
      select * from task_steps
      where task_id = ${step.taskId}::uuid and step_id = ${step.stepId}
        and task_created_at = tasker_step_time(${week}::timestamptz)`;
    if (!recorded)
      throw new Error(`step ${step.stepId} of task ${step.taskId} is neither written nor recorded`);
    return fromRow(recorded);
  }
}
