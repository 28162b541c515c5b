import { useQuery } from '@tanstack/react-query';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';

type TenantLimits = RouterOutputs['getTenantLimits'];

/** A count against its limit: "3 / 10", or "3" with no limit. */
const against = (count: number, limit: number | null) =>
  limit === null ? String(count) : `${count} / ${limit}`;
const limitText = (limit: number | null) => (limit === null ? 'none' : String(limit));
/** Where a limit comes from: set for the tenant, or the default of every tenant (nothing: neither sets one). */
function sourceOf(limits: TenantLimits, field: keyof TenantLimits['stored']): string {
  if (limits.stored[field] !== null) return ', set for this tenant';
  return limits.defaults[field] !== null ? ', the default' : '';
}
/** A limit and where it comes from. */
const limitOf = (limits: TenantLimits, field: keyof TenantLimits['stored']) =>
  `${limitText(limits.effective[field])}${sourceOf(limits, field)}`;

/**
 * Every tenant with its limits and counts (an operator's): one query for both cards below, and it
 * counts the tasks of up to 200 tenants, so every 15 s only.
 */
function useTenantList(enabled: boolean) {
  const trpc = useTRPC();
  return useQuery(trpc.listTenants.queryOptions({ limit: 200 }, { enabled, refetchInterval: 15_000 }));
}

/**
 * The caller's tenant's limits and how many of its tasks run and wait now (an admin key reads its
 * own tenant's; an operator key any). Limits are set with `PUT /tenants/{tenant}/limits` or
 * `tasker tenants limits`; a change counts within 2 s. An operator's row comes with the list of
 * tenants; its own query (every 2 s) is for an admin, or a tenant the list does not hold.
 */
export function TenantLimitsCard({ tenant, operator }: { tenant: string; operator: boolean }) {
  const trpc = useTRPC();
  const list = useTenantList(operator);
  const listed = list.data?.tenants.find((t) => t.tenant === tenant);
  const own = useQuery(
    trpc.getTenantLimits.queryOptions(
      { tenant },
      { enabled: !operator || (!list.isPending && !listed), refetchInterval: 2000 },
    ),
  );
  const data = listed ?? own.data;
  return (
    <div className="card" data-testid="tenant-limits">
      <div className="title-row">
        <h2>Limits of tenant {tenant}</h2>
        {data?.updatedAt ? null : <span className="muted small">the defaults</span>}
      </div>
      {!listed && own.isError ? <p className="error">{errorText(own.error)}</p> : null}
      {data ? (
        <div className="stats">
          <div data-testid="limit-running">
            <b>{against(data.running, data.effective.maxRunning)}</b>
            <span>running (max {limitOf(data, 'maxRunning')})</span>
          </div>
          <div data-testid="limit-queued">
            <b>{against(data.queued, data.effective.maxQueued)}</b>
            <span>queued (max {limitOf(data, 'maxQueued')})</span>
          </div>
          <div data-testid="limit-starts">
            <b>{limitText(data.effective.startsPerMinute)}</b>
            <span>starts per minute at most{sourceOf(data, 'startsPerMinute')}</span>
          </div>
        </div>
      ) : null}
    </div>
  );
}

/** Every tenant, its limits and its running and queued tasks: an operator's view. */
export function TenantsCard() {
  const tenants = useTenantList(true);
  return (
    <div className="card">
      <h2>
        Tenants ({tenants.data?.tenants.length ?? 0}
        {tenants.data?.next_cursor ? '+' : ''})
      </h2>
      {tenants.isError ? <p className="error">{errorText(tenants.error)}</p> : null}
      <table data-testid="tenants">
        <thead>
          <tr>
            <th>Tenant</th>
            <th>Running / max</th>
            <th>Queued / max</th>
            <th>Starts per minute</th>
            <th>Limits</th>
          </tr>
        </thead>
        <tbody>
          {tenants.data?.tenants.map((t) => (
            <tr key={t.tenant} data-tenant={t.tenant}>
              <td>{t.tenant}</td>
              <td>{against(t.running, t.effective.maxRunning)}</td>
              <td>{against(t.queued, t.effective.maxQueued)}</td>
              <td>{limitText(t.effective.startsPerMinute)}</td>
              <td className="muted">{t.updatedAt ? 'set for this tenant' : 'the defaults'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
