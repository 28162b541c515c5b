import { isTerminal } from '@tasker/states';
import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  type TRPCClient,
} from '@trpc/client';
import { EventSource as EventSourcePonyfill } from 'eventsource';
import { type BulkApi, bulkApi } from './bulk.ts';
import { TaskerError, TaskFailedError, toTaskerError } from './errors.ts';
import type { TenantsApi, TypesApi } from './limits.ts';
import { classifyingFetch, retryLinks } from './retry.ts';
import { createSchedulesApi, type SchedulesApi } from './schedules.ts';
import { createTokensApi, type TokensApi } from './tokens.ts';
import type {
  AppRouter,
  ListOptions,
  ListResult,
  QueueOptions,
  QueueState,
  RetryOptions,
  RunManyItem,
  RunOptions,
  Task,
  TaskActivity,
  TaskInput,
  TaskName,
  TaskOutput,
  TaskType,
  TaskUpdate,
} from './types.ts';
import { type UsageOptions, type UsageReport, usageOptionsToWire } from './usage.ts';
import { createWebhooksApi, type WebhooksApi } from './webhooks.ts';
import {
  listOptionsToWire,
  listResultFromWire,
  queueOptionsToWire,
  renameBatchIssuePaths,
  renameIssuePaths,
  runManyToWire,
  runOptionsToWire,
  tenantLimitsToWire,
  tenantListOptionsToWire,
  tenantPageFromWire,
  typeLimitsToWire,
  type WireFields,
} from './wire.ts';

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
  /**
   * Retries of idempotent calls (queries, and `run()` with an `idempotencyKey`) after a network
   * error or an HTTP 502, 503 or 504. Default `{ attempts: 3, delayMs: 200, maxDelayMs: 1000 }`;
   * `false` never retries. Other mutations are never retried.
   */
  retry?: RetryOptions | false;
  /**
   * The most calls sent together in one batch request: at most the server's TRPC_MAX_BATCH
   * (default 20, which larger batches exceed with a 400). Calls made at once beyond it go in
   * further requests.
   */
  maxBatch?: number;
}

/** The server's default TRPC_MAX_BATCH. */
const DEFAULT_MAX_BATCH = 20;

export interface TaskHandle<N extends TaskName> {
  readonly id: string;
  readonly name: N;
  /**
   * From `run()` with a `singletonKey` or a `debounce`: true when an existing task answers (the
   * unfinished task holding the singleton key; the not yet started task holding the debounce key,
   * which took this run's parameters and start). From `run()` with an `idempotencyKey`, `replayed`
   * says the same of an earlier run with that key. Undefined otherwise.
   */
  readonly deduplicated?: boolean;
  readonly replayed?: boolean;
  /**
   * The task's result once it is COMPLETED. Rejects with TaskFailedError when it ends FAILED,
   * CANCELLED or EXPIRED (carrying the task's error; `status` says which).
   */
  result(): Promise<TaskOutput<N>>;
  /**
   * Its current state, then every change, ending after the terminal one. Resumes across reconnects
   * without going backwards. `signal` stops it early (the loop then ends without an error).
   */
  updates(options?: { signal?: AbortSignal }): AsyncIterableIterator<TaskUpdate<N>>;
  /**
   * As `updates()`, with the task's durable steps between its states (`ctx.step`, sleeps, child
   * tasks, wait tokens): the steps recorded so far first, then each step as it is written, in
   * commit order with the states; ends after the terminal state. A step may come twice (after a
   * reconnect): key them by `step.id`.
   */
  activity(options?: { signal?: AbortSignal }): AsyncIterableIterator<TaskActivity<N>>;
  /** Its full record now. */
  get(): Promise<Task<N>>;
  /** Cancels it: a PENDING task never runs; a RUNNING one is aborted and ends CANCELLED. */
  cancel(): Promise<Task<N>>;
  /** Runs a FAILED, CANCELLED or EXPIRED task again, under the same id. */
  retry(): Promise<Task<N>>;
}

