import { randomUUID } from 'node:crypto';
import {
  listenTaskChanges,
  type StepChange,
  type TaskChange,
  type TaskChangeListener,
  type TaskStore,
  TenantWatchers,
} from '@tasker/db';
import {
  isTerminal,
  type Logger,
  type TaskActivity,
  type TaskEvent,
  type TaskStepEvent,
  toTaskEvent,
  toTaskStepEvent,
} from '@tasker/engine';
import type postgres from 'postgres';
import { STREAM_BUFFER_BYTES, STREAM_BUFFER_EVENTS } from './streams.ts';

/** Gets each change with the tenant of its task (events themselves do not carry it) and its size as JSON. */
type Listener = (event: TaskEvent, tenantId: string, bytes: number) => void;
/**
 * Gets a step of the task it listens to. No tenant: a stream listens to a task's steps only once
 * `follow` found the task in its tenant (a task id is never another tenant's).
 */
type StepListener = (event: TaskStepEvent, bytes: number) => void;

/** How a stream is fed: until `signal` aborts; `onOverflow` when its client stops reading. */
export interface StreamOptions {
  signal: AbortSignal;
  /**
   * Called once when the events waiting for this stream pass STREAM_BUFFER_BYTES (or
   * STREAM_BUFFER_EVENTS): its client no longer reads. The stream ends; the caller drops the client.
   */
  onOverflow?: () => void;
}

/** What the API's procedures and the SSE route need of the live feed (plain types: see trpc.ts). */
export interface TaskWatcher {
  /**
   * One task's states, newest last: its current state at once (unless `afterVersion` already has
   * it), then every change, ending after the terminal state. Never goes backwards. Undefined when
   * the task does not exist.
   */
  watch(
    tenantId: string,
    id: string,
    afterVersion: number,
    stream: StreamOptions,
  ): Promise<AsyncGenerator<TaskEvent> | undefined>;
  /**
   * One task's activity: as `watch`, with its durable steps besides its states: those recorded so
   * far first (before its current state), then each step as it is written, in commit order with
   * the states. A step's write goes out once to a stream; a new stream (a reconnection) gets the
   * recorded steps again. A later event for a step id replaces the earlier.
   */
  activity(
    tenantId: string,
    id: string,
    afterVersion: number,
    stream: StreamOptions,
  ): Promise<AsyncGenerator<TaskActivity> | undefined>;
  /** Every change to this tenant's tasks, as it happens, while the stream's signal is not aborted. */
  watchAll(
    tenantId: string,
    stream: StreamOptions,
    filter?: (event: TaskEvent) => boolean,
  ): AsyncGenerator<TaskEvent>;
}

/** A stream's last event id (a task version) → the version to resume after. */
export function resumeAfter(lastEventId: string | null | undefined): number {
  const version = Number(lastEventId);
  return lastEventId && Number.isInteger(version) ? version : -1;
}

export interface TaskFeedOptions {
  /**
   * How often every watched task is re-read from PostgreSQL, a safety net beside the notifications:
   * in RESYNC_SLICES slices, one every `resyncMs / RESYNC_SLICES`, so that 10,000 watched tasks
   * are not read (and their late rows dispatched) all in one go.
   */
  resyncMs: number;
  /**
   * The client whose `listen` opens the listening connection: PostgreSQL itself (`DbClient.direct`),
   * never a pooler in transaction mode (it would pass the LISTEN on to whichever connection is
   * free, and no notification would come back). Default: the feed's `sql`.
   */
  listenOn?: postgres.Sql;
  /**
   * Called as a change heard from PostgreSQL (or caught up by a resync) goes out on a stream, once
   * per stream (the server's `tasker_live_event_delay_seconds`); not for a stream's first state
   * (the version read when it opens, even when its notification, late, goes out first).
   */
  onLiveEvent?: (event: TaskEvent) => void;
}

/** The events made from changes (notifications, resyncs), as opposed to a stream's first read. */
const heard = new WeakSet<TaskEvent>();

