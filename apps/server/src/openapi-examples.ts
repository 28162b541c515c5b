import { costOf, DEFAULT_LLM_PRICES, type TaskDefinition, taskDefinitions } from '@tasker/tasks';
import { z } from 'zod';

/**
 * The document's examples: the README's requests and answers, built from the task definitions'
 * own examples (`example`, `exampleOutput`), so that a new task type brings its own. Every value
 * here must fit its schema: `redocly lint` (no-invalid-media-type-examples) checks it, and the
 * Prism test sends the same kind of traffic.
 */

type Json = Record<string, unknown>;
export interface Example {
  summary: string;
  value: unknown;
}
export interface OperationExamples {
  /** The request body's examples, by name. */
  request?: Record<string, Example>;
  /** The success answer's examples, by name. */
  response?: Record<string, Example>;
  /** The examples of the route's other success status, when it has one (POST /tasks: 200). */
  otherResponse?: Record<string, Example>;
  /** An example value for each parameter, by name. */
  parameters?: Record<string, unknown>;
}

export const EXAMPLE_TASK_ID = '2b4d2c0e-53a8-4c8f-9a39-0f7f3c1b2d9e';
const EXAMPLE_KEY_ID = '7d8e4a60-1f2b-4c3d-8e9f-0a1b2c3d4e5f';
const EXAMPLE_KEY = 'tsk_Vb3xQ9mK2pL7nR4sT8wY1zA6cE0fG5hJ2kM9oP3qU7v';

const at = (seconds: number) => new Date(Date.UTC(2026, 10, 28, 12, 0, seconds)).toISOString();

/** A wait token (ctx.waitForToken), its callback URL's secret, and the token as a completion answers it. */
const EXAMPLE_TOKEN_ID = '6b5a4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d';
const EXAMPLE_TOKEN_SECRET = 'q3Zr8Vt1Xw6Yb0Nc5Md9Lf2Kg7Jh4Hs1Ap8Qe3Ru6Ti';
const completedToken = {
  id: EXAMPLE_TOKEN_ID,
  taskId: EXAMPLE_TASK_ID,
  status: 'completed',
  timeoutAt: '2026-11-29T12:00:00.000Z',
  completedAt: at(30),
};

type State = 'COMPLETED' | 'PENDING' | 'CANCELLED';

/** What one completed model call used: the record's `usage` of a type that calls a model. */
function usageExample() {
  const totals = {
    model: 'gpt-4o-mini',
    promptTokens: 12,
    completionTokens: 17,
    costUsd: costOf(DEFAULT_LLM_PRICES, 'gpt-4o-mini', 12, 17),
    calls: 1,
  };
  return { ...totals, attempts: [{ attempt: 1, ...totals }] };
}

/** A task record of this type, as GET /tasks/{id} answers it. */
export function taskRecordExample(d: TaskDefinition, status: State, id = EXAMPLE_TASK_ID): Json {
  const done = status === 'COMPLETED' && d.exampleOutput !== undefined;
  const state = status === 'COMPLETED' && !done ? 'PENDING' : status;
  return {
    id,
    name: d.name,
    status: state,
    input: d.example ?? {},
    output: done ? d.exampleOutput : null,
    error:
      state === 'CANCELLED'
        ? { message: 'the task was cancelled', name: 'CancelledError', code: 'CANCELLED', at: at(2) }
        : null,
    attemptErrors: [],
    waitingFor: null,
    parentId: null,
    progress: null,
    version: state === 'PENDING' ? 1 : state === 'CANCELLED' ? 2 : 3,
    attempts: done ? 1 : 0,
    maxAttempts: d.retry.attempts,
    priority: 0,
    concurrencyKey: 'acme',
    singletonKey: null,
    debounceKey: null,
    tags: ['nightly'],
    metadata: { team: 'billing' },
    scheduleId: null,
    scheduledFor: null,
    webhookUrl: null,
    usage: done && d.llm ? usageExample() : null,
    runAfter: null,
    ttlMs: null,
    expiresAt: null,
    cancelRequestedAt: state === 'CANCELLED' ? at(2) : null,
    createdAt: at(0),
    startedAt: done ? at(1) : null,
    finishedAt: state === 'PENDING' ? null : at(2),
    updatedAt: at(state === 'PENDING' ? 0 : 2),
  };
}

