import type { LifecycleResources } from './resources.ts';

/**
 * Pausing. Of everything: BullMQ's own pause (workers start no queued job; running ones finish;
 * submissions are still accepted and wait). Of one task type: the type joins the paused set (every
 * process reads it, at most 1 s stale), its queued jobs leave Redis (their rows stay PENDING in
 * PostgreSQL, so nothing is lost, and wait for their turn again), and the dispatcher hands out none
 * of it.
 */
export async function pause(r: LifecycleResources, name?: string): Promise<void> {
  if (name === undefined) return r.queue.pause();
  await r.paused.add(name);
  await r.queue.removeQueuedOfType(name);
  await r.store.dispatch.undispatchType(name);
}

/**
 * Resuming everything resumes the queue and every type paused on its own. Resuming a type lets
 * the dispatcher hand its PENDING tasks out again (within a second: its copy of the paused set).
 */
export async function resume(r: LifecycleResources, name?: string): Promise<void> {
  if (name === undefined) {
    await r.queue.resume();
    for (const type of await r.paused.list()) await r.paused.remove(type);
    return;
  }
  await r.paused.remove(name);
}

/**
 * The worker's side: whether a job of this type must wait instead of running. Its copy of the
 * paused set may be up to 1 s old, so a "paused" answer is checked against Redis before the job is
 * held back: a type resumed a moment ago runs at once.
 */
export async function isPaused(r: LifecycleResources, name: string): Promise<boolean> {
  return (await r.paused.has(name)) && (await r.paused.has(name, { fresh: true }));
}
