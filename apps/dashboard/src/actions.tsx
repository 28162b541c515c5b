import { useMutation, useQueryClient } from '@tanstack/react-query';
import { canCancel, canRetry } from '@tasker/states';
import { useState } from 'react';
import { errorText, type Task, type TaskEvent, useTRPC } from './api.ts';

/**
 * Cancel while a cancel can still change the task (PENDING or RUNNING, not already asked), retry once
 * it is FAILED, CANCELLED or EXPIRED: @tasker/states' canCancel and canRetry. Only for keys with tasks:write.
 */
export function TaskActions({
  task,
  write,
  onChanged,
}: {
  /** A record, an event or a list row: only what the actions depend on. */
  task: Pick<TaskEvent, 'id' | 'status' | 'cancelRequestedAt'>;
  write: boolean;
  onChanged?: (task: Task) => void;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [problem, setProblem] = useState<string>();
  const done = {
    onSuccess: (changed: Task) => {
      setProblem(undefined);
      onChanged?.(changed);
      void queryClient.invalidateQueries({ queryKey: trpc.listTasks.queryKey() });
    },
    onError: (error: unknown) => setProblem(errorText(error)),
  };
  const cancel = useMutation(trpc.cancelTask.mutationOptions(done));
  const retry = useMutation(trpc.retryTask.mutationOptions(done));
  if (!write) return null;
  const cancellable = canCancel(task);
  const retryable = canRetry(task);
  return (
    <span className="actions">
      {cancellable ? (
        <button
          type="button"
          className="danger"
          disabled={cancel.isPending}
          onClick={() => cancel.mutate({ id: task.id })}
        >
          Cancel
        </button>
      ) : null}
      {retryable ? (
        <button type="button" disabled={retry.isPending} onClick={() => retry.mutate({ id: task.id })}>
          Retry
        </button>
      ) : null}
      {problem ? <span className="error small">{problem}</span> : null}
    </span>
  );
}