/** PostgreSQL's JSON text of a jsonb value (a space after ":" and ","), as a list row's previews carry it. */
const jsonbText = (value: unknown): string =>
  JSON.stringify(value).replace(/("(?:[^"\\]|\\.)*")|([:,])/g, (_, string, sign) => string ?? `${sign} `);

/** A row of GET /tasks: the record's fixed fields and previews of its payloads. */
export function taskSummaryExample(d: TaskDefinition, status: State, id = EXAMPLE_TASK_ID): Json {
  const {
    input,
    output,
    attemptErrors: _a,
    progress: _p,
    singletonKey: _s,
    debounceKey: _d,
    scheduleId: _si,
    scheduledFor: _sf,
    webhookUrl: _w,
    usage: _u,
    ...fixed
  } = taskRecordExample(d, status, id) as Record<string, unknown>;
  const preview = (value: unknown) => {
    const json = jsonbText(value);
    return { json, truncated: false, bytes: Buffer.byteLength(json) };
  };
  return { ...fixed, inputPreview: preview(input), outputPreview: output === null ? null : preview(output) };
}

/** A task event (the SSE stream's `data:`): the record without its input. */
export function taskEventExample(d: TaskDefinition, status: State): Json {
  const { input: _input, ...event } = taskRecordExample(d, status);
  return event;
}

const byType = (make: (d: TaskDefinition) => Example) =>
  Object.fromEntries(taskDefinitions.map((d) => [d.name, make(d)]));

const first = taskDefinitions[0] as TaskDefinition;
const queue = (paused: boolean, pausedTypes: string[] = []) => ({
  paused,
  waiting: 12,
  delayed: 3,
  active: 4,
  failed: 1,
  pausedTypes,
  suspended: 2,
});
const apiKey = (extra: Json = {}) => ({
  id: EXAMPLE_KEY_ID,
  tenant: 'acme',
  name: 'ci',
  prefix: EXAMPLE_KEY.slice(0, 12),
  scopes: ['tasks:write', 'tasks:read'],
  createdAt: at(0),
  createdBy: null,
  lastUsedAt: null,
  expiresAt: null,
  revokedAt: null,
  ...extra,
});
const cursor = Buffer.from(`${at(0)}|${EXAMPLE_TASK_ID}`).toString('base64url');
const noLimits = { maxRunning: null, maxQueued: null, startsPerMinute: null };
/** A tenant's LLM budgets: none, or a daily token budget reached (its LLM tasks held until midnight UTC). */
const noBudgets = {
  llmTokensPerDay: null,
  llmCostPerMonthUsd: null,
  tokensToday: 0,
  costThisMonthUsd: 0,
  exceeded: null,
  heldUntil: null,
};
const budgetReached = {
  llmTokensPerDay: 1_000_000,
  llmCostPerMonthUsd: 500,
  tokensToday: 1_000_412,
  costThisMonthUsd: 212.5,
  exceeded: 'llm_tokens_per_day',
  heldUntil: '2026-11-29T00:00:00.000Z',
};
const tenantLimits = (stored: Json, effective: Json, extra: Json = {}) => ({
  tenant: 'acme',
  stored: { ...noLimits, ...stored },
  defaults: noLimits,
  effective: { ...noLimits, ...effective },
  updatedAt: Object.keys(stored).length > 0 ? at(50) : null,
  running: 4,
  queued: 120,
  budgets: noBudgets,
  ...extra,
});
const typeLimits = (stored: Json, effective: Json) => ({
  name: first.name,
  stored: { ...noLimits, maxRunningPerKey: null, ...stored },
  defaults: { ...noLimits, maxRunningPerKey: null },
  effective: { ...noLimits, maxRunningPerKey: null, ...effective },
  updatedAt: Object.keys(stored).length > 0 ? at(50) : null,
  running: 12,
  queued: 340,
});
const acmeLimits = { maxRunning: 10, maxQueued: 1000 };

