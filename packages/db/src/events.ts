import { getTableColumns } from 'drizzle-orm';
import type postgres from 'postgres';
import { type TaskRow, tasks } from './schema.ts';

/** The channel on which PostgreSQL announces every task change (migration 0030_announce_per_statement). */
export const TASK_EVENTS_CHANNEL = 'tasker_task_events';
/**
 * The channel that wakes the dispatcher: an empty NOTIFY per statement that inserts or updates tasks
 * (migration 0015_dispatch_wake), so that it looks for work without reading every changed row.
 */
export const DISPATCH_CHANNEL = 'tasker_dispatch';

/** A row too large for a notification: only these fields come; read the rest from the table. */
export interface TruncatedTaskChange {
  truncated: true;
  id: string;
  version: number;
  tenantId: string;
  name: string;
  status: TaskRow['status'];
}

/** One announced change: the row as it is after the change (without `input`), or its key alone. */
export type TaskChange = { truncated: false; row: Omit<TaskRow, 'input'> } | TruncatedTaskChange;

/** A durable step written (migration 0031_announce_steps), by its key: read the row if wanted. */
export interface StepChange {
  kind: 'step';
  taskId: string;
  stepId: string;
}

const columns = Object.entries(getTableColumns(tasks));

/**
 * Parses a notification payload: a JSON array of changed rows, one statement's (migration
 * 0030_announce_per_statement), each `to_jsonb(row) - 'input'` (column names, ISO timestamps) or a
 * row's key alone when it was too large. A single row (not in an array) is read too, and so is a
 * step's write (`kind: "step"`, 0031_announce_steps), and new tasks of an unwatched tenant by their
 * ids (`kind: "new"`, 0034_announce_new_tasks_by_ids: one key per id). Entries that are none of
 * these are skipped.
 */
export function parseChanges(payload: string): (TaskChange | StepChange)[] {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    return [];
  }
  const changes: (TaskChange | StepChange)[] = [];
  for (const item of Array.isArray(json) ? json : [json]) {
    if ((item as { kind?: unknown } | null)?.kind === 'new') changes.push(...newTasks(item as NewTasks));
    else {
      const change = toChange(item);
      if (change) changes.push(change);
    }
  }
  return changes;
}

/** New tasks announced by their ids (0034_announce_new_tasks_by_ids), their other fields shared. */
interface NewTasks {
  kind: 'new';
  owner_id?: unknown;
  name?: unknown;
  status?: unknown;
  version?: unknown;
  ids?: unknown;
}

function newTasks({ owner_id, name, status, version, ids }: NewTasks): TruncatedTaskChange[] {
  if (typeof version !== 'number' || !Array.isArray(ids)) return [];
  const tenantId = String(owner_id);
  return ids
    .filter((id): id is string => typeof id === 'string')
    .map((id) => ({
      truncated: true,
      id,
      version,
      tenantId,
      name: String(name),
      status: status as TaskRow['status'],
    }));
}

/** `parseChanges` without the steps' writes: the tasks' changes alone. */
export function parseTaskChanges(payload: string): TaskChange[] {
  return parseChanges(payload).filter((change): change is TaskChange => !('kind' in change));
}

function toChange(item: unknown): TaskChange | StepChange | undefined {
  if (typeof item !== 'object' || item === null) return undefined;
  const json = item as Record<string, unknown>;
  if (json.kind === 'step') {
    if (typeof json.task_id !== 'string' || typeof json.step_id !== 'string') return undefined;
    return { kind: 'step', taskId: json.task_id, stepId: json.step_id };
  }
  if (typeof json.id !== 'string' || typeof json.version !== 'number') return undefined;
  if (json.truncated === true) {
    return {
      truncated: true,
      id: json.id,
      version: json.version,
      tenantId: String(json.owner_id),
      name: String(json.name),
      status: json.status as TaskRow['status'],
    };
  }
  const row: Record<string, unknown> = {};
  for (const [key, column] of columns) {
    if (key === 'input') continue;
    const value = json[column.name];
    if (value === undefined || value === null) row[key] = null;
    // JSON columns arrive as JSON already; timestamps as ISO text.
    else if (column.dataType === 'date') row[key] = new Date(value as string);
    else row[key] = value;
  }
  return { truncated: false, row: row as Omit<TaskRow, 'input'> };
}

export interface TaskChangeListener {
  /** Stops listening and closes the connection. */
  close(): Promise<void>;
}

/**
 * Listens for task changes on a dedicated connection (postgres.js reconnects it by itself).
 * `onListen` runs after every (re)connection: changes made while disconnected were not heard, so a
 * caller re-reads what it cares about there.
 */
export async function listenTaskChanges(
  sql: postgres.Sql,
  onChange: (change: TaskChange) => void,
  onListen: () => void,
  /** When given and false, a notification is dropped unparsed (nobody is watching). */
  wanted: () => boolean = () => true,
  /** The steps' writes (0031_announce_steps); without it they are skipped. */
  onStep?: (change: StepChange) => void,
): Promise<TaskChangeListener> {
  const { unlisten } = await sql.listen(
    TASK_EVENTS_CHANNEL,
    (payload) => {
      if (!wanted()) return;
      for (const change of parseChanges(payload)) {
        if (!('kind' in change)) onChange(change);
        else onStep?.(change);
      }
    },
    onListen,
  );
  return { close: unlisten };
}