/** A periodic resync re-reads the watched tasks in this many slices, spread over its interval. */
export const RESYNC_SLICES = 10;

/**
 * Live task states for this server process. PostgreSQL announces every change in the transaction
 * that makes it (NOTIFY, delivered exactly on commit): ONE listening connection per process, fanned
 * out in memory to any number of watchers. A watcher starts from the row; after the listening
 * connection comes back (changes made meanwhile were not heard) the watched rows are re-read, and
 * every `resyncMs` too, a slice at a time (one query per slice for all its watchers).
 */
export class TaskFeed implements TaskWatcher {
  private readonly byTask = new Map<string, Set<Listener>>();
  /** Streams of a task's steps too (`activity`), by task. */
  private readonly stepsByTask = new Map<string, Set<StepListener>>();
  /**
   * Per task, the end of its events still on their way: a step (announced by its key) is read
   * back first, and the task's next events wait behind it, so that a stream sees them in commit
   * order (its last step before its final state). Absent for a task with nothing pending: its
   * events go out at once.
   */
  private readonly behind = new Map<string, Promise<void>>();
  /** Newest version dispatched, per watched task: a resync fetches only rows that moved past it. */
  private readonly dispatched = new Map<string, number>();
  /** watchAll's listeners, by tenant: a change costs nothing in the other tenants' streams. */
  private readonly everyTask = new Map<string, Set<Listener>>();
  private delivered = 0;
  /**
   * Changes announced by their keys alone (new tasks, and rows too large for a notification): their
   * rows are read, a batch per tick, when someone watches the task or its tenant.
   */
  private truncated = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** The periodic resync's round: the ids watched at its start, and the slice read next. */
  private round: { ids: string[]; slice: number } = { ids: [], slice: 0 };
  /** A resync slice is being read: the next tick does not start another beside it. */
  private slicing = false;
  private listener: TaskChangeListener | undefined;

  /** This process's leases on the tenants it streams tenant-wide: their new tasks come whole. */
  private readonly watchers: TenantWatchers;

  constructor(
    private readonly sql: postgres.Sql,
    private readonly store: TaskStore,
    private readonly options: TaskFeedOptions,
    private readonly log: Logger,
  ) {
    // Renewed at every resync: a lease outlives three of them.
    this.watchers = new TenantWatchers(sql, randomUUID(), Math.max(30_000, 3 * options.resyncMs));
  }

  /** Listener calls made so far (each one a stream handed an event): the fan-out, measured. */
  get deliveries(): number {
    return this.delivered;
  }

  async start(): Promise<void> {
    let listening = false;
    this.listener = await listenTaskChanges(
      this.options.listenOn ?? this.sql,
      (change) => this.receive(change),
      () => {
        if (listening) void this.resync(); // reconnected: changes may have been missed while away
        listening = true;
      },
      // With nobody watching, a change costs this process nothing but reading the notification.
      () => this.byTask.size > 0 || this.everyTask.size > 0,
      (change) => this.receive(change),
    );
    this.timer = setInterval(() => void this.resyncSlice(), this.options.resyncMs / RESYNC_SLICES);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.listener?.close().catch(() => {});
  }

  /** A change heard from PostgreSQL (public for tests: the notifications call it). */
  receive(change: TaskChange | StepChange) {
    if ('kind' in change) return this.receiveStep(change);
    if (!change.truncated) return this.dispatch(toTaskEvent(change.row), change.row.tenantId);
    if (!this.byTask.has(change.id) && !this.everyTask.has(change.tenantId)) return;
    if (this.truncated.size === 0) setImmediate(() => void this.readTruncated());
    this.truncated.add(change.id);
  }

  private async readTruncated() {
    const ids = [...this.truncated];
    this.truncated = new Set();
    try {
      for (const row of await this.store.getMany(ids)) this.dispatch(toTaskEvent(row), row.tenantId);
    } catch (error) {
      this.log.warn({ err: error }, 'could not read changed tasks; the resync will');
    }
  }