const EXAMPLE_SCHEDULE_ID = '3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b';
/** A schedule as the API shows it (GET /schedules/{id} adds its next fires and runs). */
const schedule = (more: Json = {}): Json => ({
  id: EXAMPLE_SCHEDULE_ID,
  key: 'nightly-report',
  name: first.name,
  input: first.example ?? {},
  cron: '0 2 * * *',
  timezone: 'Europe/Paris',
  catchUp: 'latest',
  paused: false,
  priority: 0,
  maxAttempts: null,
  timeoutMs: null,
  ttlMs: 3_600_000,
  concurrencyKey: null,
  nextFireAt: '2026-11-29T01:00:00.000Z',
  lastFireAt: '2026-11-28T01:00:00.000Z',
  skippedRuns: 0,
  lastSkippedFor: null,
  lastSkipReason: null,
  createdAt: at(0),
  updatedAt: at(0),
  ...more,
});
const scheduleRequest = {
  name: first.name,
  input: first.example ?? {},
  cron: '0 2 * * *',
  timezone: 'Europe/Paris',
  key: 'nightly-report',
  ttl_ms: 3_600_000,
};

const EXAMPLE_OPERATION_ID = '5f0e3d2c-1b4a-4c9d-8e7f-6a5b4c3d2e1f';
/** A bulk operation as GET /operations/{id} shows it. */
const operationExample = (action: 'cancel' | 'retry', more: Json = {}): Json => ({
  id: EXAMPLE_OPERATION_ID,
  action,
  status: 'running',
  filter: action === 'cancel' ? { statuses: ['PENDING'], tags: ['nightly'] } : { statuses: ['FAILED'] },
  matched: 10000,
  done: 1500,
  error: null,
  createdBy: EXAMPLE_KEY_ID,
  createdAt: at(0),
  updatedAt: at(3),
  finishedAt: null,
  ...more,
});
/** POST /tasks/cancel or /tasks/retry: a filter, a dry run, and their answers. */
const bulkExamples = (action: 'cancel' | 'retry', filter: Json, tag: string): OperationExamples => ({
  request: {
    filtered: {
      summary: `${action === 'cancel' ? 'Cancel' : 'Retry'} every task that matches`,
      value: { filter },
    },
    tagged: { summary: `Every task tagged ${tag}`, value: { filter: { tag: [tag] } } },
    dryRun: { summary: 'Only count them first (nothing is touched)', value: { filter, dry_run: true } },
  },
  response: {
    started: {
      summary: 'Recorded: the workers go through the matching tasks in chunks',
      value: operationExample(action, { done: 0, updatedAt: at(0) }),
    },
  },
  otherResponse: {
    dryRun: {
      summary: 'A dry run: how many it would change now',
      value: { dryRun: true, action, matched: 10000 },
    },
  },
});

const EXAMPLE_WEBHOOK_ID = '4c1e9f2a-7b3d-4e5f-8a9b-0c1d2e3f4a5b';
const EXAMPLE_DELIVERY_ID = '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';
const webhook = (more: Json = {}): Json => ({
  id: EXAMPLE_WEBHOOK_ID,
  tenant: 'acme',
  url: 'https://hooks.example.com/tasker',
  events: ['task.completed', 'task.failed'],
  taskNames: null,
  createdAt: at(0),
  updatedAt: at(0),
  ...more,
});
const delivered = { at: at(3), status: 200, error: null, durationMs: 42 };
const delivery = (more: Json = {}): Json => ({
  id: EXAMPLE_DELIVERY_ID,
  webhookId: EXAMPLE_WEBHOOK_ID,
  taskId: EXAMPLE_TASK_ID,
  url: 'https://hooks.example.com/tasker',
  event: 'task.completed',
  status: 'delivered',
  attempts: 1,
  nextAttemptAt: null,
  lastStatus: 200,
  lastError: null,
  log: [delivered],
  createdAt: at(2),
  updatedAt: at(3),
  ...more,
});
const refused = { at: at(3), status: 503, error: 'HTTP 503', durationMs: 17 };

