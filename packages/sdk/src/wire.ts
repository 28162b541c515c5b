/**
 * The SDK's edge: its camelCase options become the router's snake_case inputs here, and nowhere else.
 * The tables below are checked against both sides, so a renamed field on either one is a compile error.
 */
import { TaskerValidationError } from './errors.ts';
import type {
  LimitsInput,
  TenantLimitsInput,
  TenantListOptions,
  TenantPage,
  TypeLimitsInput,
} from './limits.ts';
import type { NewSchedule, ScheduleChange, ScheduleListOptions, SchedulePage } from './schedules.ts';
import type {
  DebounceOptions,
  ListOptions,
  ListResult,
  QueueOptions,
  RunManyItem,
  RunOptions,
  TaskName,
  TaskSummary,
  WireInputs,
  WireOutputs,
} from './types.ts';
import type { NewWebhook } from './webhooks.ts';

type RunWire = Omit<WireInputs['runTask'], 'task_name' | 'task_parameters'>;
type ListWire = WireInputs['listTasks'];
type QueueWire = Extract<WireInputs['pauseQueue'], object>;
type TenantLimitsWire = Omit<WireInputs['setTenantLimits'], 'tenant'>;
type TypeLimitsWire = Omit<WireInputs['setTypeLimits'], 'name'>;
type TenantListWire = WireInputs['listTenants'];
type ScheduleWire = WireInputs['createSchedule'];
type ScheduleChangeWire = Omit<WireInputs['updateSchedule'], 'id'>;
type ScheduleListWire = WireInputs['listSchedules'];
type WebhookWire = WireInputs['createWebhook'];

/** Each run option and the router's name for it. */
const RUN_FIELDS = {
  priority: 'priority',
  delayMs: 'delay_ms',
  runAt: 'run_at',
  maxAttempts: 'max_attempts',
  timeoutMs: 'timeout_ms',
  ttlMs: 'ttl_ms',
  cacheTtlMs: 'cache_ttl_ms',
  idempotencyKey: 'idempotency_key',
  concurrencyKey: 'concurrency_key',
  singletonKey: 'singleton_key',
  debounce: 'debounce',
  tags: 'tags',
  metadata: 'metadata',
  webhookUrl: 'webhook_url',
} as const satisfies { [K in keyof Required<RunOptions>]: keyof RunWire };

/** Each field of `debounce` and the router's name for it. */
const DEBOUNCE_FIELDS = {
  key: 'key',
  delayMs: 'delay_ms',
} as const satisfies { [K in keyof Required<DebounceOptions>]: keyof NonNullable<RunWire['debounce']> };

/** Each list option and the router's name for it. */
const LIST_FIELDS = {
  status: 'status',
  name: 'name',
  createdAfter: 'created_after',
  createdBefore: 'created_before',
  inputContains: 'input_contains',
  outputContains: 'output_contains',
  tags: 'tag',
  metadataContains: 'metadata_contains',
  parentId: 'parent_id',
  limit: 'limit',
  cursor: 'cursor',
} as const satisfies { [K in keyof Required<ListOptions>]: keyof ListWire };

/** Each queue option and the router's name for it. */
const QUEUE_FIELDS = {
  taskName: 'task_name',
} as const satisfies { [K in keyof Required<QueueOptions>]: keyof QueueWire };

/** Each limit of a tenant and the router's name for it. */
const LIMIT_FIELDS = {
  maxRunning: 'max_running',
  maxQueued: 'max_queued',
  startsPerMinute: 'starts_per_minute',
} as const satisfies { [K in keyof Required<LimitsInput>]: keyof TenantLimitsWire };

/** Each limit and LLM budget of a tenant and the router's name for it. */
const TENANT_LIMIT_FIELDS = {
  ...LIMIT_FIELDS,
  llmTokensPerDay: 'llm_tokens_per_day',
  llmCostPerMonthUsd: 'llm_cost_per_month_usd',
} as const satisfies { [K in keyof Required<TenantLimitsInput>]: keyof TenantLimitsWire };

