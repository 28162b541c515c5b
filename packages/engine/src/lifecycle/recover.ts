import { type StaleTask, type TaskRow, WEEKS_AHEAD } from '@tasker/db';
import { bestEffort, emit, type LifecycleResources } from './resources.ts';

const BATCH = 500;
const PRUNE_BATCH = 1000;
/** At most this many batches per call, so that a large backlog is pruned over several sweeps. */
const PRUNE_BATCHES = 20;

export interface RecoveryReport {
  checked: number;
  /** Queued again: their job was missing, or left over from an earlier round. */
  requeued: number;
  /** Ended FAILED: BullMQ gave up on their job (stalled too often: its workers kept dying). */
  failed: number;
  /** Rows whose recovery hit an error; the next sweep tries them again. */
  errors: number;
}

/**
 * Makes PostgreSQL's word final. Looks at every unfinished row handed to the queue that has not
 * changed for `graceMs` (which covers the gap between the dispatcher's mark and its enqueue) and at
 * its BullMQ job:
 * - no job (the dispatcher died between its two writes, the enqueue failed, Redis lost its
 *   memory): queued again; a PENDING row of a paused type is given back to the dispatcher instead;
 * - a failed job under a PENDING row: a job left from an earlier round (a retry whose replacement
 *   failed): replaced, never taken for this round's failure;
 * - a failed job under a RUNNING row: BullMQ gave up on it (it stalled too often): FAILED.
 * Each row is handled on its own: one error does not stop the others.
 */
export async function recover(r: LifecycleResources, graceMs: number): Promise<RecoveryReport> {
  const before = new Date(Date.now() - graceMs);
  const report: RecoveryReport = { checked: 0, requeued: 0, failed: 0, errors: 0 };
  let cursor: { updatedAt: Date; id: string } | undefined;
  for (;;) {
    const rows = await r.store.findStale(before, BATCH, cursor);
    const last = rows.at(-1);
    if (!last) break;
    cursor = { updatedAt: last.updatedAt, id: last.id };
    const states = await r.queue.inspect(rows.map((row) => row.id));
    const paused = new Set(await r.paused.list());
    const held = (row: StaleTask) => row.status === 'PENDING' && paused.has(row.name);
    const missing = rows.filter((row) => states.get(row.id) === 'missing' && !held(row));
    await r.store.dispatch.undispatch(
      rows.filter((row) => states.get(row.id) === 'missing' && held(row)).map((row) => row.id),
    );
    try {
      await r.queue.enqueue(missing);
      report.requeued += missing.length;
    } catch (error) {
      r.log.warn({ err: error, count: missing.length }, 'could not requeue tasks whose job is missing');
      report.errors += missing.length;
    }
    for (const row of rows.filter((row) => states.get(row.id) === 'failed')) {
      try {
        if (row.status === 'PENDING') {
          await r.queue.replace(row);
          report.requeued++;
        } else if (await failGivenUp(r, row)) report.failed++;
      } catch (error) {
        r.log.warn({ taskId: row.id, err: error }, 'could not recover task');
        report.errors++;
      }
    }
    report.checked += rows.length;
    if (rows.length < BATCH) break;
  }
  // A handout written in the instant a task finished (the dispatcher read it PENDING before the
  // finishing commit, whose trigger found no handout to delete): it holds nothing, being of a
  // finished task; deleted here so that it does not stay.
  await r.store.dispatch.forgetFinished();
  if (report.requeued > 0 || report.failed > 0 || report.errors > 0)
    r.log.info(report, 'sweeper recovered tasks');
  return report;
}

async function failGivenUp(r: LifecycleResources, row: StaleTask): Promise<TaskRow | undefined> {
  const reason = (await r.queue.failedReason(row.id)) ?? 'the queue gave up on this task';
  const failed = await r.store.failLost(row.id, {
    message: reason,
    name: 'QueueError',
    code: /stalled/i.test(reason) ? 'STALLED' : 'QUEUE_FAILED',
    at: new Date().toISOString(),
  });
  if (failed) {
    emit(r, { kind: 'finished', row: failed });
    await bestEffort(r, 'result cache write', row.id, () => r.cache.put(failed));
  }
  return failed;
}

/**
 * A partitioned tasks table's weeks and its steps' (docs/partitioning.md, steps 5 and 7): the
 * weeks up to `WEEKS_AHEAD` made, the weeks past retention (whose tasks all finished before its
 * cutoff) dropped with their dependents and their week of steps; a warning when fewer than two weeks are ready ahead (a row past the last week fails
 * its insert). Nothing on an unpartitioned table (today's, until its migration).
 */
export async function maintainPartitions(r: LifecycleResources, retentionMs: number): Promise<void> {
  const { partitions } = r.store;
  if (!(await partitions.partitioned())) return;
  const made = await partitions.makeAhead(WEEKS_AHEAD);
  if (made.length > 0) r.log.info({ partitions: made }, 'made the partitions of the weeks ahead');
  if (retentionMs > 0) {
    const { dropped, kept } = await partitions.dropExpired(new Date(Date.now() - retentionMs));
    if (dropped.length > 0) r.log.info({ partitions: dropped }, 'dropped the partitions past retention');
    if (kept.length > 0) r.log.debug({ kept }, 'partitions past retention kept');
  }
  const ahead = await partitions.weeksAhead();
  if (ahead < 2)
    r.log.warn({ weeksAhead: ahead }, 'fewer than two weeks of tasks partitions are ready ahead');
}

/** Keeps the tasks table lean (see `TaskStore.vacuumIfBloated`); logs when it vacuumed. */
export async function vacuum(r: LifecycleResources): Promise<boolean> {
  const started = performance.now();
  try {
    const vacuumed = await r.store.vacuumIfBloated();
    if (vacuumed) r.log.info({ ms: Math.round(performance.now() - started) }, 'vacuumed the tasks table');
    return vacuumed;
  } catch (error) {
    // Upkeep, not recovery: a role that may not VACUUM (not the table's owner) costs speed, nothing else.
    r.log.warn({ err: error }, 'could not vacuum the tasks table');
    return false;
  }
}

/** Retention: deletes finished tasks that finished more than `retentionMs` ago, in short batches. */
export async function prune(r: LifecycleResources, retentionMs: number): Promise<number> {
  if (retentionMs <= 0) return 0;
  const before = new Date(Date.now() - retentionMs);
  let total = 0;
  for (let i = 0; i < PRUNE_BATCHES; i++) {
    const deleted = await r.store.pruneFinished(before, PRUNE_BATCH);
    total += deleted;
    if (deleted < PRUNE_BATCH) break;
  }
  if (total > 0) r.log.info({ deleted: total }, 'pruned finished tasks past retention');
  return total;
}