/** The examples of every operation, by operationId. */
export const OPERATION_EXAMPLES: Record<string, OperationExamples> = {
  runTask: {
    request: byType((d) => ({
      summary: d.description,
      value: { task_name: d.name, task_parameters: d.example ?? {} },
    })),
    response: {
      submitted: { summary: 'The new task id', value: { task_uuid: EXAMPLE_TASK_ID } },
      deduplicated: {
        summary: 'A singleton_key (or a debounce) was sent, and the unfinished task holding it answers',
        value: { task_uuid: EXAMPLE_TASK_ID, deduplicated: true },
      },
    },
  },
  getTaskOutput: {
    parameters: { task_uuid: EXAMPLE_TASK_ID },
    response: {
      completed: {
        summary: 'sum_two_numbers {"a": 5, "b": 10}, finished',
        value: { task_output: { status: 'COMPLETED', result: 15, error: null } },
      },
      pending: {
        summary: 'Queued, running or waiting for a retry',
        value: { task_output: { status: 'PENDING', result: null, error: null } },
      },
    },
  },
  createTask: {
    request: {
      ...byType((d) => ({ summary: d.description, value: { name: d.name, input: d.example ?? {} } })),
      singleton: {
        summary: 'At most one unfinished task with this key: a second submission returns it (200)',
        value: { name: first.name, input: first.example ?? {}, singleton_key: 'nightly-report' },
      },
      tagged: {
        summary:
          'With tags and metadata, to find it by (GET /tasks?tag=nightly&metadata_contains={"team":"billing"})',
        value: {
          name: first.name,
          input: first.example ?? {},
          tags: ['nightly'],
          metadata: { team: 'billing', ticket: 'OPS-42' },
        },
      },
      debounced: {
        summary: 'Submissions with this key within 5 s collapse into one task, run 5 s after the last',
        value: {
          name: first.name,
          input: first.example ?? {},
          debounce: { key: 'reindex-customer-7', delay_ms: 5000 },
          concurrency_key: 'customer-7',
        },
      },
    },
    response: byType((d) => ({
      summary: `A new ${d.name} task, recorded and queued`,
      value: taskRecordExample(d, 'PENDING'),
    })),
    otherResponse: {
      singleton: {
        summary: 'The unfinished task holding the singleton_key answers: nothing was stored',
        value: { ...taskRecordExample(first, 'PENDING'), singletonKey: 'nightly-report' },
      },
      debounced: {
        summary: 'The PENDING task holding the debounce key answers, with this input and its start moved',
        value: {
          ...taskRecordExample(first, 'PENDING'),
          debounceKey: 'reindex-customer-7',
          concurrencyKey: 'customer-7',
          version: 4,
          runAfter: at(5),
          updatedAt: at(3),
        },
      },
    },
  },
  runTasks: {
    request: {
      batch: {
        summary: 'A task of each type, one tagged and one with an idempotency key',
        value: {
          tasks: taskDefinitions.map((d, i) => ({
            name: d.name,
            input: d.example ?? {},
            ...(i === 0 ? { tags: ['nightly'], metadata: { team: 'billing' } } : {}),
            ...(i === 1 ? { idempotency_key: 'import-2026-11-28-line-2' } : {}),
          })),
        },
      },
    },
    response: {
      stored: {
        summary: 'One result per item, in order: created, or the task its key matched',
        value: {
          tasks: taskDefinitions.map((_, i) => ({
            id: EXAMPLE_TASK_ID.replace(/.$/, String(i)),
            created: i !== 1,
            matched: i === 1 ? 'idempotency' : null,
          })),
        },
      },
    },
    otherResponse: {
      matched: {
        summary: 'Nothing created: the unfinished task holding the singleton_key answers',
        value: { tasks: [{ id: EXAMPLE_TASK_ID, created: false, matched: 'singleton' }] },
      },
    },
  },
  getTask: {
    parameters: { id: EXAMPLE_TASK_ID },
    response: byType((d) => ({
      summary: `A finished ${d.name} task: output is its result`,
      value: taskRecordExample(d, 'COMPLETED'),
    })),
  },
  listTasks: {
    parameters: {
      status: ['COMPLETED'],
      name: [first.name],
      created_after: at(0),
      created_before: '2026-11-29T00:00:00.000Z',
      limit: 50,
      cursor,
      input_contains: '{"a":1}',
      output_contains: '3',
      tag: ['nightly'],
      metadata_contains: '{"team":"billing"}',
      parent_id: '7b0e3c52-1d7a-4f35-9a53-3f2f0b6c9e41',
    },
    response: {
      page: {
        summary: 'A page, newest first, with the cursor of the next one',
        value: {
          tasks: taskDefinitions.map((d, i) =>
            taskSummaryExample(d, 'COMPLETED', EXAMPLE_TASK_ID.replace(/.$/, String(i))),
          ),
          next_cursor: cursor,
        },
      },
      last: { summary: 'The last page', value: { tasks: [], next_cursor: null } },
    },
  },
  cancelTask: {
    parameters: { id: EXAMPLE_TASK_ID },
    response: {
      cancelled: { summary: 'A queued task, cancelled', value: taskRecordExample(first, 'CANCELLED') },
    },
  },
  retryTask: {
    parameters: { id: EXAMPLE_TASK_ID },
    response: {
      queued: { summary: 'Queued again, under the same id', value: taskRecordExample(first, 'PENDING') },
    },
  },
  completeToken: {
    parameters: { token: EXAMPLE_TOKEN_ID },
    request: {
      approval: {
        summary: 'A person approves: the handler gets {approved: true}',
        value: { output: { approved: true } },
      },
    },
    response: { completed: { summary: 'Completed: its task resumes', value: completedToken } },
  },
  completeTokenCallback: {
    parameters: { secret: EXAMPLE_TOKEN_SECRET },
    request: {
      webhook: {
        summary: 'An outside service calls back with its result',
        value: { output: { status: 'shipped' } },
      },
    },
    response: { completed: { summary: 'Completed: its task resumes', value: completedToken } },
  },
  cancelTasks: bulkExamples('cancel', { status: ['PENDING'], name: [first.name] }, 'nightly'),
  retryTasks: bulkExamples('retry', { status: ['FAILED'], created_after: at(0) }, 'nightly'),
  getOperation: {
    parameters: { id: EXAMPLE_OPERATION_ID },
    response: {
      running: { summary: 'Under way: 1500 of 10000 cancelled so far', value: operationExample('cancel') },
      done: {
        summary: 'Done: every matching task that was still PENDING or RUNNING is cancelled',
        value: operationExample('cancel', {
          status: 'done',
          done: 9996,
          updatedAt: at(20),
          finishedAt: at(20),
        }),
      },
    },
  },
  listTaskTypes: {
    response: {
      catalog: {
        summary: 'The task types of this server',
        value: taskDefinitions.map((d) => ({
          name: d.name,
          description: d.description,
          parameters: z.toJSONSchema(d.input, { io: 'input' }),
          result: z.toJSONSchema(d.output),
          maxAttempts: d.retry.attempts,
          timeoutMs: d.timeoutMs,
        })),
      },
    },
  },
  whoami: {
    response: {
      key: {
        summary: 'A key that runs and reads tasks',
        value: {
          tenant: 'acme',
          scopes: ['tasks:write', 'tasks:read'],
          keyId: EXAMPLE_KEY_ID,
          authMode: 'required',
        },
      },
      disabled: {
        summary: 'AUTH_MODE=disabled',
        value: {
          tenant: 'default',
          scopes: ['tasks:write', 'tasks:read', 'admin', 'operator'],
          keyId: null,
          authMode: 'disabled',
        },
      },
    },
  },
  getThroughput: {
    response: {
      hour: {
        summary: 'Sixty minutes, oldest first (three shown)',
        value: {
          minutes: [
            { minute: '2026-11-28T11:01:00.000Z', completed: 118, failed: 2 },
            { minute: '2026-11-28T11:02:00.000Z', completed: 0, failed: 0 },
            { minute: '2026-11-28T12:00:00.000Z', completed: 41, failed: 1 },
          ],
        },
      },
    },
  },
  getUsage: {
    parameters: { from: '2026-11-26', to: '2026-11-28', group_by: 'day', tenant: 'acme' },
    response: {
      byDay: {
        summary: 'Three UTC days of a tenant, zeros included',
        value: {
          tenant: 'acme',
          from: '2026-11-26T00:00:00.000Z',
          to: '2026-11-29T00:00:00.000Z',
          group_by: 'day',
          rows: [
            {
              key: '2026-11-26',
              prompt_tokens: 120400,
              completion_tokens: 38100,
              cost_usd: 0.04092,
              calls: 310,
              tasks: 300,
            },
            { key: '2026-11-27', prompt_tokens: 0, completion_tokens: 0, cost_usd: 0, calls: 0, tasks: 0 },
            {
              key: '2026-11-28',
              prompt_tokens: 9800,
              completion_tokens: 2100,
              cost_usd: 0.00273,
              calls: 25,
              tasks: 24,
            },
          ],
          total: {
            prompt_tokens: 130200,
            completion_tokens: 40200,
            cost_usd: 0.04365,
            calls: 335,
            tasks: 324,
          },
          budgets: noBudgets,
        },
      },
      held: {
        summary: 'A tenant whose daily token budget is reached: its LLM tasks are held until midnight UTC',
        value: {
          tenant: 'acme',
          from: '2026-11-28T00:00:00.000Z',
          to: '2026-11-29T00:00:00.000Z',
          group_by: 'model',
          rows: [
            {
              key: 'gpt-4o-mini',
              prompt_tokens: 800300,
              completion_tokens: 200112,
              cost_usd: 0.240112,
              calls: 4100,
              tasks: 4000,
            },
          ],
          total: {
            prompt_tokens: 800300,
            completion_tokens: 200112,
            cost_usd: 0.240112,
            calls: 4100,
            tasks: 4000,
          },
          budgets: budgetReached,
        },
      },
    },
  },
  getQueue: {
    response: { running: { summary: 'Processing', value: queue(false) } },
  },
  pauseQueue: {
    request: {
      everything: { summary: 'Every task type', value: {} },
      one: { summary: `Only ${first.name}`, value: { task_name: first.name } },
    },
    response: {
      everything: { summary: 'Every task type paused', value: queue(true) },
      one: { summary: `Only ${first.name} paused`, value: queue(false, [first.name]) },
    },
  },
  resumeQueue: {
    request: {
      everything: { summary: 'Every task type', value: {} },
      one: { summary: `Only ${first.name}`, value: { task_name: first.name } },
    },
    response: { running: { summary: 'Processing again', value: queue(false) } },
  },
  createApiKey: {
    request: {
      ci: {
        summary: "A key for CI that submits and reads tasks of the caller's tenant",
        value: { name: 'ci', scopes: ['tasks:write', 'tasks:read'] },
      },
      otherTenant: {
        summary: "An operator key making tenant acme's admin key",
        value: { tenant: 'acme', name: 'acme admin', scopes: ['admin'] },
      },
      expiring: {
        summary: 'A read-only key that stops working in 30 days',
        value: { tenant: 'acme', name: 'dashboard', scopes: ['tasks:read'], expires_in_s: 2592000 },
      },
    },
    response: {
      created: {
        summary: 'The key, in key: shown this once; createdBy is the caller’s key',
        value: apiKey({ key: EXAMPLE_KEY, createdBy: '5f0c6a1e-8d2b-4c3a-9e7f-1a2b3c4d5e6f' }),
      },
    },
  },
  listApiKeys: {
    parameters: { tenant: 'acme' },
    response: {
      keys: { summary: "A tenant's keys", value: { keys: [apiKey({ lastUsedAt: at(30) })] } },
    },
  },
  revokeApiKey: {
    parameters: { id: EXAMPLE_KEY_ID },
    response: { revoked: { summary: 'Revoked from now on', value: apiKey({ revokedAt: at(40) }) } },
  },
  getTenantLimits: {
    parameters: { tenant: 'acme' },
    response: {
      set: {
        summary: 'A tenant with limits of its own (no defaults set on the server)',
        value: tenantLimits(acmeLimits, acmeLimits),
      },
      defaults: { summary: 'A tenant with nothing set: the defaults', value: tenantLimits({}, {}) },
      held: {
        summary: 'A tenant over its daily LLM token budget: its LLM tasks are held until midnight UTC',
        value: tenantLimits(acmeLimits, acmeLimits, { budgets: budgetReached }),
      },
    },
  },
  setTenantLimits: {
    parameters: { tenant: 'acme' },
    request: {
      set: {
        summary: 'At most 10 running and 1000 queued tasks',
        value: { max_running: 10, max_queued: 1000 },
      },
      budgets: {
        summary: 'LLM budgets: a million tokens a day, $500 a month',
        value: { llm_tokens_per_day: 1_000_000, llm_cost_per_month_usd: 500 },
      },
      one: { summary: 'Only the start rate (the others unchanged)', value: { starts_per_minute: 600 } },
      clearOne: { summary: 'max_queued back to the default', value: { max_queued: null } },
    },
    response: { set: { summary: 'As set', value: tenantLimits(acmeLimits, acmeLimits) } },
  },
  clearTenantLimits: {
    parameters: { tenant: 'acme' },
    response: { defaults: { summary: 'The defaults again', value: tenantLimits({}, {}) } },
  },
  listTenants: {
    parameters: { limit: 50, cursor: 'acme' },
    response: {
      page: {
        summary: 'A page of tenants, by name',
        value: {
          tenants: [
            tenantLimits(acmeLimits, acmeLimits),
            tenantLimits({}, {}, { tenant: 'globex', running: 0, queued: 3 }),
          ],
          next_cursor: 'globex',
        },
      },
      last: { summary: 'The last page', value: { tenants: [], next_cursor: null } },
    },
  },
  getTypeLimits: {
    parameters: { name: first.name },
    response: {
      set: {
        summary: 'A task type with limits set at runtime',
        value: typeLimits({ maxRunning: 20, maxRunningPerKey: 2 }, { maxRunning: 20, maxRunningPerKey: 2 }),
      },
    },
  },
  setTypeLimits: {
    parameters: { name: first.name },
    request: {
      set: {
        summary: 'At most 20 running, 2 per concurrency key',
        value: { max_running: 20, max_running_per_key: 2 },
      },
    },
    response: {
      set: {
        summary: 'As set',
        value: typeLimits({ maxRunning: 20, maxRunningPerKey: 2 }, { maxRunning: 20, maxRunningPerKey: 2 }),
      },
    },
  },
  clearTypeLimits: {
    parameters: { name: first.name },
    response: { defaults: { summary: 'Its defineTask defaults again', value: typeLimits({}, {}) } },
  },
  createSchedule: {
    request: {
      nightly: { summary: 'Every night at 02:00, Paris time, declared by its key', value: scheduleRequest },
      seconds: {
        summary: 'Every 10 seconds (6 fields: seconds first), UTC, every missed tick caught up',
        value: { name: first.name, input: first.example ?? {}, cron: '*/10 * * * * *', catch_up: 'all' },
      },
    },
    response: { created: { summary: 'The schedule, created', value: schedule() } },
    otherResponse: {
      updated: {
        summary: 'The schedule with this key, updated to these values',
        value: schedule({ updatedAt: at(30) }),
      },
    },
  },
  listSchedules: {
    parameters: { limit: 50, cursor: EXAMPLE_SCHEDULE_ID },
    response: {
      page: {
        summary: "A page of the tenant's schedules",
        value: { schedules: [schedule()], next_cursor: null },
      },
    },
  },
  getSchedule: {
    parameters: { id: EXAMPLE_SCHEDULE_ID },
    response: {
      schedule: {
        summary: 'Its next five fire times (02:00 Paris time is 01:00 UTC in winter) and its last run',
        value: {
          ...schedule(),
          nextFires: [
            '2026-11-29T01:00:00.000Z',
            '2026-11-30T01:00:00.000Z',
            '2026-12-01T01:00:00.000Z',
            '2026-12-02T01:00:00.000Z',
            '2026-12-03T01:00:00.000Z',
          ],
          runs: [{ id: EXAMPLE_TASK_ID, scheduledFor: '2026-11-28T01:00:00.000Z', status: 'COMPLETED' }],
        },
      },
    },
  },
  updateSchedule: {
    parameters: { id: EXAMPLE_SCHEDULE_ID },
    request: {
      pause: { summary: 'Pause it', value: { paused: true } },
      cron: {
        summary: 'At 03:30 instead, New York time',
        value: { cron: '30 3 * * *', timezone: 'America/New_York' },
      },
    },
    response: { paused: { summary: 'Paused', value: schedule({ paused: true, updatedAt: at(30) }) } },
  },
  deleteSchedule: {
    parameters: { id: EXAMPLE_SCHEDULE_ID },
    response: { deleted: { summary: 'The schedule as it was; its tasks stay', value: schedule() } },
  },
  taskEvents: {
    parameters: { id: EXAMPLE_TASK_ID, 'Last-Event-ID': '1', lastEventId: '1' },
  },
  createWebhook: {
    request: {
      finished: {
        summary: "Told when the caller's tasks complete or fail",
        value: { url: 'https://hooks.example.com/tasker', events: ['task.completed', 'task.failed'] },
      },
      oneType: {
        summary: "An operator's, for tenant acme's reports only, every way they end",
        value: {
          tenant: 'acme',
          url: 'https://hooks.example.com/reports',
          events: ['task.completed', 'task.failed', 'task.cancelled', 'task.expired'],
          task_names: [first.name],
        },
      },
    },
    response: {
      created: {
        summary: 'The webhook, with its secret in secret: shown this once',
        value: webhook({ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }),
      },
    },
  },
  listWebhooks: {
    parameters: { tenant: 'acme' },
    response: { webhooks: { summary: "A tenant's webhooks", value: { webhooks: [webhook()] } } },
  },
  getWebhook: {
    parameters: { id: EXAMPLE_WEBHOOK_ID },
    response: { webhook: { summary: 'The webhook (never its secret)', value: webhook() } },
  },
  deleteWebhook: {
    parameters: { id: EXAMPLE_WEBHOOK_ID },
    response: { deleted: { summary: 'Deleted, with its deliveries', value: webhook() } },
  },
  testWebhook: {
    parameters: { id: EXAMPLE_WEBHOOK_ID },
    response: {
      delivered: {
        summary: 'The receiver answered 200',
        value: { id: EXAMPLE_DELIVERY_ID, delivered: true, attempt: delivered },
      },
      refused: {
        summary: 'The receiver answered 503',
        value: { id: EXAMPLE_DELIVERY_ID, delivered: false, attempt: refused },
      },
    },
  },
  listWebhookDeliveries: {
    parameters: { id: EXAMPLE_WEBHOOK_ID, status: 'delivered', limit: 20 },
    response: {
      deliveries: {
        summary: 'Delivered at the second attempt; another one waiting for its next',
        value: {
          deliveries: [
            delivery({
              id: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0',
              status: 'pending',
              event: 'task.failed',
              attempts: 1,
              nextAttemptAt: at(9),
              lastStatus: 503,
              lastError: 'HTTP 503',
              log: [refused],
            }),
            delivery({ attempts: 2, log: [refused, delivered] }),
          ],
        },
      },
    },
  },
  rotateTaskWebhookSecret: {
    request: {
      mine: { summary: "The caller's tenant", value: {} },
      other: { summary: "An operator key, for tenant acme's tasks", value: { tenant: 'acme' } },
    },
    response: {
      rotated: {
        summary: 'The new secret: shown this once',
        value: { tenant: 'acme', secret: 'whsec_3q2+7wAAAAD/Zm9vYmFyYmF6cXV4cXV1eA==', createdAt: at(60) },
      },
    },
  },
  redeliverWebhook: {
    parameters: { id: EXAMPLE_WEBHOOK_ID, delivery_id: EXAMPLE_DELIVERY_ID },
    response: {
      pending: {
        summary: 'A failed delivery, due again now',
        value: delivery({
          status: 'pending',
          attempts: 0,
          nextAttemptAt: at(50),
          lastStatus: null,
          lastError: 'connect ECONNREFUSED 203.0.113.7:443',
          log: [{ at: at(3), status: null, error: 'connect ECONNREFUSED 203.0.113.7:443', durationMs: 3 }],
          updatedAt: at(50),
        }),
      },
    },
  },
};
