import type { TaskStore } from '@tasker/db';
import type { TaskConfig } from '@tasker/tasks';
import type { CancelSignals } from '../cancel-signals.ts';
import type { Limits } from '../limits.ts';
import type { Logger } from '../logger.ts';
import type { LifecycleEvent, LifecycleObserver } from '../observability/events.ts';
import type { PausedTypes } from '../paused-types.ts';
import type { TaskQueue } from '../queue.ts';
import type { ResultCache } from '../result-cache.ts';
import type { TaskWebhookCheck } from '../webhooks/task-url.ts';
import type { ChildBounds } from './children.ts';

/**
 * What every step of a task's life works on. PostgreSQL (`store`) is the truth, and announces each
 * change itself on commit (see `@tasker/db` events); the rest is delivery (`queue`), fast paths
 * (`cache`, `cancels`) and shared switches (`paused`), each behind a small class of its own.
 */
export interface LifecycleResources {
  store: TaskStore;
  queue: TaskQueue;
  cache: ResultCache;
  cancels: CancelSignals;
  paused: PausedTypes;
  /** The effective limits of tenants and task types, at most 1 s old (submit's max_queued; the dispatcher's). */
  limits: Limits;
  config: TaskConfig;
  /** Why a submission's webhook_url is refused, if it is (submit's 400 naming webhook_url). */
  checkWebhookUrl: TaskWebhookCheck;
  log: Logger;
  /** Told of each transition that happened (metrics); see LifecycleEvent. */
  observe?: LifecycleObserver;
  /** How deep and wide child tasks may go (`ctx.run`, `ctx.runMany`); default DEFAULT_CHILD_BOUNDS. */
  childBounds?: ChildBounds;
}

/** Tells the observer, if any; an observer's error is logged, never thrown into the lifecycle. */
export function emit(r: Pick<LifecycleResources, 'observe' | 'log'>, event: LifecycleEvent): void {
  if (!r.observe) return;
  try {
    r.observe(event);
  } catch (error) {
    r.log.warn(
      { err: error, taskId: 'row' in event ? event.row.id : undefined },
      'lifecycle observer failed',
    );
  }
}

/** Runs a best-effort side effect (cache, signal, queue clean-up): its failure is logged, never thrown. */
export async function bestEffort(
  r: Pick<LifecycleResources, 'log'>,
  what: string,
  taskId: string,
  effect: () => Promise<unknown>,
): Promise<void> {
  try {
    await effect();
  } catch (error) {
    r.log.warn({ taskId, err: error }, `${what} failed; PostgreSQL has the state`);
  }
}

/** Rejects after `ms`, so that a request path never hangs on a dependency that does not answer. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
