import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { STATUS_DESCRIPTIONS } from '@tasker/states';
import { useSubscription } from '@trpc/tanstack-react-query';
import { type FormEvent, useEffect, useMemo, useRef, useState } from 'react';
import type { Abilities } from '../App.tsx';
import { TaskActions } from '../actions.tsx';
import {
  errorText,
  type RouterInputs,
  type RouterOutputs,
  STATUSES,
  type TaskEvent,
  type TaskStatus,
  useTRPC,
} from '../api.ts';
import { BulkActions, type BulkFilter } from '../bulk.tsx';
import { clip, duration, StatusBadge, time } from '../format.tsx';
import { HeardEvents, useReadAgainWhenConnected } from '../live.ts';
import { Link, navigate } from '../router.tsx';

type ListInput = RouterInputs['listTasks'];

type Row = RouterOutputs['listTasks']['tasks'][number];

/**
 * A live change applied to a list row: its state and times. The row keeps its previews (a list row
 * carries bounded previews of the payloads, the event the whole output): the table shows the input's.
 */
const applyEvent = (row: Row, event: TaskEvent): Row => ({
  ...row,
  status: event.status,
  version: event.version,
  attempts: event.attempts,
  maxAttempts: event.maxAttempts,
  priority: event.priority,
  concurrencyKey: event.concurrencyKey,
  tags: event.tags,
  metadata: event.metadata,
  runAfter: event.runAfter,
  cancelRequestedAt: event.cancelRequestedAt,
  startedAt: event.startedAt,
  finishedAt: event.finishedAt,
  updatedAt: event.updatedAt,
});

/**
 * Payload search (JSONB containment): `input_contains` / `output_contains`, JSON text. Sent as they
 * are; a server without them ignores them.
 */
