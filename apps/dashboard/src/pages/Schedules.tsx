import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { TaskName } from '@tasker/server';
import { type FormEvent, useState } from 'react';
import type { Abilities } from '../App.tsx';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';
import { Link } from '../router.tsx';

type Schedule = RouterOutputs['listSchedules']['schedules'][number];
type CatchUp = Schedule['catchUp'];

/** An ISO time as the tables show it: `2026-01-02 03:04:05Z`. */
const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '–');

/**
 * The tenant's schedules (tasks:read), with a form to create one and pause, resume and delete
 * buttons (tasks:write). A schedule's row opens its next fire times and its latest runs.
 */
export function SchedulesPage({ abilities }: { abilities: Abilities }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const list = useQuery(trpc.listSchedules.queryOptions({ limit: 200 }, { refetchInterval: 5000 }));
  const [open, setOpen] = useState<string | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.listSchedules.queryKey() });
  const update = useMutation(trpc.updateSchedule.mutationOptions({ onSuccess: refresh }));
  const remove = useMutation(trpc.deleteSchedule.mutationOptions({ onSuccess: refresh }));
  const failure = update.error ?? remove.error;

  return (
    <section>
      {abilities.write ? <NewScheduleForm onCreated={refresh} /> : null}
      <div className="card" data-testid="schedules">
        <h2>Schedules ({list.data?.schedules.length ?? 0})</h2>
        {list.isError ? <p className="error">{errorText(list.error)}</p> : null}
        {failure ? <p className="error">{errorText(failure)}</p> : null}
        {list.data && list.data.schedules.length === 0 ? <p className="muted">No schedules yet.</p> : null}
        {list.data && list.data.schedules.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th>Key</th>
                <th>Task</th>
                <th>Cron</th>
                <th>Time zone</th>
                <th>Next fire</th>
                <th>Last fire</th>
                <th>Skipped</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.schedules.map((s) => (
                <ScheduleRow
                  key={s.id}
                  schedule={s}
                  open={open === s.id}
                  onToggle={() => setOpen(open === s.id ? null : s.id)}
                  write={abilities.write}
                  onPause={(paused) => update.mutate({ id: s.id, paused })}
                  onDelete={() => {
                    // Its detail stops asking for it first (a deleted schedule is a 404).
                    if (open === s.id) setOpen(null);
                    remove.mutate({ id: s.id });
                  }}
                />
              ))}
            </tbody>
          </table>
        ) : null}
      </div>
    </section>
  );
}

