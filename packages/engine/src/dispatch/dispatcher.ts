import { DISPATCH_CHANNEL } from '@tasker/db';
import { llmTypeNames } from '../budgets.ts';
import type { PostgresLeaderLock } from '../leader-lock.ts';
import type { LifecycleResources } from '../lifecycle/resources.ts';
import { type HolderLimits, Pace, plan, type TypeLimits } from './plan.ts';

/** Where the dispatcher reads limits (`Limits`, at most 1 s stale); none when not given. */
export interface LimitsSource {
  tenant(tenantId: string): Promise<HolderLimits>;
  type(name: string): Promise<TypeLimits>;
}

export const NO_LIMITS: LimitsSource = {
  tenant: async () => ({ maxRunning: null, startsPerMinute: null }),
  type: async () => ({ maxRunning: null, startsPerMinute: null, maxRunningPerKey: null }),
};

export interface DispatcherOptions {
  /** Jobs the queue holds waiting for a worker at most: the dispatcher tops it up to this. */
  bufferSize: number;
  /** A pass at least this often (due run_after, start pacing, limits changed elsewhere). */
  tickMs: number;
  /** Changes arriving within this of each other share one pass. */
  coalesceMs: number;
  /**
   * The advisory lock that makes one dispatcher the leader across every process, on the process's
   * lock session (`Engine.leaderLock`): it also carries the dispatcher's wake-ups, and writes the
   * handouts, so that only the lock's holder can.
   */
  lock: PostgresLeaderLock;
}

/** The most tenants one pass looks at; the next pass goes on from where this one stopped. */
const TENANTS_PER_PASS = 1000;

/**
 * Fair dequeue: tasks wait in PostgreSQL (PENDING, no handout) until the dispatcher hands them to the
 * queue, a few at a time, in the order `plan` chooses: round-robin over tenants, then over a
 * tenant's concurrency keys, within their limits. The queue never holds more than `bufferSize`
 * waiting jobs, so a tenant's backlog stays in PostgreSQL where it cannot delay anyone, and each
 * job carries its place among its tenant's tasks in flight as its BullMQ priority, so that the jobs
 * already queued are taken round-robin too.
 *
 * Every worker runs one; one at a time leads (`options.lock`, an advisory lock on the process's
 * lock session: a dead leader's lock goes with its connection, and another worker takes over within
 * a second; a leader that loses its session stops leading at its next check, within 2 s, and cannot
 * hand a task out meanwhile). It passes when a statement inserts tasks or sets a task's status or
 * run_after (an empty NOTIFY on `tasker_dispatch`, per statement, not per row: a batch of claims is
 * one), and every `tickMs`.
 *
 * Nothing is lost at any point: a task's handout is written before its job is added, and the
 * sweeper adds the job of a handed-out task whose job is missing (a leader killed in between).
 */
export class Dispatcher {
  private stopped = true;
  private leading = false;
  private passing: Promise<void> | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private campaign: Promise<void> | undefined;
  private wakeStop: (() => void) | undefined;
  private readonly pace = new Pace();
  private cursor = '';
  private lastWarning = 0;

  constructor(
    private readonly r: LifecycleResources,
    private readonly options: DispatcherOptions,
    private readonly limits: LimitsSource = NO_LIMITS,
  ) {}