  private receiveStep({ taskId, stepId }: StepChange) {
    if (!this.stepsByTask.has(taskId)) return;
    this.inOrder(taskId, async () => {
      for (const row of await this.store.steps.getMany([{ taskId, stepId }]))
        this.dispatchStep(toTaskStepEvent(row));
    });
  }

  /** Runs `work` now, or after what is still pending for the task (`behind`). */
  private inOrder(taskId: string, work: () => void | Promise<void>) {
    const before = this.behind.get(taskId);
    const pending = before ? before.then(work) : work();
    if (!pending) return;
    const settled: Promise<void> = pending
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not read a written step'))
      .then(() => {
        if (this.behind.get(taskId) === settled) this.behind.delete(taskId);
      });
    this.behind.set(taskId, settled);
  }

  private dispatchStep(event: TaskStepEvent) {
    const listeners = this.stepsByTask.get(event.taskId);
    if (!listeners) return;
    const bytes = JSON.stringify(event).length;
    for (const listener of listeners) {
      this.delivered++;
      listener(event, bytes);
    }
  }

  private dispatch(event: TaskEvent, tenantId: string, toEveryTask = true) {
    if (this.behind.has(event.id))
      return this.inOrder(event.id, () => this.deliver(event, tenantId, toEveryTask));
    this.deliver(event, tenantId, toEveryTask);
  }

  private deliver(event: TaskEvent, tenantId: string, toEveryTask: boolean) {
    const listeners = this.byTask.get(event.id);
    const everyTask = toEveryTask ? this.everyTask.get(tenantId) : undefined;
    if (!listeners && !everyTask) return;
    heard.add(event);
    // Its size as JSON, once for every stream it goes to: what their buffers are bounded by.
    const bytes = JSON.stringify(event).length;
    if (listeners) {
      if (event.version > (this.dispatched.get(event.id) ?? -1)) this.dispatched.set(event.id, event.version);
      for (const listener of listeners) {
        this.delivered++;
        listener(event, tenantId, bytes);
      }
    }
    for (const listener of everyTask ?? []) {
      this.delivered++;
      listener(event, tenantId, bytes);
    }
  }

  /**
   * One slice of the periodic resync: at a round's start (every `resyncMs`) the tenant-wide leases
   * are renewed and the watched ids taken; each tick re-reads the next 1/RESYNC_SLICES of them.
   * Each watched task is so re-read once a round, as by one resync of all, without a burst of
   * 10 queries and up to 10,000 rows every `resyncMs` (issue 23: 10,000 watchers on one server).
   */
  private async resyncSlice() {
    if (this.slicing) return;
    this.slicing = true;
    try {
      // A round is RESYNC_SLICES ticks, whatever it holds: the leases are renewed once a
      // `resyncMs`, also while no single task is watched.
      const slice = this.round.slice;
      if (slice === 0) {
        await this.renewTenantWatches();
        this.round.ids = [...this.byTask.keys()];
      }
      this.round.slice = (slice + 1) % RESYNC_SLICES;
      const size = Math.ceil(this.round.ids.length / RESYNC_SLICES);
      const ids = this.round.ids.slice(slice * size, (slice + 1) * size).filter((id) => this.byTask.has(id));
      await this.reread(ids);
    } finally {
      this.slicing = false;
    }
  }

  private async renewTenantWatches() {
    if (this.everyTask.size > 0)
      await this.watchers
        .hold([...this.everyTask.keys()])
        .catch((error: unknown) => this.log.warn({ err: error }, 'could not renew the tenant-wide watches'));
  }

  /** After the listening connection came back: every watched task and step re-read at once. */
  private async resync() {
    // Steps written while the connection was away: a stream of them gets them all again.
    for (const id of [...this.stepsByTask.keys()])
      this.inOrder(id, async () => {
        for (const step of await this.store.steps.list(id)) this.dispatchStep(toTaskStepEvent(step));
      });
    await this.renewTenantWatches();
    await this.reread([...this.byTask.keys()]);
  }