/** What one item of `runMany()` answers: a handle on its task, and whether it was created or matched. */
export type RunManyHandle = TaskHandle<TaskName> & {
  /** True when the batch stored this item as a new task. */
  readonly created: boolean;
  /** Null when created; else why an existing task answers: its `idempotencyKey` or its `singletonKey`. */
  readonly matched: 'idempotency' | 'singleton' | null;
};

export interface TaskerClient {
  /**
   * The typed tRPC client, for every procedure of the server. It speaks the router's own input
   * names (snake_case, as the REST API), not the camelCase options of the methods below.
   */
  readonly trpc: TRPCClient<AppRouter>;
  /** Submits a task; the handle follows it. A wrong name or parameter is a compile error. */
  run<N extends TaskName>(name: N, parameters: TaskInput<N>, options?: RunOptions): Promise<TaskHandle<N>>;
  /** A page of tasks, newest first; pass `nextCursor` back as `cursor` for the next page. */
  /**
   * Runs 1 to 1,000 tasks in one request (POST /tasks/batch), all or nothing: if any item is
   * invalid, it rejects with a TaskerValidationError naming each bad item (`tasks.3.input.a`) and
   * nothing is stored. Otherwise one handle per item, in order, each saying whether the batch
   * `created` its task or an `idempotencyKey` or `singletonKey` `matched` an existing one.
   */
  runMany(tasks: readonly RunManyItem[]): Promise<RunManyHandle[]>;
  list<N extends TaskName = TaskName>(options?: ListOptions<N>): Promise<ListResult>;
  /** A task's full record. */
  get<N extends TaskName = TaskName>(id: string): Promise<Task<N>>;
  /** A handle for a task submitted earlier. */
  task<N extends TaskName = TaskName>(id: string, name?: N): TaskHandle<N>;
  /** The task types the server runs, with the JSON Schema of their parameters and result. */
  taskTypes(): Promise<TaskType[]>;
  /** Whether processing is paused, and queue depths (an `operator` key in `required` auth mode: the queue is every tenant's). */
  queue(): Promise<QueueState>;
  /** Workers start no queued task (of `taskName` only, if given) until resumed; nothing is lost (operator). */
  pauseQueue(options?: QueueOptions): Promise<QueueState>;
  /** Workers start queued tasks again: of `taskName` only, if given; else every type, those paused on their own too (operator). */
  resumeQueue(options?: QueueOptions): Promise<QueueState>;
  /**
   * Tenants and their limits: `tenants.limits.get(tenant)`, `.set(tenant, { maxRunning, maxQueued,
   * startsPerMinute })`, `.clear(tenant)` (an `admin` key: its own tenant; an `operator` key: any),
   * and `tenants.list()` (operator). A change takes effect everywhere within 2 s.
   */
  tenants: TenantsApi;
  /** A task type's limits, `maxRunningPerKey` included: `types.limits.get/set/clear(name)` (operator). */
  types: TypesApi;
  /**
   * What the tenant's model calls used (GET /usage): tokens, cost, calls and tasks per UTC day (or
   * per task type, model, tenant) in a range, default the last 30 days; another tenant's, or
   * every tenant's (`tenant: '*'`), with an `operator` key.
   */
  usage(options?: UsageOptions): Promise<UsageReport>;
  /**
   * The tenant's schedules: `schedules.create({ name, input, cron, timezone, key, ... })` (an upsert
   * by `key`), `list()`, `get(id)` (next fire times and latest runs), `update(id, change)`,
   * `pause(id)`, `resume(id)`, `delete(id)`. Each tick runs one task of the type.
   */
  schedules: SchedulesApi;
  /**
   * Completion webhooks (an `admin` key): `webhooks.create({ url, events, taskNames })` (its secret
   * shown once), `list()`, `get(id)`, `delete(id)`, `test(id)`, `deliveries(id)`,
   * `redeliver(id, deliveryId)`, and `rotateTaskSecret()` for tasks' own `webhookUrl`.
   */
  webhooks: WebhooksApi;
  /**
   * Wait tokens (a handler's `ctx.waitForToken`): `tokens.complete(token, output)` resumes the task
   * that waits for it; `tokens.completeByUrl(url, output)` by its callback URL, without a key.
   */
  tokens: TokensApi;
  /**
   * Bulk cancel and retry by filter (`list()`'s filter): `bulk.cancel(filter)` and
   * `bulk.retry(filter)` answer at once with a tracked operation (`bulk.wait(id)` follows it);
   * `{ dryRun: true }` only counts what they would change.
   */
  bulk: BulkApi;
}

