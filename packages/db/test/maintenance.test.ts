/**
 * vacuumIfBloated on the partitioned tasks table: a partitioned parent has no statistics of its own,
 * so each partition is read and the bloated ones (and only those) are vacuumed.
 */
import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/index.ts';
import { useStore } from './fixture.ts';

const db = useStore();

const stats = async () =>
  Object.fromEntries(
    (
      await db.client.sql<{ name: string; dead: number; vacuums: number }[]>`
        select s.relname as name, s.n_dead_tup::int as dead, (s.vacuum_count + s.autovacuum_count)::int as vacuums
        from pg_stat_user_tables s
        where s.relid in (select inhrelid from pg_inherits where inhparent = 'tasks'::regclass)`
    ).map((r) => [r.name, r]),
  );

describe('vacuumIfBloated', () => {
  it('vacuums the partitions whose dead rows pass the share, not the others, and says it did', async () => {
    // No autovacuum meanwhile (its threshold is low on tasks: migration 0007), so that only the
    // call under test vacuums.
    for (const { name } of await db.client.sql<{ name: string }[]>`
      select inhrelid::regclass::text as name from pg_inherits where inhparent = 'tasks'::regclass`)
      await db.client.sql.unsafe(`alter table ${name} set (autovacuum_enabled = false)`);
    const conn = await db.client.sql.reserve();
    try {
      // 200 tasks of now (this week's partition), then 150 of them deleted: dead rows there only.
      const ids = Array.from({ length: 200 }, () => uuidv7());
      await conn`insert into tasks (id, name, input) select unnest(${ids}::uuid[]), 'sum_two_numbers', '{}'`;
      await conn`delete from tasks where id = any(${ids.slice(0, 150)}::uuid[])`;
      await conn`select pg_stat_force_next_flush()`;
      await conn`select 1`; // the flush happens at the end of a transaction: this one's
    } finally {
      conn.release();
    }
    await db.client.sql`select pg_stat_clear_snapshot()`;
    const before = await stats();
    const week = Object.values(before).find((s) => s.dead >= 150);
    expect(week, JSON.stringify(before)).toBeDefined();
    expect(await db.store.vacuumIfBloated({ share: 0.2, minDead: 100 })).toBe(true);
    await db.client.sql`select pg_stat_clear_snapshot()`;
    const after = await stats();
    for (const [name, s] of Object.entries(after)) {
      if (name === week?.name) expect([s.dead, s.vacuums > (before[name]?.vacuums ?? 0)]).toEqual([0, true]);
      else expect(s.vacuums, name).toBe(before[name]?.vacuums ?? 0);
    }
    // Nothing left past the share: nothing to do.
    expect(await db.store.vacuumIfBloated({ share: 0.2, minDead: 100 })).toBe(false);
  });
});
