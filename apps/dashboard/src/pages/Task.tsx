import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useSubscription } from '@trpc/tanstack-react-query';
import { type ReactNode, useEffect, useState } from 'react';
import type { Abilities } from '../App.tsx';
import { TaskActions } from '../actions.tsx';
import { errorText, type Task, type TaskEvent, useTRPC } from '../api.ts';
import { asProgress, duration, json, StatusBadge, time } from '../format.tsx';
import { Link } from '../router.tsx';

interface Step {
  at: string | null;
  label: string;
  detail?: string;
  kind: 'created' | 'attempt' | 'failed' | 'finished' | 'waiting';
}

/** created → each attempt (its error, if it failed) → finished (or what it waits for now). */
function timeline(task: TaskEvent): Step[] {
  const steps: Step[] = [{ at: task.createdAt, label: 'Created', kind: 'created' }];
  if (task.runAfter && Date.parse(task.runAfter) > Date.parse(task.createdAt) && task.attempts === 0) {
    steps.push({ at: task.runAfter, label: 'Not before', kind: 'waiting' });
  }
  const errors = new Map(task.attemptErrors.map((e, i) => [e.attempt ?? i + 1, e]));
  for (let attempt = 1; attempt <= task.attempts; attempt++) {
    const error = errors.get(attempt);
    const current = attempt === task.attempts;
    steps.push({
      at: current ? task.startedAt : null,
      label: `Attempt ${attempt} of ${task.maxAttempts} started`,
      kind: 'attempt',
    });
    if (error) {
      steps.push({
        at: error.at ?? null,
        label: `Attempt ${attempt} failed (${error.code})`,
        detail: error.message,
        kind: 'failed',
      });
    }
  }
  if (task.cancelRequestedAt)
    steps.push({ at: task.cancelRequestedAt, label: 'Cancel requested', kind: 'waiting' });
  if (task.finishedAt) {
    steps.push({
      at: task.finishedAt,
      label: `Finished ${task.status}`,
      detail: task.error && task.status !== 'COMPLETED' ? task.error.message : undefined,
      kind: task.status === 'COMPLETED' ? 'finished' : 'failed',
    });
  } else if (task.status === 'PENDING') {
    steps.push({ at: null, label: task.attempts > 0 ? 'Waiting for a retry' : 'Queued', kind: 'waiting' });
  } else if (task.status === 'RUNNING') {
    steps.push({ at: null, label: 'Running…', kind: 'waiting' });
  } else if (task.status === 'WAITING') {
    if (task.waitingFor?.kind === 'children')
      steps.push({ at: null, label: 'Waiting for its child tasks', kind: 'waiting' });
    else if (task.waitingFor?.kind === 'token')
      steps.push({ at: task.waitingFor.until ?? null, label: 'Waiting for a token until', kind: 'waiting' });
    else steps.push({ at: task.waitingFor?.until ?? null, label: 'Sleeping until', kind: 'waiting' });
  }
  return steps;
}

const dollars = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 });

/** US dollars as the usage card shows them: 3 significant digits, never an exponent ($0.000012). */
function usd(value: number | null): string {
  return value === null ? 'unknown (no price for the model)' : `$${dollars.format(value)}`;
}

