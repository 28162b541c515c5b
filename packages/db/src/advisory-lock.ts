import type postgres from 'postgres';

/**
 * An SQL condition true only on the session that holds PostgreSQL advisory lock `key` (a session
 * lock taken with `pg_try_advisory_lock(key)`); it never takes the lock. pg_locks shows a bigint key
 * as its high and low 32 bits (classid, objid) with objsubid 1.
 */
export function holdsAdvisoryLock(sql: postgres.Sql, key: number): postgres.PendingQuery<postgres.Row[]> {
  return sql`exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted
    and classid = (${key}::bigint >> 32)::oid and objid = (${key}::bigint & 4294967295)::oid and objsubid = 1)`;
}
