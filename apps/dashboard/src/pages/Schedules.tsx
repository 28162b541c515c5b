import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { TaskName } from '@tasker/server';
import { type FormEvent, useState } from 'react';
import type { Abilities } from '../App.tsx';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';
import { Link } from '../router.tsx';

type Schedule = RouterOutputs['listSchedules']['schedules'][number];
type CatchUp = Schedule['catchUp'];

/** The input field's text as a JSON object, or what is wrong with it. */
function inputObject(text: string): { value: Record<string, unknown> } | { problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { problem: 'input: not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { problem: 'input: a JSON object, e.g. {"a": 1}' };
  return { value: parsed as Record<string, unknown> };
}

/** An ISO time as the tables show it: `2026-01-02 03:04:05Z`. */
const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '–');

/**
 * The tenant's schedules (tasks:read), with a form to create one and pause, resume and delete
 * buttons (tasks:write). A schedule's row opens its next fire times and its latest runs, and (with
 * tasks:write) a form to change its cron, zone, input and catch up.
 */
export function SchedulesPage({ abilities }: { abilities: Abilities }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const list = useQuery(trpc.listSchedules.queryOptions({ limit: 200 }, { refetchInterval: 5000 }));
  const [open, setOpen] = useState<string | null>(null);
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: trpc.listSchedules.queryKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.getSchedule.queryKey() });
  };
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
                  onChanged={refresh}
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
  onChanged: () => void;
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
            <ScheduleDetail id={s.id} write={props.write} onChanged={props.onChanged} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

function ScheduleDetail({ id, write, onChanged }: { id: string; write: boolean; onChanged: () => void }) {
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
      {write ? <ChangeScheduleForm schedule={d} onChanged={onChanged} /> : null}
    </div>
  );
}

/** PATCH /schedules/{id}: the fields changed are sent (a new cron or zone starts from now). */
function ChangeScheduleForm({ schedule, onChanged }: { schedule: Schedule; onChanged: () => void }) {
  const trpc = useTRPC();
  const [cron, setCron] = useState(schedule.cron);
  const [timezone, setTimezone] = useState(schedule.timezone);
  const [input, setInput] = useState(() => JSON.stringify(schedule.input));
  const [catchUp, setCatchUp] = useState<CatchUp>(schedule.catchUp);
  const [problem, setProblem] = useState<string | null>(null);
  const change = useMutation(
    trpc.updateSchedule.mutationOptions({
      onSuccess: () => {
        setProblem(null);
        onChanged();
      },
      onError: (error) => setProblem(errorText(error)),
    }),
  );
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const parsed = inputObject(input);
    if ('problem' in parsed) return setProblem(parsed.problem);
    change.mutate({
      id: schedule.id,
      ...(cron !== schedule.cron ? { cron } : {}),
      ...(timezone !== schedule.timezone ? { timezone } : {}),
      ...(JSON.stringify(parsed.value) !== JSON.stringify(schedule.input) ? { input: parsed.value } : {}),
      ...(catchUp !== schedule.catchUp ? { catch_up: catchUp } : {}),
    });
  };
  return (
    <form onSubmit={submit} data-testid="change-schedule">
      <b>Change</b>
      <ScheduleFields {...{ input, setInput, cron, setCron, timezone, setTimezone, catchUp, setCatchUp }} />
      <button type="submit" disabled={change.isPending}>
        Save
      </button>
      {problem ? (
        <p className="error" role="alert">
          {problem}
        </p>
      ) : null}
    </form>
  );
}

/** What a new schedule and a schedule's change both set: its input, when it fires, and what a missed tick does. */
function ScheduleFields(p: {
  input: string;
  setInput: (value: string) => void;
  cron: string;
  setCron: (value: string) => void;
  timezone: string;
  setTimezone: (value: string) => void;
  catchUp: CatchUp;
  setCatchUp: (value: CatchUp) => void;
}) {
  return (
    <>
      <label>
        Input (JSON)
        <input value={p.input} onChange={(e) => p.setInput(e.target.value)} className="mono" />
      </label>
      <label>
        Cron
        <input
          value={p.cron}
          onChange={(e) => p.setCron(e.target.value)}
          className="mono"
          title="5 fields (minute hour day month weekday), or 6 with seconds first"
        />
      </label>
      <label>
        Time zone
        <input value={p.timezone} onChange={(e) => p.setTimezone(e.target.value)} />
      </label>
      <label>
        Missed ticks
        <select value={p.catchUp} onChange={(e) => p.setCatchUp(e.target.value as CatchUp)}>
          <option value="none">none</option>
          <option value="latest">latest</option>
          <option value="all">all</option>
        </select>
      </label>
    </>
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
    const parsed = inputObject(input);
    if ('problem' in parsed) return setProblem(parsed.problem);
    create.mutate({
      name: type as TaskName,
      input: parsed.value,
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
        <ScheduleFields {...{ input, setInput, cron, setCron, timezone, setTimezone, catchUp, setCatchUp }} />
        <label>
          Key (optional)
          <input value={key} onChange={(e) => setKey(e.target.value)} placeholder="e.g. nightly-report" />
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
