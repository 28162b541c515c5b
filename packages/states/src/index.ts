/**
 * A task's life, stated once: every status, and every transition allowed between them with its
 * guards and the fields it writes. Nothing else in Tasker decides which change is allowed:
 *
 * - `@tasker/db` builds each UPDATE's WHERE clause from `TRANSITIONS[name]` (its `from` statuses and
 *   guards) and types each UPDATE's SET from its `sets`, so a transition cannot write a field it
 *   does not declare;
 * - the SDK (bundled into its package), the CLI and the dashboard read the terminal set and
 *   `canCancel` / `canRetry` from here instead of keeping their own lists.
 *
 * No dependencies: the browser bundle and the published SDK take it as is.
 */

export const TASK_STATUSES = [
  'PENDING',
  'RUNNING',
  'WAITING',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'EXPIRED',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** What each status means, for documents (OpenAPI, the CLI's help, the dashboard's legend). */
export const STATUS_DESCRIPTIONS: Readonly<Record<TaskStatus, string>> = {
  PENDING: 'accepted, not running: queued, delayed (run_after), or waiting for its next attempt',
  RUNNING: 'an attempt runs on a worker',
  WAITING:
    'its handler is suspended (ctx.sleep, or ctx.run / ctx.runMany waiting for child tasks): it holds no worker slot and no job, and goes back to PENDING when its wait ends (waiting_for)',
  COMPLETED: 'finished with an output',
  FAILED: 'finished with an error, no attempts left (or an error no attempt can fix)',
  CANCELLED: 'finished because its cancellation was asked for',
  EXPIRED: 'finished without running: it was not started within its ttl_ms',
};

/** The statuses a task ends in. Only an explicit retry moves a task out of one. */
export const TERMINAL_STATUSES = [
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'EXPIRED',
] as const satisfies readonly TaskStatus[];
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

/** The statuses of a task that is not finished: queued, delayed, waiting for a retry, running, or suspended. */
export const UNFINISHED_STATUSES = ['PENDING', 'RUNNING', 'WAITING'] as const satisfies readonly TaskStatus[];
export type UnfinishedStatus = (typeof UNFINISHED_STATUSES)[number];

/**
 * The unfinished statuses in which a task may be handed to the queue: it may hold a slot (a handout)
 * and a job. A WAITING task holds neither (its handout goes in the commit that suspends it).
 */
export const ACTIVE_STATUSES = ['PENDING', 'RUNNING'] as const satisfies readonly UnfinishedStatus[];

export const isTerminal = (status: TaskStatus | string): status is TerminalStatus =>
  (TERMINAL_STATUSES as readonly string[]).includes(status);

/**
 * Conditions a transition may require besides the task's current status. Each has one SQL
 * rendering (in `@tasker/db`, `tasks/transition-sql.ts`), checked there to cover this list.
 */
export const GUARDS = {
  cancelNotRequested: 'no cancellation was asked for (cancel_requested_at is null)',
  cancelRequested: 'a cancellation was asked for (cancel_requested_at is set)',
  ofTenant: "the caller's tenant owns the task (when the caller names a tenant)",
  notExpired: 'the task has no expiry, or it has not passed (expires_at is null or later than now)',
  expired: 'the task has an expiry and it has passed (expires_at <= now)',
  due: 'the task may start now: it has no start time, or it has passed (run_after is null or <= now)',
  noUnfinishedChildren:
    'no child task of it (ctx.run, ctx.runMany) is unfinished: none is PENDING, RUNNING or WAITING',
  singletonKeyFree: 'it has no singleton_key, or no other unfinished task of its tenant holds that key',
} as const;
export type Guard = keyof typeof GUARDS;

/** The task fields a transition may write (besides `status`, `version` and `updated_at`, which every one writes). */
export type TaskField =
  | 'attempts'
  | 'attemptErrors'
  | 'cancelRequestedAt'
  | 'debounceKey'
  | 'error'
  | 'expiresAt'
  | 'finishedAt'
  | 'output'
  | 'progress'
  | 'runAfter'
  | 'startedAt'
  | 'usage'
  | 'waitingFor'
  | 'workerId';

export interface Transition {
  readonly from: readonly TaskStatus[];
  /** The status after it; `from`'s own status when the transition changes fields only. */
  readonly to: TaskStatus | 'unchanged';
  readonly guards: readonly Guard[];
  readonly sets: readonly TaskField[];
  readonly doc: string;
}

const transition = <const T extends Transition>(t: T): T => t;

/**
 * Every allowed change of a task row. A change not listed here is not made: the store has no other
 * way to write a task.
 */
export const TRANSITIONS = {
  claim: transition({
    from: ['PENDING', 'RUNNING'],
    to: 'RUNNING',
    guards: ['cancelNotRequested', 'notExpired', 'due'],
    sets: ['attempts', 'progress', 'startedAt', 'workerId'],
    doc: 'A worker takes the task for an attempt (RUNNING too: the worker that ran it before died); never before its run_after (a debounced task whose start moved: its job fired early).',
  }),
  progress: transition({
    from: ['RUNNING'],
    to: 'unchanged',
    guards: [],
    sets: ['progress'],
    doc: 'The running attempt reports progress.',
  }),
  recordUsage: transition({
    from: ['RUNNING'],
    to: 'unchanged',
    guards: [],
    sets: ['usage'],
    doc: "The running attempt's model call used tokens: added to the task's usage (the call itself goes to task_llm_calls).",
  }),
  complete: transition({
    from: ['RUNNING'],
    to: 'COMPLETED',
    guards: ['cancelNotRequested'],
    sets: ['output', 'error', 'finishedAt'],
    doc: 'The attempt returned a valid output. A cancellation asked for first wins instead (cancelRunning).',
  }),
  failFinal: transition({
    from: ['RUNNING'],
    to: 'FAILED',
    guards: ['cancelNotRequested'],
    sets: ['error', 'attemptErrors', 'finishedAt'],
    doc: 'The attempt failed with no attempts left, or with an error no attempt can fix (a cancel asked for wins: failCancelled).',
  }),
  failRetry: transition({
    from: ['RUNNING'],
    to: 'PENDING',
    guards: ['cancelNotRequested'],
    sets: ['error', 'attemptErrors', 'finishedAt'],
    doc: 'The attempt failed and another one follows (after its backoff).',
  }),
  failCancelled: transition({
    from: ['RUNNING'],
    to: 'CANCELLED',
    guards: ['cancelRequested'],
    sets: ['error', 'attemptErrors', 'finishedAt'],
    doc: 'The attempt failed while a cancellation was asked for: it ends CANCELLED in the same commit, never PENDING first.',
  }),
  release: transition({
    from: ['RUNNING'],
    to: 'PENDING',
    guards: [],
    sets: ['attempts'],
    doc: 'A worker shutting down gives its attempt back without counting it.',
  }),
  cancelPending: transition({
    from: ['PENDING', 'WAITING'],
    to: 'CANCELLED',
    guards: ['ofTenant'],
    sets: ['error', 'cancelRequestedAt', 'finishedAt', 'waitingFor'],
    doc: 'Cancelled before it ran, or while it waits: it never runs (again).',
  }),
  requestCancel: transition({
    from: ['RUNNING'],
    to: 'unchanged',
    guards: ['ofTenant'],
    sets: ['cancelRequestedAt'],
    doc: 'Cancellation asked for while it runs: the worker aborts it and ends it (cancelRunning).',
  }),
  cancelRunning: transition({
    from: ['PENDING', 'RUNNING'],
    to: 'CANCELLED',
    guards: ['cancelRequested'],
    sets: ['error', 'finishedAt'],
    doc: 'The end of a cancellation asked for while it ran.',
  }),
  wait: transition({
    from: ['RUNNING'],
    to: 'WAITING',
    guards: ['cancelNotRequested'],
    sets: ['waitingFor', 'runAfter', 'expiresAt', 'debounceKey'],
    doc: 'The handler suspended itself (ctx.sleep): the attempt ends without a result, the task gives its slot and job back and waits (waiting_for) until run_after. It has started: its ttl no longer applies, and no submission joins it by its debounce key any more.',
  }),
  wake: transition({
    from: ['WAITING'],
    to: 'PENDING',
    guards: ['due'],
    sets: ['waitingFor'],
    doc: 'Its wait is over (run_after passed): it waits for its turn again, and its handler runs from the top, its finished steps answered from the record.',
  }),
  tokenDone: transition({
    from: ['WAITING'],
    to: 'PENDING',
    guards: [],
    sets: ['waitingFor', 'runAfter'],
    doc: "The wait token it waits for (ctx.waitForToken) was completed before its timeout: it waits for its turn again (run_after now), and its handler resumes with the completion's output.",
  }),
  waitOver: transition({
    from: ['WAITING'],
    to: 'unchanged',
    guards: [],
    sets: ['runAfter'],
    doc: "What it waits for came while it still ran (a wait token completed then could not wake it): its wait ends now (run_after now), and the waker's `wake` moves it to PENDING at its next pass, once the attempt's job is gone. Woken at once, it could be handed out while that job (under the task's id) is still in the queue, which ignores the new one.",
  }),
  childrenDone: transition({
    from: ['WAITING'],
    to: 'PENDING',
    guards: ['noUnfinishedChildren'],
    sets: ['waitingFor'],
    doc: "Its wait for its child tasks is over (waiting_for kind children): the last child's end moves it in the same commit (the finishing trigger), and the waker (on the leading dispatcher's worker) catches the rare parent two last children both missed. Its handler runs from the top and reads its children's outputs from their records.",
  }),
  expire: transition({
    from: ['PENDING'],
    to: 'EXPIRED',
    guards: ['expired'],
    sets: ['error', 'finishedAt'],
    doc: 'Not started within its ttl_ms (also while its type or the queue is paused): it never runs.',
  }),
  failLost: transition({
    from: ['PENDING', 'RUNNING'],
    to: 'FAILED',
    guards: [],
    sets: ['error', 'attemptErrors', 'finishedAt'],
    doc: "Ended from outside a worker: the task's job was lost for good (the recovery sweeper).",
  }),
  retry: transition({
    from: ['FAILED', 'CANCELLED', 'EXPIRED'],
    to: 'PENDING',
    guards: ['ofTenant', 'noUnfinishedChildren', 'singletonKeyFree'],
    sets: [
      'error',
      'output',
      'progress',
      'attempts',
      'cancelRequestedAt',
      'finishedAt',
      'runAfter',
      'expiresAt',
    ],
    doc: 'Run again by hand, under the same id, for a new round of attempts (earlier errors stay in attempt_errors); it waits for its turn again. Not while a child task of it is unfinished (409 CHILDREN_RUNNING), nor while another unfinished task holds its singleton_key (409 SINGLETON_KEY_HELD).',
  }),
} as const satisfies Record<string, Transition>;

export type TransitionName = keyof typeof TRANSITIONS;
/** The fields transition `T` writes. */
export type FieldsOf<T extends TransitionName> = (typeof TRANSITIONS)[T]['sets'][number];

/** The statuses a task may be in for a transition to apply (its guards aside). */
export const fromOf = (name: TransitionName): readonly TaskStatus[] => TRANSITIONS[name].from;

/** Whether a cancel can still change this task: it is unfinished and no cancellation was asked for yet. */
export function canCancel(task: { status: TaskStatus | string; cancelRequestedAt?: unknown }): boolean {
  if (task.cancelRequestedAt != null) return false;
  return (
    (TRANSITIONS.cancelPending.from as readonly string[]).includes(task.status) ||
    (TRANSITIONS.requestCancel.from as readonly string[]).includes(task.status)
  );
}

/** The statuses a task can be retried from. */
export const RETRYABLE_STATUSES = TRANSITIONS.retry.from;

/** Whether a retry can run this task again. */
export const canRetry = (task: { status: TaskStatus | string }): boolean =>
  (RETRYABLE_STATUSES as readonly string[]).includes(task.status);

/** The statuses a task in `status` can move to, by any transition. */
export function nextStatuses(status: TaskStatus): TaskStatus[] {
  const next = new Set<TaskStatus>();
  for (const t of Object.values(TRANSITIONS) as Transition[]) {
    if (t.from.includes(status)) next.add(t.to === 'unchanged' ? status : t.to);
  }
  return [...next];
}

/** `a, b or c`, for messages that list statuses. */
export function listInWords(statuses: readonly string[]): string {
  if (statuses.length <= 1) return statuses.join('');
  return `${statuses.slice(0, -1).join(', ')} or ${statuses.at(-1)}`;
}