function withHeaders(base: FetchLike, headers: Record<string, string>): FetchLike {
  if (Object.keys(headers).length === 0) return base;
  return (input, init) => {
    const merged = new Headers(init?.headers);
    for (const [key, value] of Object.entries(headers)) merged.set(key, value);
    return base(input, { ...init, headers: merged });
  };
}

/**
 * A call's answer, or its error as a TaskerError; a validation error's fields named as the caller
 * wrote them (`fields`: the table of the procedure's input). The wire input is built before the
 * call, so that an option refused locally, already named as written, is never renamed here.
 */
async function call<T>(promise: Promise<T>, fields?: WireFields): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    const tasker = toTaskerError(error);
    throw fields ? renameIssuePaths(tasker, fields) : tasker;
  }
}

/** A Tasker client: `const tasker = createTaskerClient({ url })`, then `await (await tasker.run(name, params)).result()`. */
export function createTaskerClient(options: TaskerClientOptions): TaskerClient {
  const url = `${options.url.replace(/\/+$/, '')}/trpc`;
  const headers: Record<string, string> = { ...options.headers };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  const baseFetch: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const fetchWithHeaders = withHeaders(baseFetch, headers);
  // Browsers have EventSource; Node (22, 24) has none without a flag, and the ponyfill also lets us send headers.
  const EventSourceImpl =
    Object.keys(headers).length === 0 && !options.fetch && globalThis.EventSource
      ? globalThis.EventSource
      : EventSourcePonyfill;

  const transport = splitLink<AppRouter>({
    condition: (op) => op.type === 'subscription',
    true: httpSubscriptionLink({
      url,
      EventSource: EventSourceImpl,
      eventSourceOptions: () => ({ fetch: fetchWithHeaders }) as EventSourceInit,
    }),
    false: httpBatchLink({
      url,
      fetch: classifyingFetch(fetchWithHeaders),
      maxItems: options.maxBatch ?? DEFAULT_MAX_BATCH,
    }),
  });
  const trpc = createTRPCClient<AppRouter>({
    links: options.retry === false ? [transport] : [...retryLinks(options.retry ?? {}), transport],
  });

  const get = <N extends TaskName>(id: string) => call(trpc.getTask.query({ id })) as Promise<Task<N>>;

  const task = <N extends TaskName>(id: string, name?: N): TaskHandle<N> => {
    async function* updates(
      opts: { signal?: AbortSignal } = {},
    ): AsyncGenerator<TaskUpdate<N>, void, undefined> {
      // tRPC's own iterator: `signal`, `break` and `return()` stop it (and close the stream).
      const events = trpc.onTaskUpdate.subscribe({ id }, { signal: opts.signal });
      try {
        for await (const event of events) {
          const update = event.data as TaskUpdate<N>;
          yield update;
          if (isTerminal(update.status)) return;
        }
      } catch (error) {
        throw toTaskerError(error);
      }
    }
    async function* activity(
      opts: { signal?: AbortSignal } = {},
    ): AsyncGenerator<TaskActivity<N>, void, undefined> {
      const events = trpc.onTaskActivity.subscribe({ id }, { signal: opts.signal });
      try {
        for await (const { data } of events) {
          const event = data as TaskActivity<N>;
          yield event;
          if (event.type === 'state' && isTerminal(event.task.status)) return;
        }
      } catch (error) {
        throw toTaskerError(error);
      }
    }
    return {
      id,
      name: name as N,
      updates,
      activity,
      get: () => get<N>(id),
      cancel: () => call(trpc.cancelTask.mutate({ id })) as Promise<Task<N>>,
      retry: () => call(trpc.retryTask.mutate({ id })) as Promise<Task<N>>,
      result: async () => {
        for await (const update of updates()) {
          if (update.status === 'COMPLETED') return update.output as TaskOutput<N>;
          if (isTerminal(update.status)) throw new TaskFailedError(id, update.status, update.error);
        }
        // The stream ended without a final state (should not happen): ask once more.
        const final = await get<N>(id);
        if (final.status === 'COMPLETED') return final.output as TaskOutput<N>;
        if (isTerminal(final.status)) throw new TaskFailedError(id, final.status, final.error);
        throw new TaskerError(`the updates of task ${id} ended while it is ${final.status}`, 'STREAM_ENDED');
      },
    };
  };

  // Each method that builds a wire input is async: an option refused there rejects, as a refusal of the server does.
  return {
    trpc,
    get,
    task,
    run: async (name, parameters, runOptions = {}) => {
      const wire = runOptionsToWire(runOptions);
      const { task_uuid, replayed, deduplicated } = await call(
        trpc.runTask.mutate({
          ...wire,
          task_name: name,
          task_parameters: parameters as Record<string, unknown>,
        }),
        'run',
      );
      return { ...task(task_uuid, name), replayed, deduplicated };
    },
    runMany: async (items) => {
      const wire = runManyToWire(items);
      let answer: Awaited<ReturnType<typeof trpc.runTasks.mutate>>;
      try {
        answer = await trpc.runTasks.mutate({ tasks: wire });
      } catch (error) {
        throw renameBatchIssuePaths(toTaskerError(error));
      }
      return answer.tasks.map(({ id, created, matched }, index) => ({
        ...task(id, items[index]?.name),
        created,
        matched,
      }));
    },
    taskTypes: () => call(trpc.listTaskTypes.query({})),
    queue: () => call(trpc.getQueue.query({})),
    pauseQueue: async (queueOptions = {}) =>
      call(trpc.pauseQueue.mutate(queueOptionsToWire(queueOptions)), 'queue'),
    resumeQueue: async (queueOptions = {}) =>
      call(trpc.resumeQueue.mutate(queueOptionsToWire(queueOptions)), 'queue'),
    list: async (listOptions = {}) =>
      listResultFromWire(await call(trpc.listTasks.query(listOptionsToWire(listOptions)), 'list')),
    schedules: createSchedulesApi(trpc, call),
    webhooks: createWebhooksApi(trpc, call),
    tokens: createTokensApi(trpc, call),
    tenants: {
      list: async (listOptions = {}) =>
        tenantPageFromWire(await call(trpc.listTenants.query(tenantListOptionsToWire(listOptions)))),
      limits: {
        get: (tenant) => call(trpc.getTenantLimits.query({ tenant })),
        set: async (tenant, limits) =>
          call(trpc.setTenantLimits.mutate({ tenant, ...tenantLimitsToWire(limits) }), 'limits'),
        clear: (tenant) => call(trpc.clearTenantLimits.mutate({ tenant })),
      },
    },
    bulk: bulkApi(trpc),
    usage: (usageOptions = {}) => call(trpc.getUsage.query(usageOptionsToWire(usageOptions))),
    types: {
      limits: {
        get: (name) => call(trpc.getTypeLimits.query({ name })),
        set: async (name, limits) =>
          call(trpc.setTypeLimits.mutate({ name, ...typeLimitsToWire(limits) }), 'limits'),
        clear: (name) => call(trpc.clearTypeLimits.mutate({ name })),
      },
    },
  };
}