/** What the task's model calls used (`ctx.llm`): the sum over its attempts, then each attempt's. */
function UsageCard({ usage }: { usage: NonNullable<TaskEvent['usage']> }) {
  return (
    <div className="card" data-testid="task-usage">
      <h2>Model usage</h2>
      <p>
        <span data-testid="usage-tokens">
          {usage.promptTokens} prompt + {usage.completionTokens} completion tokens
        </span>{' '}
        in {usage.calls} {usage.calls === 1 ? 'call' : 'calls'} (latest:{' '}
        <span className="mono">{usage.model}</span>
        ), cost <span data-testid="usage-cost">{usd(usage.costUsd)}</span>
      </p>
      {usage.attempts.length > 1 ? (
        <table>
          <thead>
            <tr>
              <th>Attempt</th>
              <th>Model</th>
              <th>Prompt tokens</th>
              <th>Completion tokens</th>
              <th>Cost</th>
            </tr>
          </thead>
          <tbody>
            {usage.attempts.map((a, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: the list only grows at its end (attempt numbers repeat after a retry by hand)
              <tr key={i}>
                <td>{a.attempt}</td>
                <td className="mono">{a.model}</td>
                <td>{a.promptTokens}</td>
                <td>{a.completionTokens}</td>
                <td>{usd(a.costUsd)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

/** One fact of the task page: its term (`title`: its meaning on hover) and its value. */
function Fact({
  term,
  title,
  mono,
  testId,
  children,
}: {
  term: string;
  title?: string;
  mono?: boolean;
  testId?: string;
  children: ReactNode;
}) {
  return (
    <>
      <dt title={title}>{term}</dt>
      <dd className={mono ? 'mono' : undefined} data-testid={testId}>
        {children}
      </dd>
    </>
  );
}

export function TaskPage({ id, abilities }: { id: string; abilities: Abilities }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const taskOptions = trpc.getTask.queryOptions({ id });
  const task = useQuery(taskOptions);
  const [latest, setLatest] = useState<TaskEvent>();
  // Its durable steps as the stream writes them, by step id (a later event replaces the earlier).
  const [liveSteps, setLiveSteps] = useState<ReadonlyMap<string, TaskStep & { taskId: string }>>(new Map());
  const [, tick] = useState(0);

  // Every change of this task and of its steps, as it happens (its reply grows here while an LLM
  // streams it).
  const live = useSubscription(
    trpc.onTaskActivity.subscriptionOptions(
      { id },
      {
        enabled: task.isSuccess,
        onData: (tracked) => {
          const event = tracked.data;
          if (event.type === 'step') {
            const { step } = event;
            setLiveSteps((prev) => new Map(prev).set(step.id, step));
            return;
          }
          const state = event.task;
          setLatest((prev) => (prev && prev.version >= state.version ? prev : state));
        },
      },
    ),
  );

  const base = task.data;
  const merged =
    base && latest && latest.id === base.id && latest.version > base.version ? { ...base, ...latest } : base;
  const view = merged && { ...merged, steps: withLiveSteps(merged.id, merged.steps, liveSteps) };
  // A running task's duration moves on its own.
  const running = view?.status === 'RUNNING';
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [running]);

  if (task.isPending) return <p className="muted">Loading…</p>;
  if (task.isError) {
    return (
      <section>
        <p>
          <Link to="/">← Tasks</Link>
        </p>
        <p className="error" role="alert">
          {errorText(task.error)}
        </p>
      </section>
    );
  }
  if (!view) return null;
  const progress = asProgress(view.progress);
  return (
    <section data-testid="task-detail">
      <p>
        <Link to="/">← Tasks</Link>
      </p>
      <div className="title-row">
        <h1>
          {view.name} <span className="mono small">{view.id}</span>
        </h1>
        <StatusBadge status={view.status} cancelling={Boolean(view.cancelRequestedAt)} />
        <span className={`live ${live.status}`} title="The live feed (SSE)">
          {view.finishedAt ? '' : live.status === 'pending' ? '● live' : '○ connecting'}
        </span>
        <TaskActions
          task={view}
          write={abilities.write}
          onChanged={(changed) => {
            // A retried task is followed again from its new state (the stream ended with the old one).
            queryClient.setQueryData(taskOptions.queryKey, changed);
            setLatest(undefined);
            live.reset();
          }}
        />
      </div>
      <dl className="facts">
        <Fact term="Attempts">
          {view.attempts} of {view.maxAttempts}
        </Fact>
        <Fact term="Priority">{view.priority}</Fact>
        <Fact
          term="Concurrency key"
          title="Its tasks share its concurrency limits (the tenant's when none was given)"
          mono
          testId="concurrency-key"
        >
          {view.concurrencyKey}
        </Fact>
        {view.singletonKey ? (
          <Fact
            term="Singleton key"
            title="While this task is unfinished, a submission with this key returns it"
            mono
            testId="singleton-key"
          >
            {view.singletonKey}
          </Fact>
        ) : null}
        {view.debounceKey ? (
          <Fact
            term="Debounce key"
            title="While this task is PENDING, a submission with this key joins it: its input and start"
            mono
            testId="debounce-key"
          >
            {view.debounceKey}
          </Fact>
        ) : null}
        {view.expiresAt ? (
          <Fact term="Expires" title="Not started by then, it ends EXPIRED (ttl_ms)">
            {time(view.expiresAt)}
          </Fact>
        ) : null}
        {view.tags.length > 0 ? (
          <Fact term="Tags" title="Labels to find the task by (GET /tasks?tag=…)" testId="task-tags">
            {view.tags.join(', ')}
          </Fact>
        ) : null}
        {view.metadata ? (
          <Fact term="Metadata" title="The JSON object it was submitted with" mono testId="task-metadata">
            {JSON.stringify(view.metadata)}
          </Fact>
        ) : null}
        {view.webhookUrl ? (
          <Fact
            term="Webhook"
            title="Its final state is POSTed here when it finishes (webhook_url)"
            mono
            testId="task-webhook-url"
          >
            {view.webhookUrl}
          </Fact>
        ) : null}
        <Fact term="Created">{time(view.createdAt)}</Fact>
        <Fact term="Started">{time(view.startedAt)}</Fact>
        <Fact term="Finished">{time(view.finishedAt)}</Fact>
        <Fact term="Ran for">{duration(view.startedAt, view.finishedAt)}</Fact>
        <Fact term="Version">{view.version}</Fact>
        {view.parentId ? (
          <Fact term="Parent" title="The task whose handler submitted it (ctx.run)" mono testId="task-parent">
            <Link to={`/tasks/${view.parentId}`}>{view.parentId}</Link>
          </Fact>
        ) : null}
        {view.waitingFor?.kind === 'time' ? (
          <Fact
            term="Waiting until"
            title="Its handler sleeps (ctx.sleep): it holds no worker, and resumes then"
            testId="task-waiting-until"
          >
            {time(view.waitingFor.until)}
          </Fact>
        ) : null}
        {view.waitingFor?.kind === 'token' ? (
          <Fact
            term="Waiting for token"
            title="Its handler waits for this token (ctx.waitForToken): POST /tokens/{token}/complete {output} resumes it; it times out then"
            testId="task-waiting-token"
          >
            <code>{view.waitingFor.token}</code> until {time(view.waitingFor.until ?? null)}
          </Fact>
        ) : null}
      </dl>
      <div className="grid2">
        <div className="card">
          <h2>Input</h2>
          <pre data-testid="task-input">{json(view.input)}</pre>
        </div>
        <div className="card">
          <h2>Output</h2>
          {view.status === 'COMPLETED' ? (
            // A text result (an LLM's reply) as text; anything else as JSON.
            <pre data-testid="task-output" className={typeof view.output === 'string' ? 'reply' : undefined}>
              {typeof view.output === 'string' ? view.output : json(view.output)}
            </pre>
          ) : (
            <p className="muted">{view.finishedAt ? 'None: the task did not complete.' : 'Not yet.'}</p>
          )}
        </div>
      </div>
      {view.steps?.length ? <StepsCard steps={view.steps} /> : null}
      {view.children?.total ? <ChildrenCard summary={view.children} list={view.childTasks ?? []} /> : null}
      {progress &&
      (progress.percent !== undefined ||
        progress.message ||
        (progress.partial !== undefined && view.status !== 'COMPLETED')) ? (
        <div className="card">
          <h2>Progress</h2>
          {progress.percent !== undefined ? (
            <div
              className="bar"
              role="progressbar"
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={progress.percent}
            >
              <div style={{ width: `${Math.max(0, Math.min(100, progress.percent))}%` }} />
            </div>
          ) : null}
          {progress.message ? <p>{progress.message}</p> : null}
          {progress.partial !== undefined && view.status !== 'COMPLETED' ? (
            <>
              <h3>{view.finishedAt ? 'Reply when it stopped' : 'Reply so far (streaming)'}</h3>
              <pre className="reply" data-testid="task-partial">
                {progress.partial}
              </pre>
            </>
          ) : null}
        </div>
      ) : view.progress !== null && view.progress !== undefined ? (
        <div className="card">
          <h2>Progress</h2>
          <pre>{json(view.progress)}</pre>
        </div>
      ) : null}
      {view.usage ? <UsageCard usage={view.usage} /> : null}
      {view.error ? (
        <div className="card">
          <h2>Error</h2>
          <p className="error" data-testid="task-error">
            <b>{view.error.code}</b>: {view.error.message}
          </p>
        </div>
      ) : null}
      {view.attemptErrors.length ? (
        <div className="card">
          <h2>Errors of each attempt</h2>
          <table>
            <thead>
              <tr>
                <th>Attempt</th>
                <th>At</th>
                <th>Code</th>
                <th>Message</th>
              </tr>
            </thead>
            <tbody>
              {view.attemptErrors.map((e, i) => (
                <tr key={`${e.attempt ?? i}-${e.at ?? ''}`}>
                  <td>{e.attempt ?? i + 1}</td>
                  <td>{time(e.at)}</td>
                  <td>{e.code}</td>
                  <td>{e.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <div className="card">
        <h2>Timeline</h2>
        <ol className="timeline" data-testid="timeline">
          {timeline(view).map((step) => (
            <li key={step.label} className={step.kind}>
              <span className="when">{step.at ? time(step.at) : ''}</span>
              <span className="what">{step.label}</span>
              {step.detail ? <span className="detail">{step.detail}</span> : null}
            </li>
          ))}
        </ol>
      </div>
    </section>
  );
}

/** Its child tasks (ctx.run, ctx.runMany): counted by status, and the first ones, each a link. */
function ChildrenCard({
  summary: children,
  list,
}: {
  summary: NonNullable<Task['children']>;
  list: NonNullable<Task['childTasks']>;
}) {
  const counts = Object.entries(children.byStatus).filter(([, n]) => n > 0);
  return (
    <div className="card">
      <h2>Child tasks</h2>
      <p data-testid="task-children-summary">
        {children.total} in all: {counts.map(([status, n]) => `${n} ${status}`).join(', ')}
        {list.length < children.total ? ` (the first ${list.length} below)` : ''}
      </p>
      <table data-testid="task-children">
        <thead>
          <tr>
            <th>Task</th>
            <th>Type</th>
            <th>Status</th>
            <th>Created</th>
            <th>Finished</th>
          </tr>
        </thead>
        <tbody>
          {list.map((child) => (
            <tr key={child.id}>
              <td className="mono">
                <Link to={`/tasks/${child.id}`}>{child.id.slice(0, 8)}</Link>
              </td>
              <td>{child.name}</td>
              <td>
                <StatusBadge status={child.status} />
              </td>
              <td>{time(child.createdAt)}</td>
              <td>{time(child.finishedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

type TaskStep = NonNullable<Task['steps']>[number];

/** The steps of the record as read, updated by those the stream sent since (of this task), in the handler's order. */
function withLiveSteps(
  taskId: string,
  read: Task['steps'],
  live: ReadonlyMap<string, TaskStep & { taskId: string }>,
): Task['steps'] {
  const mine = [...live.values()].filter((step) => step.taskId === taskId);
  if (mine.length === 0) return read;
  const byId = new Map((read ?? []).map((step) => [step.id, step]));
  for (const { taskId: _task, ...step } of mine) byId.set(step.id, step);
  return [...byId.values()].sort((a, b) => a.seq - b.seq || a.startedAt.localeCompare(b.startedAt));
}

/** The durable steps its handler reached (ctx.step, ctx.sleep, child tasks, wait tokens), live. */
function StepsCard({ steps }: { steps: NonNullable<Task['steps']> }) {
  return (
    <div className="card">
      <h2>Steps</h2>
      <table data-testid="task-steps">
        <thead>
          <tr>
            <th>Step</th>
            <th>Status</th>
            <th>Started</th>
            <th>Took</th>
            <th>Result</th>
          </tr>
        </thead>
        <tbody>
          {steps.map((step) => (
            <tr key={step.id}>
              <td className="mono">{step.id}</td>
              <td>{step.status}</td>
              <td>{time(step.startedAt)}</td>
              <td>{step.finishedAt ? duration(step.startedAt, step.finishedAt) : '—'}</td>
              <td className="mono">
                {step.status === 'failed' ? (step.error?.message ?? '') : (step.preview ?? '')}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