function ScheduleRow(props: {
  schedule: Schedule;
  open: boolean;
  onToggle: () => void;
  write: boolean;
  onPause: (paused: boolean) => void;
  onDelete: () => void;
}) {
  const s = props.schedule;
  return (
    <>
      <tr data-schedule={s.key ?? s.id} className={s.paused ? 'muted' : ''}>
        <td>
          <button type="button" className="link" onClick={props.onToggle} title="Next fires and latest runs">
            {s.key ?? s.id.slice(0, 8)}
          </button>
        </td>
        <td>{s.name}</td>
        <td className="mono">{s.cron}</td>
        <td>{s.timezone}</td>
        <td className="mono">{s.paused ? 'paused' : when(s.nextFireAt)}</td>
        <td className="mono">{when(s.lastFireAt)}</td>
        <td title={s.lastSkipReason ?? ''}>{s.skippedRuns}</td>
        <td>
          {props.write ? (
            <>
              <button type="button" onClick={() => props.onPause(!s.paused)}>
                {s.paused ? 'Resume' : 'Pause'}
              </button>{' '}
              <button type="button" onClick={props.onDelete}>
                Delete
              </button>
            </>
          ) : null}
        </td>
      </tr>
      {props.open ? (
        <tr>
          <td colSpan={8}>
            <ScheduleDetail id={s.id} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

function ScheduleDetail({ id }: { id: string }) {
  const trpc = useTRPC();
  const detail = useQuery(trpc.getSchedule.queryOptions({ id }, { refetchInterval: 2000 }));
  if (detail.isError) return <p className="error">{errorText(detail.error)}</p>;
  if (!detail.data) return <p className="muted">Loading…</p>;
  const d = detail.data;
  return (
    <div className="stats" data-testid="schedule-detail">
      <div>
        <b>Next fires</b>
        <ul>
          {d.nextFires.map((at) => (
            <li key={at} className="mono">
              {when(at)}
            </li>
          ))}
        </ul>
      </div>
      <div>
        <b>Latest runs</b>
        {d.runs.length === 0 ? <p className="muted">None yet.</p> : null}
        <ul>
          {d.runs.map((r) => (
            <li key={r.id} data-run-status={r.status}>
              <Link to={`/tasks/${r.id}`}>{when(r.scheduledFor)}</Link> {r.status}
            </li>
          ))}
        </ul>
      </div>
      <div>
        <b>Input</b>
        <pre className="mono">{JSON.stringify(d.input, null, 2)}</pre>
        <span className="muted small">catch up: {d.catchUp}</span>
      </div>
    </div>
  );
}

function NewScheduleForm({ onCreated }: { onCreated: () => void }) {
  const trpc = useTRPC();
  const types = useQuery(trpc.listTaskTypes.queryOptions({}));
  const [name, setName] = useState('');
  const [input, setInput] = useState('{}');
  const [cron, setCron] = useState('0 * * * *');
  const [timezone, setTimezone] = useState(() => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  const [key, setKey] = useState('');
  const [catchUp, setCatchUp] = useState<CatchUp>('latest');
  const [problem, setProblem] = useState<string | null>(null);
  const create = useMutation(
    trpc.createSchedule.mutationOptions({
      onSuccess: () => {
        setProblem(null);
        onCreated();
      },
      onError: (error) => setProblem(errorText(error)),
    }),
  );
  const type = name || types.data?.[0]?.name || '';
  const submit = (event: FormEvent) => {
    event.preventDefault();
    let parameters: unknown;
    try {
      parameters = JSON.parse(input);
    } catch {
      setProblem('input: not JSON');
      return;
    }
    if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
      setProblem('input: a JSON object, e.g. {"a": 1}');
      return;
    }
    create.mutate({
      name: type as TaskName,
      input: parameters as Record<string, unknown>,
      cron,
      timezone,
      catch_up: catchUp,
      ...(key.trim() ? { key: key.trim() } : {}),
    });
  };
  return (
    <form className="card" onSubmit={submit} data-testid="new-schedule">
      <h2>New schedule</h2>
      <div className="fields">
        <label>
          Task
          <select value={type} onChange={(e) => setName(e.target.value)}>
            {types.data?.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Input (JSON)
          <input value={input} onChange={(e) => setInput(e.target.value)} className="mono" />
        </label>
        <label>
          Cron
          <input
            value={cron}
            onChange={(e) => setCron(e.target.value)}
            className="mono"
            title="5 fields (minute hour day month weekday), or 6 with seconds first"
          />
        </label>
        <label>
          Time zone
          <input value={timezone} onChange={(e) => setTimezone(e.target.value)} />
        </label>
        <label>
          Key (optional)
          <input value={key} onChange={(e) => setKey(e.target.value)} placeholder="e.g. nightly-report" />
        </label>
        <label>
          Missed ticks
          <select value={catchUp} onChange={(e) => setCatchUp(e.target.value as CatchUp)}>
            <option value="none">none</option>
            <option value="latest">latest</option>
            <option value="all">all</option>
          </select>
        </label>
      </div>
      <button type="submit" disabled={create.isPending || !type}>
        Create
      </button>
      {problem ? (
        <p className="error" role="alert">
          {problem}
        </p>
      ) : null}
    </form>
  );
}
