import type { Suspension, TaskRow } from '@tasker/db';
import { endCancelled } from './cancel.ts';
import { emit, type LifecycleResources } from './resources.ts';

/** Rows one statement wakes at most; `wakeDue` repeats until fewer come back. */
const BATCH = 500;
/** At most this many batches per call: a huge backlog wakes over several ticks. */
const BATCHES = 20;

/**
 * The handler suspended itself (a sleep, `steps.ts`): RUNNING → WAITING until `suspension.until`,
 * in one commit with the sleep's step (recorded `waiting`) and the end of the task's handout (a
 * waiting task holds no slot). The worker then ends the job: the task holds no job either. If a
 * cancel was asked for meanwhile, the task ends CANCELLED instead. Undefined when the task was no
 * longer RUNNING (another delivery ended it).
 */
export async function wait(
  r: LifecycleResources,
  row: TaskRow,
  suspension: Suspension,
): Promise<TaskRow | undefined> {
  const waiting = await r.store.wait(row.id, suspension);
  // A completion that came while the task was still RUNNING could not wake it (tokens.ts in
  // @tasker/db): now that WAITING is committed, the token is looked at once more. Completed, the
  // wait ends now and the waker wakes the task at its next pass, not here: this attempt's job is
  // in the queue until the worker ends it, and a job for the woken task under the same id would
  // be ignored meanwhile. Children that all ended before the wait committed are the same case:
  // the waker's `wakeDone` finds them.
  const token = suspension.waitingFor.kind === 'token' ? suspension.waitingFor.token : undefined;
  if (waiting) {
    emit(r, { kind: 'attempt-ended', row, outcome: 'suspended' });
    if (token) return (await r.store.tokens.dueIfCompleted(token)) ?? waiting;
    return waiting;
  }
  // Not RUNNING any more: also this wait tried again (`persist`) after its WAITING committed and
  // the look at the token failed. The look is made again (it changes only a task WAITING for this
  // token), else the task would wait for a completed token until the token's timeout.
  if (token) {
    const due = await r.store.tokens.dueIfCompleted(token);
    if (due) return due;
  }
  return endCancelled(r, row.id, row.attempts, row);
}

/**
 * The `wake` transition: every WAITING task whose wait is over (run_after passed) goes back to
 * PENDING, to be handed out again by the dispatcher in its tenant's turn; its handler then runs
 * from the top, its finished steps answered from the record. The worker whose dispatcher leads
 * calls this every WAKE_INTERVAL_MS (`waker.ts`); rows another transaction holds are skipped (SKIP
 * LOCKED: an old leader that has not yet seen its lock go may still pass). Returns how many.
 */
export async function wakeDue(r: LifecycleResources): Promise<number> {
  let total = 0;
  for (let i = 0; i < BATCHES; i++) {
    const rows = await r.store.wakeDue(BATCH);
    total += rows.length;
    if (rows.length < BATCH) break;
  }
  // Parents waiting for children that have all ended (`childrenDone`): the last child's end wakes
  // its parent in its own commit; this catches a parent whose last children ended at one instant
  // (each commit saw the other child unfinished), or before the parent's wait was committed. Not at
  // once after the wait: the parent's job must be gone from the queue before it is handed out again.
  for (let i = 0; i < BATCHES; i++) {
    const rows = await r.store.children.wakeDone(BATCH);
    total += rows.length;
    if (rows.length < BATCH) break;
  }
  return total;
}
