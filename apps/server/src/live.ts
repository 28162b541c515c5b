import { listenTaskChanges, type TaskChange, type TaskChangeListener, type TaskStore } from '@tasker/db';
import { isTerminal, type Logger, type TaskEvent, toTaskEvent } from '@tasker/engine';
import type postgres from 'postgres';

/** Gets each change with the tenant of its task (events themselves do not carry it). */
type Listener = (event: TaskEvent, tenantId: string) => void;

/** Most events one watcher may have waiting; past that the oldest are dropped (each event is a full state). */
const MAX_BUFFERED = 256;

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
    signal: AbortSignal,
  ): Promise<AsyncGenerator<TaskEvent> | undefined>;
  /** Every change to this tenant's tasks, as it happens, while `signal` is not aborted. */
  watchAll(
    tenantId: string,
    signal: AbortSignal,
    filter?: (event: TaskEvent) => boolean,
  ): AsyncGenerator<TaskEvent>;
}

/** A stream's last event id (a task version) → the version to resume after. */
export function resumeAfter(lastEventId: string | null | undefined): number {
  const version = Number(lastEventId);
  return lastEventId && Number.isInteger(version) ? version : -1;
}

export interface TaskFeedOptions {
  /** How often every watched task is re-read from PostgreSQL, a safety net beside the notifications. */
  resyncMs: number;
}

/**
 * Live task states for this server process. PostgreSQL announces every change in the transaction
 * that makes it (NOTIFY, delivered exactly on commit): ONE listening connection per process, fanned
 * out in memory to any number of watchers. A watcher starts from the row; after the listening
 * connection comes back (changes made meanwhile were not heard), and every `resyncMs`, the watched
 * rows are re-read (one query for all watchers).
 */
export class TaskFeed implements TaskWatcher {
  private readonly byTask = new Map<string, Set<Listener>>();
  /** Newest version dispatched, per watched task: a resync fetches only rows that moved past it. */
  private readonly dispatched = new Map<string, number>();
  private readonly everyTask = new Set<Listener>();
  /** Changes too large for a notification: their rows are read, a batch per tick. */
  private truncated = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private listener: TaskChangeListener | undefined;

  constructor(
    private readonly sql: postgres.Sql,
    private readonly store: TaskStore,
    private readonly options: TaskFeedOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    let listening = false;
    this.listener = await listenTaskChanges(
      this.sql,
      (change) => this.receive(change),
      () => {
        if (listening) void this.resync(); // reconnected: changes may have been missed while away
        listening = true;
      },
      // With nobody watching, a change costs this process nothing but reading the notification.
      () => this.byTask.size > 0 || this.everyTask.size > 0,
    );
    this.timer = setInterval(() => void this.resync(), this.options.resyncMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.listener?.close().catch(() => {});
  }

  private receive(change: TaskChange) {
    if (!change.truncated) return this.dispatch(toTaskEvent(change.row), change.row.tenantId);
    if (!this.byTask.has(change.id) && this.everyTask.size === 0) return;
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

  private dispatch(event: TaskEvent, tenantId: string, toEveryTask = true) {
    const listeners = this.byTask.get(event.id);
    if (listeners) {
      if (event.version > (this.dispatched.get(event.id) ?? -1)) this.dispatched.set(event.id, event.version);
      for (const listener of listeners) listener(event, tenantId);
    }
    if (toEveryTask) for (const listener of this.everyTask) listener(event, tenantId);
  }

  private async resync() {
    const ids = [...this.byTask.keys()];
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

  private listen(id: string | undefined, listener: Listener): () => void {
    if (id === undefined) {
      this.everyTask.add(listener);
      return () => this.everyTask.delete(listener);
    }
    let set = this.byTask.get(id);
    if (!set) {
      set = new Set();
      this.byTask.set(id, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.byTask.delete(id);
        this.dispatched.delete(id);
      }
    };
  }

  async watch(
    tenantId: string,
    id: string,
    afterVersion: number,
    signal: AbortSignal,
  ): Promise<AsyncGenerator<TaskEvent> | undefined> {
    const inbox = new Inbox<TaskEvent>(signal, MAX_BUFFERED);
    const stop = this.listen(id, (event, owner) => {
      if (owner === tenantId) inbox.push(event);
    });
    try {
      const row = await this.store.get(id, tenantId);
      if (!row) {
        stop();
        return undefined;
      }
      inbox.push(toTaskEvent(row));
    } catch (error) {
      stop();
      throw error;
    }
    return (async function* () {
      let last = afterVersion;
      try {
        for (;;) {
          const event = await inbox.next();
          if (!event) return;
          if (event.version <= last) {
            if (isTerminal(event.status)) return; // the caller has the final state already
            continue;
          }
          last = event.version;
          yield event;
          if (isTerminal(event.status)) return;
        }
      } finally {
        stop();
      }
    })();
  }

  async *watchAll(
    tenantId: string,
    signal: AbortSignal,
    filter: (event: TaskEvent) => boolean = () => true,
  ): AsyncGenerator<TaskEvent> {
    const inbox = new Inbox<TaskEvent>(signal, MAX_BUFFERED);
    const stop = this.listen(undefined, (event, owner) => {
      if (owner === tenantId && filter(event)) inbox.push(event);
    });
    try {
      for (;;) {
        const event = await inbox.next();
        if (!event) return;
        yield event;
      }
    } finally {
      stop();
    }
  }
}

/**
 * A bounded mailbox that one consumer awaits: `push` never blocks (past `max` items the oldest is
 * dropped), `next()` resolves undefined once the signal aborts.
 */
export class Inbox<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;

  constructor(
    private readonly signal: AbortSignal,
    private readonly max: number,
  ) {
    signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  push(item: T) {
    this.items.push(item);
    if (this.items.length > this.max) this.items.shift();
    this.wake?.();
  }

  async next(): Promise<T | undefined> {
    while (this.items.length === 0) {
      if (this.signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    return this.signal.aborted ? undefined : this.items.shift();
  }
}