type PayloadSearch = { input_contains?: string; output_contains?: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_SIZES = [10, 20, 50, 100];

interface Filters {
  statuses: TaskStatus[];
  name: string;
  createdAfter: string;
  createdBefore: string;
  payloadField: 'input' | 'output';
  payload: string;
  /** Tags, comma-separated: the tasks carrying every one. */
  tags: string;
  /** A JSON object: the tasks whose metadata contains it. */
  metadata: string;
}

/** The tags of the filter: comma-separated, blanks dropped. */
const tagList = (text: string) =>
  text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');

const EMPTY: Filters = {
  statuses: [],
  name: '',
  createdAfter: '',
  createdBefore: '',
  payloadField: 'input',
  payload: '',
  tags: '',
  metadata: '',
};

/** A datetime-local value (the browser's time zone) as ISO 8601 with an offset. */
const isoFrom = (local: string) => (local ? new Date(local).toISOString() : undefined);

export function TasksPage({ abilities }: { abilities: Abilities }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const types = useQuery(trpc.listTaskTypes.queryOptions({}, { staleTime: 60_000 }));
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [limit, setLimit] = useState(20);
  /** The cursors of the pages before this one: [undefined] on the first page. */
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors.at(-1);
  const [idSearch, setIdSearch] = useState('');
  const [problem, setProblem] = useState<string>();

  const input = useMemo(() => {
    const base: ListInput = {
      status: filters.statuses.length ? filters.statuses : undefined,
      name: filters.name ? [filters.name] : undefined,
      created_after: isoFrom(filters.createdAfter),
      created_before: isoFrom(filters.createdBefore),
      tag: tagList(filters.tags).length ? tagList(filters.tags) : undefined,
      metadata_contains: filters.metadata.trim() || undefined,
      limit,
      cursor,
    };
    const search: PayloadSearch = filters.payload.trim()
      ? { [`${filters.payloadField}_contains`]: filters.payload.trim() }
      : {};
    const withSearch: ListInput & PayloadSearch = { ...base, ...search };
    return withSearch;
  }, [filters, limit, cursor]);

  // The table's filters, for the bulk actions (the same filter, without the page).
  const bulkFilter = useMemo((): BulkFilter => {
    const { limit: _limit, cursor: _cursor, ...filter } = input;
    return filter;
  }, [input]);

  const listOptions = trpc.listTasks.queryOptions(input, { placeholderData: keepPreviousData });
  const list = useQuery(listOptions);

  // Live: rows on this page change in place; a new task that fits the filters reloads the first page.
  const reload = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(reload.current), []);
  // The newest event heard of each task: laid over the page as it is read (`newest`), so that a page
  // read before a change committed and answered after its event (the refetch a cancel's or retry's
  // success starts) does not take the row back to the older version, with no later event to fix it.
  const heard = useRef(new HeardEvents<TaskEvent>());
  const onEvent = (event: TaskEvent) => {
    heard.current.add(event);
    let present = false;
    queryClient.setQueryData(listOptions.queryKey, (page: RouterOutputs['listTasks'] | undefined) => {
      if (!page) return page;
      const tasks = page.tasks.map((task) => {
        if (task.id !== event.id || task.version >= event.version) {
          if (task.id === event.id) present = true;
          return task;
        }
        present = true;
        return applyEvent(task, event);
      });
      return { ...page, tasks };
    });
    // (The metadata filter is left to the server: a new task reloads the page, which applies it.)
    const fits =
      (!filters.statuses.length || filters.statuses.includes(event.status)) &&
      (!filters.name || filters.name === event.name) &&
      tagList(filters.tags).every((tag) => event.tags.includes(tag));
    if (!present && cursor === undefined && fits && !reload.current) {
      reload.current = setTimeout(() => {
        reload.current = undefined;
        void queryClient.invalidateQueries({ queryKey: listOptions.queryKey });
      }, 250);
    }
  };
  const live = useSubscription(
    trpc.onTasksUpdate.subscriptionOptions(filters.name ? { names: [filters.name] } : {}, {
      onData: onEvent,
    }),
  );

  useReadAgainWhenConnected(live.status, [listOptions.queryKey]);

  const apply = (event: FormEvent) => {
    event.preventDefault();
    if (draft.payload.trim()) {
      try {
        JSON.parse(draft.payload);
      } catch {
        setProblem('The payload search must be JSON, e.g. {"a": 5} or {"prompt": "joke"}');
        return;
      }
    }
    if (draft.metadata.trim()) {
      let metadata: unknown;
      try {
        metadata = JSON.parse(draft.metadata);
      } catch {
        metadata = undefined;
      }
      if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
        setProblem('The metadata search must be a JSON object, e.g. {"team": "billing"}');
        return;
      }
    }
    setProblem(undefined);
    setFilters(draft);
    setCursors([undefined]);
  };
  const clear = () => {
    setDraft(EMPTY);
    setFilters(EMPTY);
    setCursors([undefined]);
    setProblem(undefined);
  };
  const findId = (event: FormEvent) => {
    event.preventDefault();
    const id = idSearch.trim();
    if (!UUID.test(id)) {
      setProblem('A task id is a UUID, e.g. 2b4d2c0e-53a8-4c8f-9a39-0f7f3c1b2d9e');
      return;
    }
    setProblem(undefined);
    navigate(`/tasks/${id.toLowerCase()}`);
  };
  const toggleStatus = (status: TaskStatus) =>
    setDraft((d) => ({
      ...d,
      statuses: d.statuses.includes(status)
        ? d.statuses.filter((s) => s !== status)
        : [...d.statuses, status],
    }));

  const page = list.data && { ...list.data, tasks: heard.current.newest(list.data.tasks, applyEvent) };
  return (
    <section>
      <div className="title-row">
        <h1>Tasks</h1>
        <span className={`live ${live.status}`} data-testid="live-status" title="The live feed (SSE)">
          {live.status === 'pending' ? '● live' : live.status === 'error' ? '● disconnected' : '○ connecting'}
        </span>
        <form className="inline" onSubmit={findId}>
          <input
            aria-label="Task id"
            placeholder="Find a task by id"
            value={idSearch}
            onChange={(e) => setIdSearch(e.target.value)}
            size={38}
          />
          <button type="submit">Open</button>
        </form>
      </div>
      <form className="filters card" onSubmit={apply} aria-label="Filters">
        <fieldset>
          <legend>Status</legend>
          {STATUSES.map((status) => (
            <label key={status} className="check" title={STATUS_DESCRIPTIONS[status]}>
              <input
                type="checkbox"
                name="status"
                value={status}
                checked={draft.statuses.includes(status)}
                onChange={() => toggleStatus(status)}
              />
              {status}
            </label>
          ))}
        </fieldset>
        <label>
          Type
          <select
            aria-label="Task type"
            value={draft.name}
            onChange={(e) => setDraft({ ...draft, name: e.target.value })}
          >
            <option value="">any</option>
            {types.data?.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Created after
          <input
            type="datetime-local"
            step="1"
            aria-label="Created after"
            value={draft.createdAfter}
            onChange={(e) => setDraft({ ...draft, createdAfter: e.target.value })}
          />
        </label>
        <label>
          Created before
          <input
            type="datetime-local"
            step="1"
            aria-label="Created before"
            value={draft.createdBefore}
            onChange={(e) => setDraft({ ...draft, createdBefore: e.target.value })}
          />
        </label>
        <label className="grow">
          Payload contains (JSON)
          <span className="inline">
            <select
              aria-label="Payload field"
              value={draft.payloadField}
              onChange={(e) =>
                setDraft({ ...draft, payloadField: e.target.value as Filters['payloadField'] })
              }
            >
              <option value="input">input</option>
              <option value="output">output</option>
            </select>
            <input
              aria-label="Payload search"
              placeholder='{"a": 5}'
              value={draft.payload}
              onChange={(e) => setDraft({ ...draft, payload: e.target.value })}
            />
          </span>
        </label>
        <label>
          Tags
          <input
            aria-label="Tags"
            placeholder="nightly, billing"
            value={draft.tags}
            onChange={(e) => setDraft({ ...draft, tags: e.target.value })}
          />
        </label>
        <label>
          Metadata contains (JSON)
          <input
            aria-label="Metadata search"
            placeholder='{"team": "billing"}'
            value={draft.metadata}
            onChange={(e) => setDraft({ ...draft, metadata: e.target.value })}
          />
        </label>
        <span className="buttons">
          <button type="submit">Apply</button>
          <button type="button" className="secondary" onClick={clear}>
            Clear
          </button>
        </span>
      </form>
      <BulkActions filter={bulkFilter} write={abilities.write} />
      {problem ? (
        <p className="error" role="alert">
          {problem}
        </p>
      ) : null}
      {list.isError ? (
        <p className="error" role="alert">
          {errorText(list.error)}
        </p>
      ) : null}
      <table className="tasks" data-testid="task-table">
        <thead>
          <tr>
            <th>Id</th>
            <th>Type</th>
            <th>Input</th>
            <th>Status</th>
            <th>Attempts</th>
            <th title="The concurrency key: its tasks share its concurrency limits (the tenant's when none was given)">
              Key
            </th>
            <th>Tags</th>
            <th>Metadata</th>
            <th>Created</th>
            <th>Duration</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {page?.tasks.map((task) => (
            <tr key={task.id} data-task-id={task.id}>
              <td className="mono">
                <Link to={`/tasks/${task.id}`}>{task.id.slice(0, 8)}</Link>
              </td>
              <td>{task.name}</td>
              <td className="mono small" title={task.inputPreview.json}>
                {clip(task.inputPreview.json, 60, task.inputPreview.truncated)}
              </td>
              <td>
                <StatusBadge status={task.status} cancelling={Boolean(task.cancelRequestedAt)} />
              </td>
              <td>
                {task.attempts}/{task.maxAttempts}
              </td>
              <td className="mono small" data-testid="concurrency-key" title={task.concurrencyKey}>
                {clip(task.concurrencyKey, 24)}
              </td>
              <td className="small" data-testid="tags">
                {task.tags.join(', ')}
              </td>
              <td
                className="mono small"
                data-testid="metadata"
                title={task.metadata ? JSON.stringify(task.metadata) : undefined}
              >
                {task.metadata ? clip(JSON.stringify(task.metadata), 40) : ''}
              </td>
              <td>{time(task.createdAt)}</td>
              <td>{duration(task.startedAt, task.finishedAt)}</td>
              <td>
                <TaskActions task={task} write={abilities.write} />
              </td>
            </tr>
          ))}
          {page && page.tasks.length === 0 ? (
            <tr>
              <td colSpan={11} className="muted">
                No tasks match.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      <div className="pager">
        <button
          type="button"
          disabled={cursors.length <= 1}
          onClick={() => setCursors((c) => (c.length > 1 ? c.slice(0, -1) : c))}
        >
          ← Newer
        </button>
        <span className="muted" data-testid="page-number">
          page {cursors.length}
        </span>
        <button
          type="button"
          disabled={!page?.next_cursor}
          onClick={() => {
            const next = page?.next_cursor;
            if (next) setCursors((c) => [...c, next]);
          }}
        >
          Older →
        </button>
        <label className="inline">
          per page
          <select
            aria-label="Page size"
            value={limit}
            onChange={(e) => {
              setLimit(Number(e.target.value));
              setCursors([undefined]);
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </div>
    </section>
  );
}
