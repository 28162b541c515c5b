import type { HoldingGroup, ReadyTask } from '@tasker/db';

/** A holder's limits as the planner applies them; null: none. */
export interface HolderLimits {
  maxRunning: number | null;
  startsPerMinute: number | null;
}
export interface TypeLimits extends HolderLimits {
  maxRunningPerKey: number | null;
}

export interface PlanInput {
  /** How many tasks the queue may take now (its buffer's free room). */
  free: number;
  /** Tasks waiting for their turn: per tenant, in that tenant's own order (priority, then age). */
  candidates: readonly ReadyTask[];
  /** What holds a slot now, by tenant, type and key. */
  holding: readonly HoldingGroup[];
  tenantLimits(tenantId: string): HolderLimits;
  typeLimits(name: string): TypeLimits;
  /** Start pacing (starts_per_minute), kept across passes by the dispatcher. */
  pace: Pace;
  now: number;
}

export interface Pick {
  task: ReadyTask;
  /**
   * The task's place among its tenant's tasks in flight (1: its first). The queue orders jobs by
   * it, so a tenant's first task goes before another tenant's fiftieth, whatever was queued first.
   */
  order: number;
}

/** When each holder (a tenant, a task type) may next start a task, for starts_per_minute. */
export class Pace {
  private readonly next = new Map<string, number>();

  allows(holder: string, now: number): boolean {
    return (this.next.get(holder) ?? 0) <= now;
  }

  /** Records a start now: the next may follow 60 s / perMinute later (never earlier than now). */
  started(holder: string, perMinute: number, now: number): void {
    this.next.set(holder, Math.max(now, this.next.get(holder) ?? 0) + 60_000 / perMinute);
  }

  /** The soonest time a paced holder may start again, or undefined. */
  soonest(now: number): number | undefined {
    let soonest: number | undefined;
    for (const at of this.next.values())
      if (at > now && (soonest === undefined || at < soonest)) soonest = at;
    return soonest;
  }
}

const keyOf = (name: string, key: string) => `${name}\u0000${key}`;
const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n);
const under = (count: number | undefined, limit: number | null) => limit === null || (count ?? 0) < limit;

/**
 * Fair dequeue, as a pure function: which waiting tasks go to the queue now, in which order.
 *
 * Round-robin over the tenants (the least served first: fewest tasks in flight), one task each
 * per round; within a tenant, round-robin over its concurrency keys; within a key, the tenant's
 * own order (priority, then age). A task is taken only if its tenant, its type and its type's
 * per-key limit all have room and its tenant's and type's start pace allows it; the plan never
 * takes more than `free`. A tenant gains nothing by spreading its tasks over many keys (its turn
 * is one task per round whatever its keys), and priority only orders a tenant's own tasks.
 */
export function plan(input: PlanInput): Pick[] {
  const tenantHeld = new Map<string, number>();
  const typeHeld = new Map<string, number>();
  const keyHeld = new Map<string, number>();
  for (const g of input.holding) {
    add(tenantHeld, g.tenantId, g.holding);
    add(typeHeld, g.name, g.holding);
    add(keyHeld, keyOf(g.name, g.concurrencyKey), g.holding);
  }
  // Per tenant: its keys in first-seen order, each key's tasks in the tenant's order.
  const tenants = new Map<string, Map<string, ReadyTask[]>>();
  for (const task of input.candidates) {
    let keys = tenants.get(task.tenantId);
    if (!keys) {
      keys = new Map();
      tenants.set(task.tenantId, keys);
    }
    const list = keys.get(task.concurrencyKey);
    if (list) list.push(task);
    else keys.set(task.concurrencyKey, [task]);
  }
  const order = [...tenants.keys()].sort(
    (a, b) => (tenantHeld.get(a) ?? 0) - (tenantHeld.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0),
  );
  const picks: Pick[] = [];
  let active = order;
  while (active.length > 0 && picks.length < input.free) {
    const next: string[] = [];
    for (const tenantId of active) {
      if (picks.length >= input.free) break;
      const limits = input.tenantLimits(tenantId);
      if (!under(tenantHeld.get(tenantId), limits.maxRunning)) continue;
      if (limits.startsPerMinute !== null && !input.pace.allows(`tenant:${tenantId}`, input.now)) continue;
      const keys = tenants.get(tenantId);
      const task = keys && takeFromKeys(keys, input, typeHeld, keyHeld);
      if (!task) continue;
      add(tenantHeld, tenantId, 1);
      add(typeHeld, task.name, 1);
      add(keyHeld, keyOf(task.name, task.concurrencyKey), 1);
      if (limits.startsPerMinute !== null)
        input.pace.started(`tenant:${tenantId}`, limits.startsPerMinute, input.now);
      const type = input.typeLimits(task.name);
      if (type.startsPerMinute !== null)
        input.pace.started(`type:${task.name}`, type.startsPerMinute, input.now);
      picks.push({ task, order: tenantHeld.get(tenantId) ?? 1 });
      next.push(tenantId);
    }
    active = next;
  }
  return picks;
}

/**
 * The tenant's next task: from its first key (rotated to the back once served) that has a task
 * its type allows now. Tasks skipped for their type's limits stay for a later pass.
 */
function takeFromKeys(
  keys: Map<string, ReadyTask[]>,
  input: PlanInput,
  typeHeld: Map<string, number>,
  keyHeld: Map<string, number>,
): ReadyTask | undefined {
  for (const [key, tasks] of keys) {
    const index = tasks.findIndex((task) => {
      const type = input.typeLimits(task.name);
      return (
        under(typeHeld.get(task.name), type.maxRunning) &&
        under(keyHeld.get(keyOf(task.name, task.concurrencyKey)), type.maxRunningPerKey) &&
        (type.startsPerMinute === null || input.pace.allows(`type:${task.name}`, input.now))
      );
    });
    if (index < 0) {
      keys.delete(key); // nothing of this key may start in this pass
      continue;
    }
    const [task] = tasks.splice(index, 1);
    keys.delete(key);
    if (tasks.length > 0) keys.set(key, tasks); // to the back: the next key goes first next time
    return task;
  }
  return undefined;
}
