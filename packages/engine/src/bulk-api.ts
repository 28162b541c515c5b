import { randomUUID } from 'node:crypto';
import { BULK_ACTIONS, BULK_OPERATION_STATUSES, type BulkAction, type BulkOperationRow } from '@tasker/db';
import { z } from 'zod';
import type { TaskFilter } from './api.ts';
import { InvalidArgumentError } from './errors/invalid-argument.ts';
import { NotFoundError } from './errors/not-found.ts';
import { isEmptyFilter, type TaskLifecycle } from './lifecycle/index.ts';
import { iso, isoDate } from './view.ts';

/** The words of the 400 of a bulk action without a filter. */
export const EMPTY_FILTER =
  'give at least one filter (a bulk action never applies to every task by accident)';

/** A bulk operation as the API shows it (GET /operations/{id}, and the 202 of POST /tasks/cancel and /tasks/retry). */
export const bulkOperationSchema = z
  .object({
    id: z.uuid().describe('The operation: follow it with GET /operations/{id}'),
    action: z.enum(BULK_ACTIONS).describe('What it does to each matching task'),
    status: z
      .enum(BULK_OPERATION_STATUSES)
      .describe('running: a worker goes through the tasks, a chunk at a time; done; failed (see error)'),
    filter: z
      .record(z.string(), z.unknown())
      .describe('The filter it was given, as the engine reads it (camelCase, dates in ISO 8601)'),
    matched: z
      .number()
      .int()
      .describe(
        'The tasks the filter matched when it was made, among those the action applies to (cancel: PENDING, RUNNING and WAITING; retry: FAILED, CANCELLED, EXPIRED)',
      ),
    done: z
      .number()
      .int()
      .describe(
        'The tasks it changed so far: cancelled or asked to stop (RUNNING: its worker ends it CANCELLED), or retried; a task that finished meanwhile is not counted',
      ),
    error: z.string().nullable().describe('Why it failed; null unless failed'),
    createdBy: z.uuid().nullable().describe('The API key that asked for it; null in AUTH_MODE=disabled'),
    createdAt: isoDate,
    updatedAt: isoDate,
    finishedAt: isoDate.nullable().describe('When it ended (done or failed); null while running'),
  })
  .meta({ id: 'BulkOperation' });
export type BulkOperationView = z.infer<typeof bulkOperationSchema>;

/** The answer of a dry run: how many tasks the action would change now, nothing touched. */
export const bulkCountSchema = z
  .object({
    dryRun: z.literal(true).describe('Nothing was changed'),
    action: z.enum(BULK_ACTIONS),
    matched: z
      .number()
      .int()
      .describe(
        'The tasks the action would change now: those the filter matches among PENDING, RUNNING and WAITING (cancel) or FAILED, CANCELLED and EXPIRED (retry)',
      ),
  })
  .meta({ id: 'BulkCount' });
export type BulkCountView = z.infer<typeof bulkCountSchema>;

export function toBulkOperationView(row: BulkOperationRow): BulkOperationView {
  const filter = row.filter;
  return {
    id: row.id,
    action: row.action,
    status: row.status,
    filter: filter !== null && typeof filter === 'object' && !Array.isArray(filter) ? { ...filter } : {},
    matched: row.matched,
    done: row.done,
    error: row.error,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    finishedAt: iso(row.finishedAt),
  };
}

/** Bulk cancel and retry by filter, over the caller's tenant's tasks (the worker's runner does the work). */
export interface BulkApi {
  /**
   * Records an operation (running) for the workers to go through, or with `dryRun` only counts
   * what it would change. An empty filter is refused (InvalidArgumentError on `filter`).
   */
  start(
    tenantId: string,
    action: BulkAction,
    filter: TaskFilter,
    options: { dryRun?: boolean; createdBy: string | null },
  ): Promise<BulkOperationView | BulkCountView>;
  /** One of the tenant's operations; another tenant's is not found, like an unknown id. */
  get(tenantId: string, id: string): Promise<BulkOperationView>;
}

export function createBulkApi(lifecycle: TaskLifecycle): BulkApi {
  const { store } = lifecycle.resources;
  return {
    start: async (tenantId, action, filter, { dryRun, createdBy }) => {
      if (isEmptyFilter(filter)) throw new InvalidArgumentError('filter', EMPTY_FILTER);
      const scoped = { ...filter, tenantId };
      if (dryRun) return { dryRun: true, action, matched: await store.bulk.count(scoped, action) };
      // The filter without its undefined fields, as JSON (dates as ISO text): what the runner reads back.
      const stored: unknown = JSON.parse(JSON.stringify(filter));
      const row = await store.bulk.create(
        { id: randomUUID(), tenantId, action, filter: stored, createdBy },
        scoped,
      );
      return toBulkOperationView(row);
    },
    get: async (tenantId, id) => {
      const row = await store.bulk.get(id, tenantId);
      if (!row) throw new NotFoundError('Operation not found');
      return toBulkOperationView(row);
    },
  };
}
