import { isTerminal, type Logger, StatusBus, type TaskEvent, toTaskEvent } from '@tasker/core';
import type { TaskStore } from '@tasker/db';
import type { Redis } from 'ioredis';

type Listener = (event: TaskEvent) => void;

/** Most events one watcher may have waiting; past that the oldest are dropped (each event is a full state). */
const MAX_BUFFERED = 256;

export interface TaskFeedOptions {
  /** How often every watched task is re-read from PostgreSQL, in case an event was lost. */
  resyncMs: number;
}

/**
 * Live task states for this server process: ONE Redis subscription on the events channel, fanned
 * out in memory to any number of watchers. PostgreSQL stays the truth: a watcher starts from the
 * row, and every watched row is re-read after the subscription reconnects and every `resyncMs`
 * (one query for all watchers), so a lost event (Redis hiccup, a worker killed between its commit
 * and its publish) delays a watcher but never leaves it hanging.
 */
export class TaskFeed {
  private readonly byTask = new Map<string, Set<Listener>>();
  /** Newest version dispatched, per watched task: a resync fetches only rows that moved past it. */
  private readonly dispatched = new Map<string, number>();
  private readonly everyTask = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private connectedOnce = false;

  constructor(
    private readonly subscriber: Redis,
    private readonly channel: string,
    private readonly store: TaskStore,
    private readonly options: TaskFeedOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.subscriber.on('message', (_channel: string, message: string) => {
      const event = StatusBus.parse(message);
      if (event) this.dispatch(event);
    });
    this.subscriber.on('ready', () => {
      if (this.connectedOnce) void this.resync(); // events may have been missed while away
      this.connectedOnce = true;
    });
    // Not awaited: with Redis down at start the subscription completes when it is back (ioredis
    // re-subscribes after every reconnect); until then the periodic re-read keeps watchers moving.
    this.subscriber.subscribe(this.channel).catch((error: unknown) => {
      this.log.warn({ err: error }, 'could not subscribe to task events');
    });
    this.connectedOnce = true;
    this.timer = setInterval(() => void this.resync(), this.options.resyncMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.subscriber.disconnect();
  }

  /** Number of watchers (for tests and metrics). */
  get watchers(): number {
    let n = this.everyTask.size;
    for (const set of this.byTask.values()) n += set.size;
    return n;
  }

  private dispatch(event: TaskEvent, toEveryTask = true) {
    const listeners = this.byTask.get(event.id);
    if (listeners) {
      if (event.version > (this.dispatched.get(event.id) ?? -1)) this.dispatched.set(event.id, event.version);
      for (const listener of listeners) listener(event);
    }
    if (toEveryTask) for (const listener of this.everyTask) listener(event);
  }

  private async resync() {
    const ids = [...this.byTask.keys()];
    for (let i = 0; i < ids.length; i += 1000) {
      try {
        // Versions first (one index scan); whole rows only for the tasks whose events were missed.
        const versions = await this.store.versions(ids.slice(i, i + 1000));
        const behind = versions.filter((v) => v.version > (this.dispatched.get(v.id) ?? -1)).map((v) => v.id);
        for (const row of await this.store.getMany(behind)) this.dispatch(toTaskEvent(row), false);
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

  /**
   * One task's states, newest last: its current state at once (unless `afterVersion` already has
   * it), then every change, ending after the terminal state. Never goes backwards. Undefined when
   * the task does not exist.
   */
  async watch(
    id: string,
    afterVersion: number,
    signal: AbortSignal,
  ): Promise<AsyncGenerator<TaskEvent> | undefined> {
    const inbox = new Inbox(signal);
    const stop = this.listen(id, (event) => inbox.push(event));
    try {
      const row = await this.store.get(id);
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

  /** Every task's changes, as they happen, while `signal` is not aborted. */
  async *watchAll(
    signal: AbortSignal,
    filter: (event: TaskEvent) => boolean = () => true,
  ): AsyncGenerator<TaskEvent> {
    const inbox = new Inbox(signal);
    const stop = this.listen(undefined, (event) => {
      if (filter(event)) inbox.push(event);
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

/** A bounded mailbox that one consumer awaits; `next()` resolves undefined once the signal aborts. */
class Inbox {
  private readonly items: TaskEvent[] = [];
  private wake: (() => void) | undefined;

  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  push(event: TaskEvent) {
    this.items.push(event);
    if (this.items.length > MAX_BUFFERED) this.items.shift();
    this.wake?.();
  }

  async next(): Promise<TaskEvent | undefined> {
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
