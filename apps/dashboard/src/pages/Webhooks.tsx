import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';

type Webhook = RouterOutputs['listWebhooks']['webhooks'][number];
type WebhookEvent = Webhook['events'][number];

const EVENTS: readonly WebhookEvent[] = ['task.completed', 'task.failed', 'task.cancelled', 'task.expired'];

/** An ISO time as the tables show it: `2026-01-02 03:04:05Z`. */
const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '–');

/**
 * The tenant's completion webhooks (an admin key): a form to register one (its secret shown once,
 * right after), and per webhook a test event, its deliveries with their attempts (a failed one can
 * be sent again), and delete.
 */
export function WebhooksPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const list = useQuery(trpc.listWebhooks.queryOptions({}, { refetchInterval: 5000 }));
  const [open, setOpen] = useState<string | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.listWebhooks.queryKey() });
  const remove = useMutation(trpc.deleteWebhook.mutationOptions({ onSuccess: refresh }));
  const test = useMutation(trpc.testWebhook.mutationOptions());

  return (
    <section>
      <NewWebhookForm onCreated={refresh} />
      <div className="card" data-testid="webhooks">
        <h2>Webhooks ({list.data?.webhooks.length ?? 0})</h2>
        {list.isError ? <p className="error">{errorText(list.error)}</p> : null}
        {remove.error ? <p className="error">{errorText(remove.error)}</p> : null}
        {test.data ? (
          <p className={test.data.delivered ? '' : 'error'} data-testid="webhook-test" role="status">
            Test event {test.data.id}:{' '}
            {test.data.delivered
              ? `delivered (${test.data.attempt.status}) in ${test.data.attempt.durationMs} ms`
              : (test.data.attempt.error ?? 'failed')}
          </p>
        ) : null}
        {test.error ? <p className="error">{errorText(test.error)}</p> : null}
        {list.data && list.data.webhooks.length === 0 ? <p className="muted">No webhooks yet.</p> : null}
        {list.data && list.data.webhooks.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th>URL</th>
                <th>Events</th>
                <th>Task types</th>
                <th>Created</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.webhooks.map((w) => (
                <tr key={w.id} data-webhook={w.url}>
                  <td className="mono">
                    <button
                      type="button"
                      className="link"
                      onClick={() => setOpen(open === w.id ? null : w.id)}
                      title="Its deliveries"
                    >
                      {w.url}
                    </button>
                  </td>
                  <td>{w.events.join(', ')}</td>
                  <td>{w.taskNames?.join(', ') ?? 'all'}</td>
                  <td className="mono">{when(w.createdAt)}</td>
                  <td>
                    <button type="button" onClick={() => test.mutate({ id: w.id })} disabled={test.isPending}>
                      Send test
                    </button>{' '}
                    <button
                      type="button"
                      onClick={() => {
                        if (open === w.id) setOpen(null);
                        remove.mutate({ id: w.id });
                      }}
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {open ? <Deliveries id={open} /> : null}
      </div>
    </section>
  );
}

/** A webhook's latest deliveries, each with its attempts; a failed one can be sent again. */
function Deliveries({ id }: { id: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const deliveries = useQuery(
    trpc.listWebhookDeliveries.queryOptions({ id, limit: 50 }, { refetchInterval: 2000 }),
  );
  const redeliver = useMutation(
    trpc.redeliverWebhook.mutationOptions({
      onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.listWebhookDeliveries.queryKey() }),
    }),
  );
  if (deliveries.isError) return <p className="error">{errorText(deliveries.error)}</p>;
  if (!deliveries.data) return <p className="muted">Loading…</p>;
  return (
    <div data-testid="webhook-deliveries">
      <h3>Deliveries</h3>
      {redeliver.error ? <p className="error">{errorText(redeliver.error)}</p> : null}
      {deliveries.data.deliveries.length === 0 ? <p className="muted">None yet.</p> : null}
      {deliveries.data.deliveries.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Task</th>
              <th>Event</th>
              <th>Status</th>
              <th>Attempts</th>
              <th>Last answer</th>
              <th>Next attempt</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {deliveries.data.deliveries.map((d) => (
              <tr key={d.id} data-delivery-status={d.status}>
                <td className="mono">{d.taskId}</td>
                <td>{d.event}</td>
                <td>{d.status}</td>
                <td title={d.log.map((a) => `${a.at} ${a.status ?? '-'} ${a.error ?? ''}`).join('\n')}>
                  {d.attempts}
                </td>
                <td className="mono">{d.lastError ?? d.lastStatus ?? '–'}</td>
                <td className="mono">{when(d.nextAttemptAt)}</td>
                <td>
                  {d.status === 'pending' ? null : (
                    <button
                      type="button"
                      onClick={() => redeliver.mutate({ id, delivery_id: d.id })}
                      disabled={redeliver.isPending}
                    >
                      Redeliver
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

function NewWebhookForm({ onCreated }: { onCreated: () => void }) {
  const trpc = useTRPC();
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<WebhookEvent[]>(['task.completed', 'task.failed']);
  const [problem, setProblem] = useState<string | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const create = useMutation(
    trpc.createWebhook.mutationOptions({
      onSuccess: (made) => {
        setProblem(null);
        setSecret(made.secret);
        setUrl('');
        onCreated();
      },
      onError: (error) => setProblem(errorText(error)),
    }),
  );
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setSecret(null);
    create.mutate({ url: url.trim(), events });
  };
  return (
    <form className="card" onSubmit={submit} data-testid="new-webhook">
      <h2>New webhook</h2>
      <div className="fields">
        <label>
          URL
          <input
            value={url}
            onChange={(e) => setUrl(e.target.value)}
            className="mono"
            placeholder="https://hooks.example.com/tasker"
          />
        </label>
        {EVENTS.map((e) => (
          <label key={e}>
            <input
              type="checkbox"
              checked={events.includes(e)}
              onChange={(change) =>
                setEvents(change.target.checked ? [...events, e] : events.filter((x) => x !== e))
              }
            />
            {e}
          </label>
        ))}
      </div>
      <button type="submit" disabled={create.isPending || events.length === 0}>
        Create
      </button>
      {secret ? (
        <p data-testid="webhook-secret">
          Signing secret, shown this once: <code className="mono">{secret}</code>
        </p>
      ) : null}
      {problem ? (
        <p className="error" role="alert">
          {problem}
        </p>
      ) : null}
    </form>
  );
}
