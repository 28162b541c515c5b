import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { listInWords, RETRYABLE_STATUSES } from '@tasker/states';
import { useEffect, useState } from 'react';
import { errorText, type RouterInputs, type RouterOutputs, useTRPC } from './api.ts';

/** GET /tasks's filter, as the bulk routes take it (the list's input without its page). */
export type BulkFilter = RouterInputs['cancelTasks']['filter'];
type Action = 'cancel' | 'retry';
type Operation = RouterOutputs['getOperation'];

const WORDS: Record<Action, { button: string; applies: string; verb: string; past: string }> = {
  cancel: {
    button: 'Cancel matching…',
    applies: 'PENDING, RUNNING or WAITING',
    verb: 'Cancel',
    past: 'cancelled',
  },
  retry: {
    button: 'Retry matching…',
    applies: listInWords(RETRYABLE_STATUSES),
    verb: 'Retry',
    past: 'retried',
  },
};

/** Whether the filter names anything (the server refuses an empty one: it would act on every task). */
const hasFilter = (filter: BulkFilter) =>
  Object.values(filter).some((v) => v !== undefined && !(Array.isArray(v) && v.length === 0));

/**
 * Bulk cancel and retry of every task the table's filters match: a dry run first, whose count the
 * confirmation shows; then the operation, its progress read every half second until it ends. Only
 * for keys with tasks:write, and only on a filtered table.
 */
export function BulkActions({ filter, write }: { filter: BulkFilter; write: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState<{ action: Action; matched: number }>();
  const [operationId, setOperationId] = useState<string>();
  const [problem, setProblem] = useState<string>();
  const onError = (error: unknown) => setProblem(errorText(error));
  const counts = {
    cancel: useMutation(trpc.cancelTasks.mutationOptions({ onError })),
    retry: useMutation(trpc.retryTasks.mutationOptions({ onError })),
  };
  const operation = useQuery(
    trpc.getOperation.queryOptions(
      { id: operationId ?? '' },
      {
        enabled: operationId !== undefined,
        refetchInterval: (query) => (query.state.data?.status === 'running' ? 500 : false),
      },
    ),
  );
  const op: Operation | undefined = operation.data;
  // Once it ended, the table shows what it changed.
  const ended = op !== undefined && op.status !== 'running';
  useEffect(() => {
    if (ended) void queryClient.invalidateQueries({ queryKey: trpc.listTasks.queryKey() });
  }, [ended, queryClient, trpc]);
  if (!write || !hasFilter(filter)) return null;

  const ask = async (action: Action) => {
    setProblem(undefined);
    const answer = await counts[action].mutateAsync({ filter, dry_run: true }).catch(() => undefined);
    if (answer && 'dryRun' in answer) setConfirming({ action, matched: answer.matched });
  };
  const confirm = async () => {
    if (!confirming) return;
    const answer = await counts[confirming.action].mutateAsync({ filter }).catch(() => undefined);
    setConfirming(undefined);
    if (answer && 'id' in answer) setOperationId(answer.id);
  };
  const busy = counts.cancel.isPending || counts.retry.isPending;

  return (
    <div className="bulk" data-testid="bulk-actions">
      {(['cancel', 'retry'] as const).map((action) => (
        <button
          key={action}
          type="button"
          className={action === 'cancel' ? 'danger' : undefined}
          disabled={busy || op?.status === 'running'}
          onClick={() => void ask(action)}
        >
          {WORDS[action].button}
        </button>
      ))}
      {confirming ? (
        <div
          className="card confirm"
          role="dialog"
          aria-label="Confirm bulk action"
          data-testid="bulk-confirm"
        >
          <p>
            {confirming.matched === 0
              ? `No ${WORDS[confirming.action].applies} task matches these filters.`
              : `${WORDS[confirming.action].verb} ${confirming.matched} ${WORDS[confirming.action].applies} task${confirming.matched === 1 ? '' : 's'} matching these filters?`}
          </p>
          <span className="buttons">
            {confirming.matched > 0 ? (
              <button
                type="button"
                className={confirming.action === 'cancel' ? 'danger' : undefined}
                disabled={busy}
                onClick={() => void confirm()}
              >
                {WORDS[confirming.action].verb} {confirming.matched}
              </button>
            ) : null}
            <button type="button" className="secondary" onClick={() => setConfirming(undefined)}>
              Back
            </button>
          </span>
        </div>
      ) : null}
      {op ? (
        <div className="progress" data-testid="bulk-progress" role="status">
          <progress max={Math.max(op.matched, 1)} value={op.done} />
          <span>
            {op.done} of {op.matched} {WORDS[op.action].past} ({op.status}
            {op.error ? `: ${op.error}` : ''})
          </span>
        </div>
      ) : null}
      {problem ? (
        <span className="error small" role="alert">
          {problem}
        </span>
      ) : null}
    </div>
  );
}
