import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useSubscription } from '@trpc/tanstack-react-query';
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { TaskName } from '@tasker/server';
import type { Abilities } from '../App.tsx';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';
import { duration, time } from '../format.tsx';
import { useReadAgainWhenConnected } from '../live.ts';
import { Link } from '../router.tsx';
import { TenantLimitsCard, TenantsCard } from './Limits.tsx';

type Minutes = RouterOutputs['getThroughput']['minutes'];

/** Completed and failed per minute (bars of a line chart), and the failure rate on a second axis. */
function ThroughputChart({ minutes }: { minutes: Minutes }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | undefined>(undefined);
  const data: uPlot.AlignedData = [
    minutes.map((m) => Date.parse(m.minute) / 1000),
    minutes.map((m) => m.completed),
    minutes.map((m) => m.failed),
    minutes.map((m) => (m.completed + m.failed > 0 ? (100 * m.failed) / (m.completed + m.failed) : null)),
  ];
  const latest = useRef(data);
  latest.current = data;
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(320, el.clientWidth),
      height: 240,
      scales: { x: { time: true }, rate: { range: [0, 100] } },
      series: [
        {},
        { label: 'completed / min', stroke: '#2e7d32', fill: 'rgba(46,125,50,0.12)', width: 2 },
        { label: 'failed / min', stroke: '#c62828', fill: 'rgba(198,40,40,0.12)', width: 2 },
        { label: 'failure rate %', stroke: '#ef6c00', dash: [4, 4], scale: 'rate', width: 1.5 },
      ],
      axes: [
        {},
        { label: 'tasks / min' },
        { side: 1, scale: 'rate', label: 'failure %', grid: { show: false } },
      ],
    };
    chart.current = new uPlot(opts, latest.current, el);
    return () => {
      chart.current?.destroy();
      chart.current = undefined;
    };
  }, []);
  // Created once (above); fed on every render.
  useEffect(() => {
    chart.current?.setData(latest.current);
  });
  return <div ref={box} className="chart" data-testid="throughput-chart" />;
}