/** Each limit of a task type (a tenant's, and one per concurrency key) and the router's name for it. */
const TYPE_LIMIT_FIELDS = {
  ...LIMIT_FIELDS,
  maxRunningPerKey: 'max_running_per_key',
} as const satisfies { [K in keyof Required<TypeLimitsInput>]: keyof TypeLimitsWire };

/** Each option of a paged list (`tenants.list()`, `schedules.list()`): the router's own names. */
const PAGE_FIELDS = {
  limit: 'limit',
  cursor: 'cursor',
} as const satisfies { [K in keyof Required<TenantListOptions>]: keyof TenantListWire } & {
  [K in keyof Required<ScheduleListOptions>]: keyof ScheduleListWire;
};

/** Each field of a new schedule and the router's name for it. */
const SCHEDULE_FIELDS = {
  name: 'name',
  input: 'input',
  cron: 'cron',
  timezone: 'timezone',
  key: 'key',
  catchUp: 'catch_up',
  paused: 'paused',
  priority: 'priority',
  maxAttempts: 'max_attempts',
  timeoutMs: 'timeout_ms',
  ttlMs: 'ttl_ms',
  concurrencyKey: 'concurrency_key',
} as const satisfies { [K in keyof Required<NewSchedule>]: keyof ScheduleWire };

/** Each field of a schedule's change: those of a new schedule it may change, by the same names. */
const SCHEDULE_CHANGE_FIELDS = {
  cron: SCHEDULE_FIELDS.cron,
  timezone: SCHEDULE_FIELDS.timezone,
  input: SCHEDULE_FIELDS.input,
  paused: SCHEDULE_FIELDS.paused,
  catchUp: SCHEDULE_FIELDS.catchUp,
} as const satisfies { [K in keyof Required<ScheduleChange>]: keyof ScheduleChangeWire };

/** Each field of a new webhook and the router's name for it. */
const WEBHOOK_FIELDS = {
  url: 'url',
  events: 'events',
  taskNames: 'task_names',
  tenant: 'tenant',
} as const satisfies { [K in keyof Required<NewWebhook>]: keyof WebhookWire };

/** The router's name → the caller's, for each table a refusal can name (`limits`: a type's, a superset of a tenant's). */
const inverse = (fields: Record<string, string>) =>
  new Map(Object.entries(fields).map(([camel, wire]) => [wire, camel]));
const CAMEL = {
  run: inverse(RUN_FIELDS),
  list: inverse(LIST_FIELDS),
  queue: inverse(QUEUE_FIELDS),
  limits: inverse(TYPE_LIMIT_FIELDS),
  /** A change's fields are a new schedule's. */
  schedule: inverse(SCHEDULE_FIELDS),
  webhook: inverse(WEBHOOK_FIELDS),
};
/** The fields of an object option, by the option's (camelCase) name. */
const NESTED: Readonly<Record<string, Map<string, string>>> = { debounce: inverse(DEBOUNCE_FIELDS) };

/** Options are camelCase since 0.2.0: an unknown key (say `delay_ms` from 0.1) is refused, not ignored. */
function checkKeys(options: object, fields: Record<string, string>, what: string, prefix = ''): void {
  const issues = Object.keys(options)
    .filter((key) => !Object.hasOwn(fields, key))
    .map((key) => {
      const camel = Object.keys(fields).find((k) => fields[k] === key);
      return {
        path: `${prefix}${key}`,
        message: camel
          ? `Unknown ${what} option "${key}": options are camelCase since version 0.2.0 of the SDK, use "${camel}"`
          : `Unknown ${what} option "${key}"`,
      };
    });
  if (issues.length > 0) throw new TaskerValidationError(issues.map((i) => i.message).join('; '), issues);
}

