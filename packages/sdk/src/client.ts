import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  type TRPCClient,
} from '@trpc/client';
import { EventSource as EventSourcePonyfill } from 'eventsource';
import { TaskFailedError, toTaskerError } from './errors.ts';
import type { AppRouter, Task, TaskInput, TaskName, TaskOutput, TaskUpdate } from './types.ts';

type FetchLike = typeof fetch;

export interface TaskerClientOptions {
  /** Base URL of a Tasker server, e.g. `http://localhost:5000`. */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
  /** A fetch implementation (default: the global one). */
  fetch?: FetchLike;
}

export interface TaskHandle<N extends TaskName> {
  readonly id: string;
  readonly name: N;
  /**
   * The task's result once it is COMPLETED. Rejects with TaskFailedError when it ends FAILED or
   * CANCELLED (carrying the task's error).
   */
  result(): Promise<TaskOutput<N>>;
  /** Its current state, then every change, ending after the terminal one. Resumes across reconnects. */
  updates(options?: { signal?: AbortSignal }): AsyncIterableIterator<TaskUpdate<N>>;
  /** Its full record now. */
  get(): Promise<Task<N>>;
  /** Cancels it: a PENDING task never runs; a RUNNING one is aborted and ends CANCELLED. */
  cancel(): Promise<Task<N>>;
  /** Runs a FAILED or CANCELLED task again, under the same id. */
  retry(): Promise<Task<N>>;
}

/** Filters of `list()`; every field is optional. */
export type ListOptions = NonNullable<Parameters<TRPCClient<AppRouter>['listTasks']['query']>[0]>;
/** Run options of `run()`: priority, delay, attempts, timeout, idempotency key. */
export type RunOptions = Omit<
  Parameters<TRPCClient<AppRouter>['runTask']['mutate']>[0],
  'task_name' | 'task_parameters'
>;

export interface TaskerClient {
  /** The typed tRPC client, for every procedure of the server. */
  readonly trpc: TRPCClient<AppRouter>;
  /** Submits a task; the handle follows it. A wrong name or parameter is a compile error. */
  run<N extends TaskName>(name: N, parameters: TaskInput<N>, options?: RunOptions): Promise<TaskHandle<N>>;
  /** A page of tasks, newest first; pass `next_cursor` back as `cursor` for the next page. */
  list(options?: ListOptions): Promise<{ tasks: Task[]; next_cursor: string | null }>;
  /** A task's full record. */
  get<N extends TaskName = TaskName>(id: string): Promise<Task<N>>;
  /** A handle for a task submitted earlier. */
  task<N extends TaskName = TaskName>(id: string, name?: N): TaskHandle<N>;
}

function withHeaders(base: FetchLike, headers: Record<string, string>): FetchLike {
  if (Object.keys(headers).length === 0) return base;
  return (input, init) => {
    const merged = new Headers(init?.headers);
    for (const [key, value] of Object.entries(headers)) merged.set(key, value);
    return base(input, { ...init, headers: merged });
  };
}

async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw toTaskerError(error);
  }
}

/** A Tasker client: `const tasker = createTaskerClient({ url })`, then `await (await tasker.run(name, params)).result()`. */
export function createTaskerClient(options: TaskerClientOptions): TaskerClient {
  const url = `${options.url.replace(/\/+$/, '')}/trpc`;
  const headers: Record<string, string> = { ...options.headers };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  const baseFetch: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const fetchWithHeaders = withHeaders(baseFetch, headers);
  // Browsers have EventSource; Node 20 does not, and the ponyfill also lets us send headers.
  const EventSourceImpl =
    Object.keys(headers).length === 0 && !options.fetch && globalThis.EventSource
      ? globalThis.EventSource
      : EventSourcePonyfill;

  const trpc = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url,
          EventSource: EventSourceImpl,
          eventSourceOptions: () => ({ fetch: fetchWithHeaders }) as EventSourceInit,
        }),
        false: httpBatchLink({ url, fetch: fetchWithHeaders }),
      }),
    ],
  });

  const get = <N extends TaskName>(id: string) => call(trpc.getTask.query({ id })) as Promise<Task<N>>;

  const task = <N extends TaskName>(id: string, name?: N): TaskHandle<N> => {
    const updates = (opts: { signal?: AbortSignal } = {}): AsyncIterableIterator<TaskUpdate<N>> => {
      const queue: TaskUpdate<N>[] = [];
      let failure: unknown;
      let done = false;
      let wake: (() => void) | undefined;
      const subscription = trpc.onTaskUpdate.subscribe(
        { id },
        {
          onData: (event) => {
            queue.push(event.data as TaskUpdate<N>);
            wake?.();
          },
          onError: (error) => {
            failure = toTaskerError(error);
            wake?.();
          },
          onComplete: () => {
            done = true;
            wake?.();
          },
        },
      );
      const stop = () => {
        done = true;
        subscription.unsubscribe();
        wake?.();
      };
      opts.signal?.addEventListener('abort', stop, { once: true });
      const iterator: AsyncIterableIterator<TaskUpdate<N>> = {
        [Symbol.asyncIterator]: () => iterator,
        next: async () => {
          for (;;) {
            const item = queue.shift();
            if (item) return { value: item, done: false };
            if (failure) {
              stop();
              throw failure;
            }
            if (done) return { value: undefined, done: true };
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
          }
        },
        return: async () => {
          stop();
          return { value: undefined, done: true };
        },
      };
      return iterator;
    };
    return {
      id,
      name: name as N,
      updates,
      get: () => get<N>(id),
      cancel: () => call(trpc.cancelTask.mutate({ id })) as Promise<Task<N>>,
      retry: () => call(trpc.retryTask.mutate({ id })) as Promise<Task<N>>,
      result: async () => {
        for await (const update of updates()) {
          if (update.status === 'COMPLETED') return update.output as TaskOutput<N>;
          if (update.status === 'FAILED' || update.status === 'CANCELLED') {
            throw new TaskFailedError(id, update.status, update.error);
          }
        }
        // The stream ended without a final state (should not happen): ask once more.
        const final = await get<N>(id);
        if (final.status === 'COMPLETED') return final.output as TaskOutput<N>;
        throw new TaskFailedError(id, final.status === 'CANCELLED' ? 'CANCELLED' : 'FAILED', final.error);
      },
    };
  };

  return {
    trpc,
    get,
    task,
    run: async (name, parameters, runOptions = {}) => {
      const { task_uuid } = await call(
        trpc.runTask.mutate({
          ...runOptions,
          task_name: name,
          task_parameters: parameters as Record<string, unknown>,
        }),
      );
      return task(task_uuid, name);
    },
    list: (listOptions = {}) =>
      call(trpc.listTasks.query(listOptions)) as Promise<{ tasks: Task[]; next_cursor: string | null }>,
  };
}