  /** Whether this process leads now (tests, metrics). */
  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.campaign = this.campaignLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeStop?.();
    clearTimeout(this.timer);
    await this.campaign;
  }

  /** A change may let tasks go: pass soon (changes close together share one pass). */
  wake(): void {
    if (!this.leading || this.stopped) return;
    if (this.passing) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.passing = this.pass().finally(() => {
        this.passing = undefined;
        if (this.dirty) {
          this.dirty = false;
          this.wake();
        }
      });
    }, this.options.coalesceMs);
  }

  private async campaignLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.leadIfFree();
      } catch (error) {
        this.warn(error, 'dispatcher leadership failed; trying again');
      }
      if (!this.stopped) await this.sleep(1000);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeStop = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * Takes the lock if free, and leads until stopped or the lock is lost (`acquire` every 2 s: on the
   * same session it still holds it; on a new one, the old connection and its lock gone, it takes it
   * again only if no other worker has).
   */
  private async leadIfFree(): Promise<void> {
    const { lock } = this.options;
    if (!(await lock.acquire())) return;
    const listener = await lock.session.listen(DISPATCH_CHANNEL, () => this.wake());
    this.leading = true;
    const tick = setInterval(() => this.wake(), this.options.tickMs);
    this.r.log.info('dispatcher: leading (this worker hands tasks to the queue)');
    this.wake();
    try {
      while (!this.stopped) {
        await this.sleep(2000);
        if (!this.stopped && !(await lock.acquire())) {
          this.r.log.warn('dispatcher: another worker leads now');
          return;
        }
      }
    } finally {
      this.leading = false;
      clearInterval(tick);
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.passing;
      await listener.unlisten().catch(() => {});
      if (this.stopped) await lock.release();
    }
  }

  /** One pass: top the queue's buffer up with the tasks whose turn it is. */
  private async pass(): Promise<void> {
    try {
      const { store, queue, paused } = this.r;
      // Paused types: from the process's copy, at most 1 s old (a job of a type paused since then
      // waits in the worker's own paused check).
      const [holding, pausedTypes] = await Promise.all([
        store.dispatch.holding(),
        paused.list({ fresh: false }),
      ]);
      const waiting = holding.reduce((n, g) => n + g.waiting, 0);
      const free = this.options.bufferSize - waiting;
      if (free <= 0) return;
      const tenants = await store.dispatch.readyTenants(TENANTS_PER_PASS, this.cursor);
      this.cursor = tenants.length >= TENANTS_PER_PASS ? (tenants.at(-1) ?? '') : '';
      if (tenants.length === 0) return;
      // Tenants over an LLM budget: their tasks of LLM types wait (held), the others go on.
      const heldTenants = await this.r.limits.budgets.heldTenants(tenants);
      const candidates = await store.dispatch.candidates(tenants, free, pausedTypes, {
        tenants: heldTenants,
        names: heldTenants.length > 0 ? llmTypeNames() : [],
      });
      if (candidates.length === 0) return;
      // Paused, nothing is handed out: on resume the waiting tasks go in their turns and priorities.
      if (await queue.isPaused()) return;
      const tenantLimits = new Map<string, HolderLimits>();
      const typeLimits = new Map<string, TypeLimits>();
      await Promise.all([
        ...[...new Set(candidates.map((c) => c.tenantId))].map(async (t) =>
          tenantLimits.set(t, await this.limits.tenant(t)),
        ),
        ...[...new Set(candidates.map((c) => c.name))].map(async (n) =>
          typeLimits.set(n, await this.limits.type(n)),
        ),
      ]);
      const picks = plan({
        free,
        candidates,
        holding,
        tenantLimits: (t) => tenantLimits.get(t) ?? { maxRunning: null, startsPerMinute: null },
        typeLimits: (n) =>
          typeLimits.get(n) ?? { maxRunning: null, startsPerMinute: null, maxRunningPerKey: null },
        pace: this.pace,
        now: Date.now(),
      });
      if (picks.length === 0) return;
      const { lock } = this.options;
      const taken = await store.dispatch.dispatch(
        picks.map((p) => p.task.id),
        { sql: lock.session, lockKey: lock.key },
        picks.map((p) => p.order),
      );
      await queue.handedOut(
        picks.filter((p) => taken.has(p.task.id)).map((p) => ({ ...p.task, order: p.order })),
      );
      // The buffer filled, or other tenants wait beyond this pass's window: go on.
      if (picks.length >= free || this.cursor !== '') this.dirty = true;
    } catch (error) {
      this.warn(error, 'dispatch pass failed; the next one retries');
    }
  }

  private warn(error: unknown, message: string): void {
    if (Date.now() - this.lastWarning < 10_000) return;
    this.lastWarning = Date.now();
    this.r.log.warn({ err: error }, message);
  }
}