function isoTime(value: Date | string | undefined, path: string): string | undefined {
  if (!(value instanceof Date)) return value;
  if (Number.isNaN(value.getTime())) {
    throw new TaskerValidationError(`${path} is an invalid Date`, [{ path, message: 'Invalid Date' }]);
  }
  return value.toISOString();
}

function list<T>(value: T | readonly T[] | undefined): T[] | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? [...(value as readonly T[])] : [value as T];
}

export function runOptionsToWire(options: RunOptions): RunWire {
  checkKeys(options, RUN_FIELDS, 'run');
  const { debounce } = options;
  // Anything else than an object goes as it is: the server names what is wrong with it.
  const debounceObject = typeof debounce === 'object' && debounce !== null;
  if (debounceObject) checkKeys(debounce, DEBOUNCE_FIELDS, 'debounce', 'debounce.');
  return {
    priority: options.priority,
    delay_ms: options.delayMs,
    run_at: isoTime(options.runAt, 'runAt'),
    max_attempts: options.maxAttempts,
    timeout_ms: options.timeoutMs,
    ttl_ms: options.ttlMs,
    cache_ttl_ms: options.cacheTtlMs,
    idempotency_key: options.idempotencyKey,
    concurrency_key: options.concurrencyKey,
    singleton_key: options.singletonKey,
    debounce: debounceObject ? { key: debounce.key, delay_ms: debounce.delayMs } : debounce,
    tags: options.tags,
    metadata: options.metadata,
    webhook_url: options.webhookUrl,
  };
}

type BatchItemWire = WireInputs['runTasks']['tasks'][number];

/** The tasks of `runMany()`: each item's run options checked and renamed as `run()`'s are. */
export function runManyToWire(items: readonly RunManyItem[]): BatchItemWire[] {
  return items.map(({ name, input, ...options }, index) => {
    try {
      return { ...runOptionsToWire(options), name, input: input as Record<string, unknown> };
    } catch (error) {
      // Name the item, as the server's issues do (`tasks.3.priority`).
      if (error instanceof TaskerValidationError)
        for (const issue of error.issues) issue.path = `tasks.${index}.${issue.path}`;
      throw error;
    }
  });
}

/** The server names a batch's bad fields `tasks.<index>.<wire name>`: name them as the caller wrote them. */
export function renameBatchIssuePaths(error: unknown): unknown {
  if (!(error instanceof TaskerValidationError)) return error;
  for (const issue of error.issues) {
    const [head, index, field, ...rest] = issue.path.split('.');
    if (head !== 'tasks' || index === undefined || field === undefined) continue;
    const renamed = CAMEL.run.get(field) ?? field;
    const inner = rest[0] === undefined ? undefined : (NESTED[renamed]?.get(rest[0]) ?? rest[0]);
    issue.path = [head, index, renamed, ...(inner === undefined ? [] : [inner]), ...rest.slice(1)].join('.');
  }
  return error;
}

/** A payload search travels as JSON text, as the REST query parameter does. */
function jsonText(value: unknown): string | undefined {
  return value === undefined ? undefined : JSON.stringify(value);
}

export function listOptionsToWire<N extends TaskName>(options: ListOptions<N>): ListWire {
  checkKeys(options, LIST_FIELDS, 'list');
  return {
    status: list(options.status),
    name: list(options.name),
    created_after: isoTime(options.createdAfter, 'createdAfter'),
    created_before: isoTime(options.createdBefore, 'createdBefore'),
    input_contains: jsonText(options.inputContains),
    output_contains: jsonText(options.outputContains),
    tag: list(options.tags),
    metadata_contains: jsonText(options.metadataContains),
    parent_id: options.parentId,
    limit: options.limit,
    cursor: options.cursor,
  };
}

export function queueOptionsToWire(options: QueueOptions): QueueWire {
  checkKeys(options, QUEUE_FIELDS, 'queue');
  return { task_name: options.taskName };
}

export function listResultFromWire(page: WireOutputs['listTasks']): ListResult {
  return { tasks: page.tasks as TaskSummary[], nextCursor: page.next_cursor };
}

