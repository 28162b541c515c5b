import { useQuery } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';

type Report = RouterOutputs['getUsage'];
type Row = Report['rows'][number];

/** The ranges the page offers, in days up to today (UTC) included. */
const RANGES = [7, 30, 90] as const;
const DAY_MS = 24 * 3600_000;

/** Dollars as a person reads them: cents from a dollar up, six decimals below. */
export const dollars = (value: number) => `$${value >= 1 ? value.toFixed(2) : value.toFixed(6)}`;
const tokens = (row: Pick<Row, 'prompt_tokens' | 'completion_tokens'>) =>
  row.prompt_tokens + row.completion_tokens;

/** Prompt and completion tokens per day (stacked as two lines) and the day's cost on a second axis. */
function UsageChart({ rows }: { rows: Row[] }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | undefined>(undefined);
  const data: uPlot.AlignedData = [
    rows.map((r) => Date.parse(`${r.key}T00:00:00Z`) / 1000),
    rows.map((r) => r.prompt_tokens),
    rows.map((r) => r.completion_tokens),
    rows.map((r) => r.cost_usd),
  ];
  const latest = useRef(data);
  latest.current = data;
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(320, el.clientWidth),
      height: 260,
      scales: { x: { time: true }, usd: {} },
      series: [
        {},
        { label: 'prompt tokens', stroke: '#1565c0', fill: 'rgba(21,101,192,0.12)', width: 2 },
        { label: 'completion tokens', stroke: '#6a1b9a', fill: 'rgba(106,27,154,0.12)', width: 2 },
        {
          label: 'cost (USD)',
          stroke: '#ef6c00',
          dash: [4, 4],
          scale: 'usd',
          width: 1.5,
          value: (_u, v) => (v === null ? '—' : dollars(v)),
        },
      ],
      axes: [
        {},
        { label: 'tokens / day' },
        { side: 1, scale: 'usd', label: 'USD / day', grid: { show: false } },
      ],
    };
    chart.current = new uPlot(opts, latest.current, el);
    return () => {
      chart.current?.destroy();
      chart.current = undefined;
    };
  }, []);
  useEffect(() => {
    chart.current?.setData(latest.current);
  });
  return <div ref={box} className="chart" data-testid="usage-chart" />;
}

function GroupTable({
  title,
  group,
  days,
  testId,
}: {
  title: string;
  group: 'task_type' | 'model';
  days: number;
  testId: string;
}) {
  const trpc = useTRPC();
  const report = useQuery(trpc.getUsage.queryOptions({ group_by: group, from: fromOf(days) }));
  return (
    <div className="card">
      <h2>{title}</h2>
      {report.isError ? <p className="error">{errorText(report.error)}</p> : null}
      <table data-testid={testId}>
        <thead>
          <tr>
            <th>{group === 'model' ? 'Model' : 'Task type'}</th>
            <th>Tokens</th>
            <th>Prompt</th>
            <th>Completion</th>
            <th>Cost</th>
            <th>Calls</th>
            <th>Tasks</th>
          </tr>
        </thead>
        <tbody>
          {report.data?.rows.map((row) => (
            <tr key={row.key} data-key={row.key}>
              <td>{row.key}</td>
              <td>{tokens(row)}</td>
              <td>{row.prompt_tokens}</td>
              <td>{row.completion_tokens}</td>
              <td>{dollars(row.cost_usd)}</td>
              <td>{row.calls}</td>
              <td>{row.tasks}</td>
            </tr>
          ))}
          {report.data && report.data.rows.length === 0 ? (
            <tr>
              <td colSpan={7} className="muted">
                No model calls in this range.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}

type Budgets = NonNullable<Report['budgets']>;

/** The tenant's LLM budgets, what its calls used in their windows, and whether its LLM tasks are held now. */
function BudgetsCard({ budgets }: { budgets: Budgets }) {
  const none = budgets.llmTokensPerDay === null && budgets.llmCostPerMonthUsd === null;
  return (
    <div className="card" data-testid="usage-budgets">
      <h2>LLM budgets</h2>
      {budgets.exceeded ? (
        <p className="error" role="alert" data-testid="budget-held">
          Budget reached ({budgets.exceeded}): new tasks of LLM types are refused (429 BUDGET_EXCEEDED), and
          the queued ones are held, not failed, until {budgets.heldUntil ?? 'the window turns'} (UTC) or until
          the budget is raised.
        </p>
      ) : null}
      {none ? (
        <p className="muted">
          No budget is set for this tenant (PUT /tenants/&#123;tenant&#125;/limits sets them).
        </p>
      ) : (
        <div className="stats">
          <div data-testid="budget-tokens">
            <b>
              {budgets.tokensToday} / {budgets.llmTokensPerDay ?? '∞'}
            </b>
            <span>tokens today (UTC)</span>
          </div>
          <div data-testid="budget-cost">
            <b>
              {dollars(budgets.costThisMonthUsd)} /{' '}
              {budgets.llmCostPerMonthUsd === null ? '∞' : dollars(budgets.llmCostPerMonthUsd)}
            </b>
            <span>cost this month (UTC)</span>
          </div>
        </div>
      )}
    </div>
  );
}

/** The first day of a range of `days` days ending today (UTC), as the API takes it. */
const fromOf = (days: number) => new Date(Date.now() - (days - 1) * DAY_MS).toISOString().slice(0, 10);

/** The tenant's model usage: tokens and cost per day (a chart), and by task type and model. */
export function UsagePage() {
  const trpc = useTRPC();
  const [days, setDays] = useState<number>(30);
  const daily = useQuery(
    trpc.getUsage.queryOptions({ group_by: 'day', from: fromOf(days) }, { refetchInterval: 30_000 }),
  );
  const total = daily.data?.total;
  return (
    <section>
      <h1>Usage</h1>
      <div className="card">
        <div className="title-row">
          <h2>Model calls per day (UTC)</h2>
          <span>
            {RANGES.map((n) => (
              <button
                key={n}
                type="button"
                className={n === days ? '' : 'secondary'}
                aria-pressed={n === days}
                onClick={() => setDays(n)}
              >
                {n} days
              </button>
            ))}
          </span>
        </div>
        {daily.isError ? <p className="error">{errorText(daily.error)}</p> : null}
        {total ? (
          <div className="stats" data-testid="usage-totals">
            <div>
              <b>{tokens(total)}</b>
              <span>tokens</span>
            </div>
            <div>
              <b>{dollars(total.cost_usd)}</b>
              <span>cost</span>
            </div>
            <div>
              <b>{total.calls}</b>
              <span>calls</span>
            </div>
            <div>
              <b>{total.tasks}</b>
              <span>tasks</span>
            </div>
          </div>
        ) : null}
        {daily.data ? <UsageChart rows={daily.data.rows} /> : <p className="muted">Loading…</p>}
      </div>
      {daily.data?.budgets ? <BudgetsCard budgets={daily.data.budgets} /> : null}
      <GroupTable title="By task type" group="task_type" days={days} testId="usage-by-type" />
      <GroupTable title="By model" group="model" days={days} testId="usage-by-model" />
    </section>
  );
}
