import { QueryClientProvider, useQuery } from '@tanstack/react-query';
import { type FormEvent, useEffect, useState } from 'react';
import {
  apiKey,
  createClient,
  createQueryClient,
  errorText,
  type RouterOutputs,
  type Scope,
  TRPCProvider,
  useTRPC,
} from './api.ts';
import { QueuePage } from './pages/Queue.tsx';
import { RunPage } from './pages/Run.tsx';
import { SchedulesPage } from './pages/Schedules.tsx';
import { TaskPage } from './pages/Task.tsx';
import { TasksPage } from './pages/Tasks.tsx';
import { UsagePage } from './pages/Usage.tsx';
import { WebhooksPage } from './pages/Webhooks.tsx';
import { Link, useRoute } from './router.tsx';

type AuthMode = 'required' | 'disabled';
export type Whoami = RouterOutputs['whoami'];

/** What the caller may do: pages show only the actions its key allows. */
export interface Abilities {
  write: boolean;
  /** The queue is every tenant's: its depths and controls are an operator key's, not a tenant admin's. */
  operator: boolean;
  /** Its own tenant's limits (an admin key; an operator's includes it). */
  admin: boolean;
}

export const can = (who: Whoami, scope: Scope) => who.scopes.includes(scope);

export function App() {
  const [mode, setMode] = useState<AuthMode | { error: string } | undefined>();
  const [key, setKey] = useState(() => apiKey.get());
  // One client per key: a new key starts from an empty cache.
  const [clients, setClients] = useState(() => ({ query: createQueryClient(), trpc: createClient() }));

  useEffect(() => {
    fetch('/ui/config.json')
      .then(async (res) => {
        if (!res.ok) throw new Error(`/ui/config.json answered ${res.status}`);
        const body = (await res.json()) as { authMode: AuthMode };
        setMode(body.authMode);
      })
      .catch((error: unknown) => setMode({ error: errorText(error) }));
  }, []);

  const changeKey = (next: string | null) => {
    if (next) apiKey.set(next);
    else apiKey.clear();
    setKey(next);
    setClients({ query: createQueryClient(), trpc: createClient() });
  };

  if (mode === undefined) return <p className="muted pad">Loading…</p>;
  if (typeof mode === 'object')
    return <p className="error pad">The server could not be reached: {mode.error}</p>;
  if (mode === 'required' && !key) return <KeyForm onKey={changeKey} />;
  return (
    <QueryClientProvider client={clients.query}>
      <TRPCProvider trpcClient={clients.trpc} queryClient={clients.query}>
        <Shell mode={mode} onForget={() => changeKey(null)} />
      </TRPCProvider>
    </QueryClientProvider>
  );
}

function KeyForm({ onKey, problem }: { onKey: (key: string) => void; problem?: string }) {
  const [value, setValue] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (value.trim()) onKey(value.trim());
  };
  return (
    <main className="login">
      <h1>Tasker</h1>
      <form onSubmit={submit} className="card">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          placeholder="tsk_…"
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
        <button type="submit">Open the dashboard</button>
        {problem ? <p className="error">{problem}</p> : null}
        <p className="muted small">
          Kept in this tab’s session storage only, and sent as <code>Authorization: Bearer</code> on every
          request. Create one with <code>tasker keys create</code> or <code>POST /api-keys</code>.
        </p>
      </form>
    </main>
  );
}

function Shell({ mode, onForget }: { mode: AuthMode; onForget: () => void }) {
  const trpc = useTRPC();
  const whoami = useQuery(trpc.whoami.queryOptions({}));
  const route = useRoute();
  if (whoami.isPending) return <p className="muted pad">Loading…</p>;
  if (whoami.isError) {
    return (
      <main className="login">
        <h1>Tasker</h1>
        <div className="card">
          <p className="error" role="alert">
            {errorText(whoami.error)}
          </p>
          {mode === 'required' ? (
            <button type="button" onClick={onForget}>
              Use another key
            </button>
          ) : null}
        </div>
      </main>
    );
  }
  const who = whoami.data;
  const abilities: Abilities = {
    write: can(who, 'tasks:write'),
    operator: can(who, 'operator'),
    admin: can(who, 'admin') || can(who, 'operator'),
  };
  return (
    <div className="app">
      <header>
        <strong className="brand">Tasker</strong>
        <nav>
          <Link to="/" className={route.page === 'tasks' || route.page === 'task' ? 'active' : ''}>
            Tasks
          </Link>
          <Link to="/queue" className={route.page === 'queue' ? 'active' : ''}>
            Queue
          </Link>
          <Link to="/schedules" className={route.page === 'schedules' ? 'active' : ''}>
            Schedules
          </Link>
          <Link to="/usage" className={route.page === 'usage' ? 'active' : ''}>
            Usage
          </Link>
          {abilities.admin ? (
            <Link to="/webhooks" className={route.page === 'webhooks' ? 'active' : ''}>
              Webhooks
            </Link>
          ) : null}
          {abilities.write ? (
            <Link to="/run" className={route.page === 'run' ? 'active' : ''}>
              Run a task
            </Link>
          ) : null}
        </nav>
        <span className="who" data-testid="whoami">
          tenant <b>{who.tenant}</b> · {who.scopes.join(', ')}
          {mode === 'required' ? (
            <button type="button" className="link" onClick={onForget}>
              Forget key
            </button>
          ) : (
            <span className="muted"> · AUTH_MODE=disabled</span>
          )}
        </span>
      </header>
      <main>
        {route.page === 'tasks' ? <TasksPage abilities={abilities} /> : null}
        {route.page === 'task' ? <TaskPage key={route.id} id={route.id} abilities={abilities} /> : null}
        {route.page === 'queue' ? <QueuePage abilities={abilities} tenant={who.tenant} /> : null}
        {route.page === 'run' ? (
          abilities.write ? (
            <RunPage />
          ) : (
            <p className="muted">This API key lacks the tasks:write scope: it cannot run tasks.</p>
          )
        ) : null}
        {route.page === 'schedules' ? <SchedulesPage abilities={abilities} /> : null}
        {route.page === 'webhooks' ? (
          abilities.admin ? (
            <WebhooksPage />
          ) : (
            <p className="muted">This API key lacks the admin scope: it cannot manage webhooks.</p>
          )
        ) : null}
        {route.page === 'usage' ? <UsagePage /> : null}
        {route.page === 'unknown' ? <p className="error">No page at {route.path}</p> : null}
      </main>
    </div>
  );
}