/** The limits common to tenants and task types. */
function limitsToWire(limits: LimitsInput): TenantLimitsWire {
  return {
    max_running: limits.maxRunning,
    max_queued: limits.maxQueued,
    starts_per_minute: limits.startsPerMinute,
  };
}

/** A tenant's limits to set: an unknown one (`maxRunningPerKey` too: a type's) is refused here, naming it. */
export function tenantLimitsToWire(limits: TenantLimitsInput): TenantLimitsWire {
  checkKeys(limits, TENANT_LIMIT_FIELDS, 'limit');
  return {
    ...limitsToWire(limits),
    llm_tokens_per_day: limits.llmTokensPerDay,
    llm_cost_per_month_usd: limits.llmCostPerMonthUsd,
  };
}

/** A task type's limits to set: an unknown one is refused here, naming it. */
export function typeLimitsToWire(limits: TypeLimitsInput): TypeLimitsWire {
  checkKeys(limits, TYPE_LIMIT_FIELDS, 'limit');
  return { ...limitsToWire(limits), max_running_per_key: limits.maxRunningPerKey };
}

export function tenantListOptionsToWire(options: TenantListOptions): TenantListWire {
  checkKeys(options, PAGE_FIELDS, 'tenants list');
  return { limit: options.limit, cursor: options.cursor };
}

export function tenantPageFromWire(page: WireOutputs['listTenants']): TenantPage {
  return { tenants: page.tenants, nextCursor: page.next_cursor };
}

export function scheduleToWire(schedule: NewSchedule): ScheduleWire {
  checkKeys(schedule, SCHEDULE_FIELDS, 'schedule');
  return {
    name: schedule.name,
    input: schedule.input as ScheduleWire['input'],
    cron: schedule.cron,
    timezone: schedule.timezone,
    key: schedule.key,
    catch_up: schedule.catchUp,
    paused: schedule.paused,
    priority: schedule.priority,
    max_attempts: schedule.maxAttempts,
    timeout_ms: schedule.timeoutMs,
    ttl_ms: schedule.ttlMs,
    concurrency_key: schedule.concurrencyKey,
  };
}

export function scheduleChangeToWire(change: ScheduleChange): ScheduleChangeWire {
  checkKeys(change, SCHEDULE_CHANGE_FIELDS, 'schedule change');
  return {
    cron: change.cron,
    timezone: change.timezone,
    input: change.input as ScheduleChangeWire['input'],
    paused: change.paused,
    catch_up: change.catchUp,
  };
}

export function scheduleListOptionsToWire(options: ScheduleListOptions): ScheduleListWire {
  checkKeys(options, PAGE_FIELDS, 'schedules list');
  return { limit: options.limit, cursor: options.cursor };
}

export function schedulePageFromWire(page: WireOutputs['listSchedules']): SchedulePage {
  return { schedules: page.schedules, nextCursor: page.next_cursor };
}

export function webhookToWire(webhook: NewWebhook): WebhookWire {
  checkKeys(webhook, WEBHOOK_FIELDS, 'webhook');
  return { url: webhook.url, events: webhook.events, task_names: webhook.taskNames, tenant: webhook.tenant };
}

/** Which of the tables above names the fields of a procedure's input. */
export type WireFields = keyof typeof CAMEL;

/** A validation error of the router names its fields: name them as the caller wrote them. */
export function renameIssuePaths(error: unknown, fields: WireFields): unknown {
  if (!(error instanceof TaskerValidationError)) return error;
  const camel = CAMEL[fields];
  for (const issue of error.issues) {
    const [head, next, ...rest] = issue.path.split('.');
    const renamed = head === undefined ? undefined : camel.get(head);
    if (!renamed) continue;
    const inner = next === undefined ? undefined : (NESTED[renamed]?.get(next) ?? next);
    issue.path = [renamed, ...(inner === undefined ? [] : [inner]), ...rest].join('.');
  }
  return error;
}
