import type postgres from 'postgres';
import { pgArray } from './tasks/rows.ts';

/**
 * Leases, per server process, on the tenants whose tasks it streams tenant-wide (`watchAll`). The
 * insert trigger (migration 0030_announce_per_statement) announces a new task whole only while its
 * tenant has a live lease, else by its key alone: a row built for nobody is most of what announcing
 * a batch of new tasks costs. A lease runs `leaseMs`; the holder renews it well before, and a
 * process that dies leaves leases that simply run out.
 */
export class TenantWatchers {
  constructor(
    private readonly sql: postgres.Sql,
    /** This process's id, one per feed. */
    private readonly watcherId: string,
    private readonly leaseMs: number,
  ) {}

  /** Takes or renews this process's lease on each tenant, and drops leases that ran out an hour ago. */
  async hold(tenants: readonly string[]): Promise<void> {
    if (tenants.length === 0) return;
    await this.sql`
      with renewed as (
        insert into tasker_tenant_watchers (tenant_id, watcher_id, expires_at)
        select t, ${this.watcherId}, now() + ${this.leaseMs} * interval '1 millisecond'
        from unnest(${pgArray(tenants)}::text[]) as t
        on conflict (tenant_id, watcher_id) do update set expires_at = excluded.expires_at
      )
      delete from tasker_tenant_watchers where expires_at < now() - interval '1 hour'`;
  }

  /** Ends this process's lease on a tenant it no longer streams. */
  async release(tenant: string): Promise<void> {
    await this
      .sql`delete from tasker_tenant_watchers where tenant_id = ${tenant} and watcher_id = ${this.watcherId}`;
  }
}
