import { TRANSITIONS } from '@tasker/states';
import { createTestEnv } from '@tasker/testing';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { choiceText, conditionText, migrateDatabase } from '../src/index.ts';
import { createdAtWindow } from '../src/tasks/id-time.ts';

describe('SQL built from the state machine', () => {
  it('guards each batched statement by its transition: statuses and guards', () => {
    expect(conditionText('claim')).toBe(
      "t.status::text in ('PENDING', 'RUNNING') and t.cancel_requested_at is null and (t.expires_at is null or t.expires_at > now()) and (t.run_after is null or t.run_after <= now())",
    );
    expect(conditionText('complete')).toBe("t.status::text = 'RUNNING' and t.cancel_requested_at is null");
    expect(conditionText('expire')).toBe("t.status::text = 'PENDING' and t.expires_at <= now()");
  });

  it('finds a batch by primary key in its one partition, not by an index on status, on a table never analyzed', async () => {
    const env = createTestEnv();
    await migrateDatabase(env.databaseUrl);
    const sql = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      // 20,000 tasks, 3,000 of them unfinished, and no statistics (a new database whose autovacuum
      // is off): a status condition the partial indexes can serve made the planner walk every
      // unfinished task for 20 ids. UUIDv7 ids of now, as the service makes them: the statements
      // bound created_at by the ids' times (createdAtWindow), which prunes to their week.
      const v7 = sql`(lpad(to_hex((extract(epoch from now()) * 1000)::bigint), 12, '0') || '7'
        || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid`;
      await sql`insert into tasks (id, name, input, status, max_attempts, output, finished_at)
        select ${v7}, 'sum_two_numbers', jsonb_build_object('a', g, 'b', g), 'COMPLETED', 3, '1', now()
        from generate_series(1, 17000) g`;
      await sql`insert into tasks (id, name, input, status, max_attempts)
        select ${v7}, 'sum_two_numbers', jsonb_build_object('a', g, 'b', g),
               (case when g % 2 = 0 then 'PENDING' else 'RUNNING' end)::task_status, 3
        from generate_series(1, 3000) g`;
      const ids = (
        await sql<{ id: string }[]>`select id from tasks where finished_at is null order by id limit 20`
      ).map((r) => r.id);
      const window = createdAtWindow(ids);
      expect(window).toBeDefined();
      const plan = async (condition: string) => {
        const rows = await sql.unsafe(
          `explain update tasks t set version = t.version + 1 from unnest($1::uuid[]) as v(id)
           where t.id = v.id and t.created_at between $2::timestamptz and $3::timestamptz and ${condition}`,
          [ids, window?.from ?? '', window?.to ?? ''],
        );
        return rows.map((r) => String(r['QUERY PLAN'])).join('\n');
      };
      for (const name of ['claim', 'complete', 'expire'] as const) {
        const text = await plan(conditionText(name));
        expect(text, name).toMatch(/Index Scan using tasks_w\d{8}_pkey/);
        expect(text, name).not.toMatch(
          /tasks_(w\d{8}_)?(unfinished|ready|pending_name|expiry)_idx|Seq Scan on tasks/,
        );
        // Pruned to the week of the ids: one partition, planned and updated.
        expect(text.match(/Update on tasks_\w+/g), name).toHaveLength(1);
      }
    } finally {
      await sql.end();
      await env.cleanup();
    }
  });

  it('refuses a tenant-guarded transition where no tenant can be bound', () => {
    expect(() => conditionText('retry')).toThrow(/needs a tenant/);
  });

  it('chooses among transitions in order, the last as the else', () => {
    expect(
      choiceText([{ name: 'failCancelled' }, { name: 'failFinal', when: 'v.final' }, { name: 'failRetry' }]),
    ).toBe(
      "(case when t.cancel_requested_at is not null then 'CANCELLED' when t.cancel_requested_at is null and v.final then 'FAILED' else 'PENDING' end)::task_status",
    );
  });

  it('writes every status of every transition as the enum knows it', () => {
    for (const t of Object.values(TRANSITIONS)) expect(t.from.every((s) => /^[A-Z]+$/.test(s))).toBe(true);
  });
});