export function QueuePage({ abilities, tenant }: { abilities: Abilities; tenant: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [problem, setProblem] = useState<string>();
  const queue = useQuery(
    trpc.getQueue.queryOptions({}, { enabled: abilities.operator, refetchInterval: 2000 }),
  );
  const types = useQuery(trpc.listTaskTypes.queryOptions({}, { staleTime: 60_000 }));
  const throughput = useQuery(trpc.getThroughput.queryOptions({}, { refetchInterval: 10_000 }));
  const runningOptions = trpc.listTasks.queryOptions({ status: ['RUNNING'], limit: 50 });
  const running = useQuery(runningOptions);
  // Running tasks, live: any change of status reloads the list (at most 4 times a second).
  const reload = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(reload.current), []);
  const live = useSubscription(
    trpc.onTasksUpdate.subscriptionOptions(
      {},
      {
        onData: () => {
          if (reload.current) return;
          reload.current = setTimeout(() => {
            reload.current = undefined;
            void queryClient.invalidateQueries({ queryKey: runningOptions.queryKey });
            if (abilities.operator)
              void queryClient.invalidateQueries({ queryKey: trpc.getQueue.queryKey() });
          }, 250);
        },
      },
    ),
  );
  useReadAgainWhenConnected(live.status, [
    runningOptions.queryKey,
    ...(abilities.operator ? [trpc.getQueue.queryKey()] : []),
  ]);
  const changed = {
    onSuccess: (state: RouterOutputs['getQueue']) => {
      setProblem(undefined);
      queryClient.setQueryData(trpc.getQueue.queryKey({}), state);
    },
    onError: (error: unknown) => setProblem(errorText(error)),
  };
  const pause = useMutation(trpc.pauseQueue.mutationOptions(changed));
  const resume = useMutation(trpc.resumeQueue.mutationOptions(changed));
  const busy = pause.isPending || resume.isPending;
  const state = queue.data;
  const minutes = throughput.data?.minutes ?? [];
  const totals = minutes.reduce(
    (t, m) => ({ completed: t.completed + m.completed, failed: t.failed + m.failed }),
    {
      completed: 0,
      failed: 0,
    },
  );
  const finished = totals.completed + totals.failed;

  return (
    <section>
      <h1>Queue</h1>
      {problem ? (
        <p className="error" role="alert">
          {problem}
        </p>
      ) : null}
      {abilities.admin ? (
        <TenantLimitsCard tenant={tenant} operator={abilities.operator} />
      ) : (
        <p className="muted">Your tenant's limits and counts need a key with the admin scope.</p>
      )}
      {abilities.operator ? (
        <div className="card">
          <div className="title-row">
            <h2>Processing</h2>
            {state ? (
              <span className={`badge ${state.paused ? 'paused' : 'running'}`} data-testid="queue-paused">
                {state.paused ? 'PAUSED' : 'RUNNING'}
              </span>
            ) : null}
            {state?.paused ? (
              <button type="button" disabled={busy} onClick={() => resume.mutate({})}>
                Resume all
              </button>
            ) : (
              <button
                type="button"
                className="danger"
                disabled={busy || !state}
                onClick={() => pause.mutate({})}
              >
                Pause all
              </button>
            )}
          </div>
          {queue.isError ? <p className="error">{errorText(queue.error)}</p> : null}
          {state ? (
            <div className="stats" data-testid="queue-depths">
              <div>
                <b>{state.waiting}</b>
                <span>waiting</span>
              </div>
              <div>
                <b>{state.delayed}</b>
                <span>delayed</span>
              </div>
              <div>
                <b>{state.active}</b>
                <span>active</span>
              </div>
              <div>
                <b>{state.failed}</b>
                <span>failed (kept 24 h)</span>
              </div>
              <div title="Asleep, waiting for child tasks or for a wait token: holding no worker slot">
                <b>{state.suspended}</b>
                <span>suspended (WAITING)</span>
              </div>
            </div>
          ) : null}
          <table data-testid="task-types">
            <thead>
              <tr>
                <th>Task type</th>
                <th>Processing</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {types.data?.map((t) => {
                const paused = state?.pausedTypes.includes(t.name) ?? false;
                return (
                  <tr key={t.name} data-type={t.name}>
                    <td>{t.name}</td>
                    <td>
                      <span className={`badge ${paused ? 'paused' : 'running'}`}>
                        {paused ? 'PAUSED' : 'running'}
                      </span>
                    </td>
                    <td>
                      {paused ? (
                        <button
                          type="button"
                          disabled={busy}
                          onClick={() => resume.mutate({ task_name: t.name as TaskName })}
                        >
                          Resume
                        </button>
                      ) : (
                        <button
                          type="button"
                          className="secondary"
                          disabled={busy || !state}
                          onClick={() => pause.mutate({ task_name: t.name as TaskName })}
                        >
                          Pause
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : (
        <p className="muted">
          Queue depths and pause/resume need a key with the operator scope: the queue is shared by every
          tenant.
        </p>
      )}
      {abilities.operator ? <TenantsCard /> : null}
      <div className="card">
        <div className="title-row">
          <h2>Last hour</h2>
          <span data-testid="throughput-totals">
            {totals.completed} completed · {totals.failed} failed · failure rate{' '}
            {finished ? `${((100 * totals.failed) / finished).toFixed(1)}%` : '—'}
          </span>
        </div>
        {throughput.isError ? <p className="error">{errorText(throughput.error)}</p> : null}
        {throughput.data ? <ThroughputChart minutes={minutes} /> : <p className="muted">Loading…</p>}
      </div>
      <div className="card">
        <h2>
          Running now ({running.data?.tasks.length ?? 0}
          {running.data?.next_cursor ? '+' : ''})
        </h2>
        <table data-testid="running-tasks">
          <thead>
            <tr>
              <th>Id</th>
              <th>Type</th>
              <th>Attempt</th>
              <th>Started</th>
              <th>Running for</th>
            </tr>
          </thead>
          <tbody>
            {running.data?.tasks.map((task) => (
              <tr key={task.id} data-task-id={task.id}>
                <td className="mono">
                  <Link to={`/tasks/${task.id}`}>{task.id.slice(0, 8)}</Link>
                </td>
                <td>{task.name}</td>
                <td>
                  {task.attempts}/{task.maxAttempts}
                </td>
                <td>{time(task.startedAt)}</td>
                <td>{duration(task.startedAt, null)}</td>
              </tr>
            ))}
            {running.data && running.data.tasks.length === 0 ? (
              <tr>
                <td colSpan={5} className="muted">
                  Nothing is running.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </section>
  );
}
