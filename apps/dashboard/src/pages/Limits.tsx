import { useQuery } from '@tanstack/react-query';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';

type TenantLimits = RouterOutputs['getTenantLimits'];

/** A count against its limit: "3 / 10", or "3" with no limit. */
const against = (count: number, limit: number | null) =>
  limit === null ? String(count) : `${count} / ${limit}`;
const limitText = (limit: number | null) => (limit === null ? 'none' : String(limit));
/** A limit and where it comes from: set for the tenant, or the default of every tenant. */
function limitOf(limits: TenantLimits, field: keyof TenantLimits['stored']): string {
  const value = limitText(limits.effective[field]);
  if (limits.stored[field] !== null) return `${value}, set for this tenant`;
  return limits.defaults[field] !== null ? `${value}, the default` : value;
}

/**
 * The caller's tenant's limits and how many of its tasks run and wait now (an admin key reads its
 * own tenant's; an operator key any). Limits are set with `PUT /tenants/{tenant}/limits` or
 * `tasker tenants limits`; a change counts within 2 s.
 */
export function TenantLimitsCard({ tenant }: { tenant: string }) {
  const trpc = useTRPC();
  const limits = useQuery(trpc.getTenantLimits.queryOptions({ tenant }, { refetchInterval: 2000 }));
  const data = limits.data;
  return (
    <div className="card" data-testid="tenant-limits">
      <div className="title-row">
        <h2>Limits of tenant {tenant}</h2>
        {data?.updatedAt ? null : <span className="muted small">the defaults</span>}
      </div>
      {limits.isError ? <p className="error">{errorText(limits.error)}</p> : null}
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
            <span>
              starts per minute at most
              {data.stored.startsPerMinute !== null
                ? ', set for this tenant'
                : data.defaults.startsPerMinute !== null
                  ? ', the default'
                  : ''}
            </span>
          </div>
        </div>
      ) : null}
    </div>
  );
}

/** Every tenant, its limits and its running and queued tasks: an operator's view. */
export function TenantsCard() {
  const trpc = useTRPC();
  const tenants = useQuery(trpc.listTenants.queryOptions({ limit: 200 }, { refetchInterval: 5000 }));
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