  /** Re-reads these watched tasks' versions, then dispatches the rows of those that moved past what was dispatched. */
  private async reread(ids: string[]) {
    for (let i = 0; i < ids.length; i += 1000) {
      try {
        // Versions first (one index scan); whole rows only for the tasks whose events were missed.
        const versions = await this.store.versions(ids.slice(i, i + 1000));
        const behind = versions.filter((v) => v.version > (this.dispatched.get(v.id) ?? -1)).map((v) => v.id);
        for (const row of await this.store.getMany(behind))
          this.dispatch(toTaskEvent(row), row.tenantId, false);
      } catch (error) {
        this.log.warn({ err: error }, 'could not re-read watched tasks');
      }
    }
  }

  private listenSteps(id: string, listener: StepListener): () => void {
    return addListener(this.stepsByTask, id, listener, () => {});
  }

  private listen(target: { id: string } | { tenantId: string }, listener: Listener): () => void {
    if ('tenantId' in target) {
      const { tenantId } = target;
      return addListener(this.everyTask, tenantId, listener, () => {
        void this.watchers
          .release(tenantId)
          .catch((error: unknown) =>
            this.log.debug({ err: error }, 'could not end a tenant-wide watch; it runs out'),
          );
      });
    }
    const { id } = target;
    return addListener(this.byTask, id, listener, () => this.dispatched.delete(id));
  }

  async watch(
    tenantId: string,
    id: string,
    afterVersion: number,
    stream: StreamOptions,
  ): Promise<AsyncGenerator<TaskEvent> | undefined> {
    const activity = await this.follow(tenantId, id, afterVersion, stream, false);
    return (
      activity &&
      (async function* () {
        for await (const event of activity) if (event.type === 'state') yield event.task;
      })()
    );
  }

  activity(
    tenantId: string,
    id: string,
    afterVersion: number,
    stream: StreamOptions,
  ): Promise<AsyncGenerator<TaskActivity> | undefined> {
    return this.follow(tenantId, id, afterVersion, stream, true);
  }

  private async follow(
    tenantId: string,
    id: string,
    afterVersion: number,
    stream: StreamOptions,
    withSteps: boolean,
  ): Promise<AsyncGenerator<TaskActivity> | undefined> {
    const inbox = new Inbox<TaskActivity>(stream);
    const stopStates = this.listen({ id }, (task, owner, bytes) => {
      if (owner === tenantId) inbox.push({ type: 'state', task }, bytes);
    });
    const stopSteps = withSteps
      ? this.listenSteps(id, (step, bytes) => inbox.push({ type: 'step', step }, bytes))
      : () => {};
    const stop = () => {
      stopStates();
      stopSteps();
    };
    let opened: number;
    try {
      const row = await this.store.get(id, tenantId);
      if (!row) {
        stop();
        return undefined;
      }
      opened = row.version;
      // Alone on its task, this stream has the version it read: a resync reads the row again only
      // once it moves past it (without this, every watched task that had no change yet was read
      // whole at every resync: 10,000 rows every 10 s for 10,000 new watchers). With other
      // streams on the task, what was dispatched to them stays the mark.
      if (this.byTask.get(id)?.size === 1 && row.version > (this.dispatched.get(id) ?? -1))
        this.dispatched.set(id, row.version);
      // The steps recorded so far before the current state: a finished task's stream ends with it.
      if (withSteps)
        for (const step of await this.store.steps.list(id, row.createdAt)) {
          const event = toTaskStepEvent(step);
          inbox.push({ type: 'step', step: event }, JSON.stringify(event).length);
        }
      const current = toTaskEvent(row);
      inbox.push({ type: 'state', task: current }, JSON.stringify(current).length);
    } catch (error) {
      stop();
      throw error;
    }
    const onLiveEvent = this.options.onLiveEvent;
    return (async function* () {
      let last = afterVersion;
      // Each step as last sent: the same write heard twice (read at the start and announced, or
      // sent again after a reconnection) goes out once.
      const sentSteps = new Map<string, string>();
      try {
        for (;;) {
          const next = await inbox.next();
          if (!next) return;
          if (next.type === 'step') {
            const { id: stepId, status, finishedAt } = next.step;
            const seen = `${status} ${finishedAt}`;
            if (sentSteps.get(stepId) === seen) continue;
            sentSteps.set(stepId, seen);
            yield next;
            continue;
          }
          const event = next.task;
          if (event.version <= last) {
            if (isTerminal(event.status)) return; // the caller has the final state already
            continue;
          }
          last = event.version;
          // A change counts from the version read at the start on: a notification of that same
          // version (the insert, heard while the row was read) may go out first, but it is the
          // stream's first state, not a change the stream waited for.
          if (onLiveEvent && event.version > opened && heard.has(event)) onLiveEvent(event);
          yield next;
          if (isTerminal(event.status)) return;
        }
      } finally {
        stop();
      }
    })();
  }

