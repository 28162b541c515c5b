import { TaskerValidationError, toTaskerError } from './errors.ts';
import type { ListOptions, TaskName, WireInputs, WireOutputs } from './types.ts';
import { listOptionsToWire, renameIssuePaths } from './wire.ts';

/**
 * Which tasks a bulk action applies to: `list()`'s filter (statuses, types, creation times,
 * payload containment...), without its page; at least one field (an empty filter is refused).
 */
export type TaskFilter<N extends TaskName = TaskName> = Omit<ListOptions<N>, 'limit' | 'cursor'>;

/**
 * A bulk cancel or retry, tracked: `status` (running, done, failed), `matched` (the tasks it
 * applied to when it was made), `done` (the tasks it changed so far), `error` when it failed.
 */
export type BulkOperation = WireOutputs['getOperation'];

/** What `bulk.cancel/retry(filter, { dryRun: true })` answers: how many tasks it would change now. */
export interface BulkCount {
  dryRun: true;
  action: BulkOperation['action'];
  matched: number;
}

export interface BulkWaitOptions {
  /** How often to ask (default 500 ms). */
  intervalMs?: number;
  signal?: AbortSignal;
  /** Told of every state read while it runs (progress: `done` of `matched`). */
  onProgress?: (operation: BulkOperation) => void;
}

/**
 * Bulk actions over the caller's tenant's tasks, by filter: each answers at once with a tracked
 * operation that the workers go through in chunks (`wait(id)` follows it), or, with `dryRun`, the
 * count it would change (nothing touched). Scope `tasks:write` (`operation` and `wait`:
 * `tasks:read`).
 */
export interface BulkApi {
  /** Cancels every matching PENDING, RUNNING or WAITING task (a RUNNING one is aborted by its worker). */
  cancel<N extends TaskName = TaskName>(filter: TaskFilter<N>): Promise<BulkOperation>;
  cancel<N extends TaskName = TaskName>(filter: TaskFilter<N>, options: { dryRun: true }): Promise<BulkCount>;
  /** Retries every matching FAILED, CANCELLED or EXPIRED task (same id, a new round of attempts). */
  retry<N extends TaskName = TaskName>(filter: TaskFilter<N>): Promise<BulkOperation>;
  retry<N extends TaskName = TaskName>(filter: TaskFilter<N>, options: { dryRun: true }): Promise<BulkCount>;
  /** An operation's state now. */
  operation(id: string): Promise<BulkOperation>;
  /** Resolves with the operation once it is no longer running (done or failed). */
  wait(id: string, options?: BulkWaitOptions): Promise<BulkOperation>;
}

type BulkWire = WireInputs['cancelTasks'];
type Trpc = {
  cancelTasks: { mutate(input: BulkWire): Promise<WireOutputs['cancelTasks']> };
  retryTasks: { mutate(input: BulkWire): Promise<WireOutputs['retryTasks']> };
  getOperation: { query(input: { id: string }): Promise<BulkOperation> };
};

/** The filter as the router takes it (`list()`'s mapping, without the page). */
function filterToWire(filter: TaskFilter): BulkWire['filter'] {
  const { limit: _limit, cursor: _cursor, ...wire } = listOptionsToWire(filter);
  return wire;
}

/** A refusal names `filter.created_after`: name it as the caller wrote it (`createdAfter`). */
function renamed(error: unknown): unknown {
  const tasker = toTaskerError(error);
  if (!(tasker instanceof TaskerValidationError)) return tasker;
  for (const issue of tasker.issues) issue.path = issue.path.replace(/^filter\.?/, '');
  return renameIssuePaths(tasker, 'list');
}

async function send<T>(promise: () => Promise<T>): Promise<T> {
  try {
    return await promise();
  } catch (error) {
    throw renamed(error);
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

export function bulkApi(trpc: Trpc): BulkApi {
  const starter = (procedure: 'cancelTasks' | 'retryTasks'): BulkApi['cancel'] => {
    function start<N extends TaskName>(filter: TaskFilter<N>): Promise<BulkOperation>;
    function start<N extends TaskName>(filter: TaskFilter<N>, options: { dryRun: true }): Promise<BulkCount>;
    function start<N extends TaskName>(
      filter: TaskFilter<N>,
      options?: { dryRun: true },
    ): Promise<BulkOperation | BulkCount> {
      // Built before the call: an option refused here is already named as written.
      let wire: BulkWire['filter'];
      try {
        wire = filterToWire(filter as TaskFilter);
      } catch (error) {
        return Promise.reject(error);
      }
      return send(() => trpc[procedure].mutate({ filter: wire, dry_run: options?.dryRun }));
    }
    return start;
  };
  const operation = (id: string) => send(() => trpc.getOperation.query({ id }));
  return {
    cancel: starter('cancelTasks'),
    retry: starter('retryTasks'),
    operation,
    wait: async (id, { intervalMs = 500, signal, onProgress } = {}) => {
      for (;;) {
        const state = await operation(id);
        onProgress?.(state);
        if (state.status !== 'running') return state;
        await sleep(intervalMs, signal);
      }
    },
  };
}