  async *watchAll(
    tenantId: string,
    stream: StreamOptions,
    filter: (event: TaskEvent) => boolean = () => true,
  ): AsyncGenerator<TaskEvent> {
    const inbox = new Inbox<TaskEvent>(stream);
    // Indexed by tenant: only this tenant's changes reach this listener.
    const first = !this.everyTask.has(tenantId);
    const stop = this.listen({ tenantId }, (event, _owner, bytes) => {
      if (filter(event)) inbox.push(event, bytes);
    });
    try {
      // New tasks of a tenant nobody streams are announced by their keys (then read back here); with
      // the lease, PostgreSQL announces them whole from the next insert on.
      if (first)
        await this.watchers
          .hold([tenantId])
          .catch((error: unknown) => this.log.warn({ err: error }, 'could not register a tenant-wide watch'));
      for (;;) {
        const event = await inbox.next();
        if (!event) return;
        if (heard.has(event)) this.options.onLiveEvent?.(event);
        yield event;
      }
    } finally {
      stop();
    }
  }
}

/**
 * Adds `listener` to `key`'s set in `map`; the function returned takes it out again, and drops the
 * set (then calls `onLast`) when it was the last.
 */
function addListener<K, L>(map: Map<K, Set<L>>, key: K, listener: L, onLast: () => void): () => void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(listener);
  return () => {
    // Called twice, or after its set was dropped and another made: nothing more to do.
    if (!set.delete(listener) || set.size > 0 || map.get(key) !== set) return;
    map.delete(key);
    onLast();
  };
}

/**
 * A bounded mailbox that one consumer (a stream) awaits: `push` never blocks, and `next()` resolves
 * undefined once the signal aborts. Its consumer takes the next item only when the client has taken
 * the last (writes wait for the socket to drain), so what waits here is what the client has not
 * read: past `maxBytes` (or `maxItems`) the client is not reading. The items are let go and
 * `onOverflow` is called, once: the stream ends, instead of the server's memory growing.
 */
export class Inbox<T> {
  private items: { item: T; bytes: number }[] = [];
  private bytes = 0;
  private overflowed = false;
  private wake: (() => void) | undefined;
  private readonly signal: AbortSignal;
  private readonly onOverflow: (() => void) | undefined;

  constructor(
    stream: StreamOptions,
    private readonly maxBytes = STREAM_BUFFER_BYTES,
    private readonly maxItems = STREAM_BUFFER_EVENTS,
  ) {
    this.signal = stream.signal;
    this.onOverflow = stream.onOverflow;
    this.signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  push(item: T, bytes: number) {
    if (this.overflowed || this.signal.aborted) return;
    this.items.push({ item, bytes });
    this.bytes += bytes;
    if (this.bytes > this.maxBytes || this.items.length > this.maxItems) {
      this.overflowed = true;
      this.items = [];
      this.bytes = 0;
      this.onOverflow?.();
    }
    this.wake?.();
  }

  async next(): Promise<T | undefined> {
    while (this.items.length === 0) {
      if (this.signal.aborted || this.overflowed) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    if (this.signal.aborted) return undefined;
    const next = this.items.shift();
    if (next) this.bytes -= next.bytes;
    return next?.item;
  }
}
