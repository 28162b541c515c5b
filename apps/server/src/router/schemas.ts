import { MAX_PRIORITY, type SubmitRequest } from '@tasker/engine';
import { z } from 'zod';

/** A task id in a route or input. */
export const taskUuid = z.uuid().describe('The id returned by run-task');

/** A day in milliseconds: the bounds of durations and ranges the API takes. */
export const DAY_MS = 24 * 3600 * 1000;

/** A page as the API writes it: its items, and the cursor of the next page as `next_cursor`. */
export function restPage<T extends { nextCursor: string | null }>({
  nextCursor,
  ...items
}: T): Omit<T, 'nextCursor'> & { next_cursor: string | null } {
  return { ...items, next_cursor: nextCursor };
}

/**
 * A key of a submission (concurrency, singleton, debounce): per tenant, so another tenant's same key
 * never meets it; 1 to 200 characters, none of them a control character.
 */
const submitKey = (description: string) =>
  z
    .string()
    .min(1)
    .max(200)
    .regex(/^\P{Cc}*$/u, 'must hold no control character')
    .describe(`${description}. 1 to 200 characters, per tenant`);

/** Tags a task carries at most. */
export const MAX_TAGS = 10;
/** Bytes of UTF-8 a task's metadata takes at most, as JSON text (JSON.stringify). */
export const MAX_METADATA_BYTES = 4096;

/** The earliest time PostgreSQL takes as ISO 8601 text: year 1 (a year 0 or before is an error there). */
const EARLIEST_TIME = Date.parse('0001-01-01T00:00:00Z');

/**
 * An ISO 8601 date-time with its offset, that PostgreSQL can hold (from the year 1, in UTC).
 * The year check passes text that is no date-time at all: zod runs it after a failed format check
 * too, and a caller should read one issue per field, the format's.
 */
export const isoDateTime = () =>
  z.iso.datetime({ offset: true }).refine((text) => {
    const time = Date.parse(text);
    return Number.isNaN(time) || time >= EARLIEST_TIME;
  }, 'must be in the year 1 or later (UTC)');

/** A tag: 1 to 64 characters, no control character and no comma (a query-string list separates tags with commas). */
export const tagSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[^\p{Cc},]*$/u, 'must hold no control character and no comma')
  .describe('A label: 1 to 64 characters, no control character, no comma');

/** The longest cache_ttl_ms a submission may ask: 7 days. */
export const MAX_CACHE_TTL_MS = 7 * DAY_MS;

/** How a task is run, beside its type and parameters: the same options, in the same words, on every submit route. */
export const runOptionsShape = {
  priority: z
    .number()
    .int()
    .min(0)
    .max(MAX_PRIORITY)
    .optional()
    .describe('0 (default) to 100: higher runs first'),
  delay_ms: z
    .number()
    .int()
    .min(0)
    .max(30 * DAY_MS)
    .optional()
    .describe('Start no sooner than this many ms from now'),
  run_at: isoDateTime()
    .optional()
    .describe('Start no sooner than this time, within 30 days (instead of delay_ms)'),
  max_attempts: z
    .number()
    .int()
    .min(1)
    .max(100)
    .optional()
    .describe("Attempts in all (default: the task type's)"),
  timeout_ms: z
    .number()
    .int()
    .min(100)
    .max(DAY_MS)
    .optional()
    .describe("An attempt running longer is aborted and counts as failed (default: the task type's)"),
  ttl_ms: z
    .number()
    .int()
    .min(100)
    .max(30 * DAY_MS)
    .optional()
    .describe(
      "Not started within this many ms (counted from run_at/delay_ms, else from now), the task ends EXPIRED without running, also while paused (default: the task type's, else never)",
    ),
  cache_ttl_ms: z
    .number()
    .int()
    .min(0)
    .max(MAX_CACHE_TTL_MS)
    .optional()
    .describe(
      "A task type that calls a model only: its identical calls (same tenant, model, messages, parameters) within this many ms are answered from the cache (no provider call, no cost, marked cached); 0: no cache (default: the task type's llm.cacheTtlMs, else none)",
    ),
  idempotency_key: z
    .string()
    .min(1)
    .max(200)
    // `$…` is Tasker's own (a child task's is `$child:<parent>:…`): a client's key could otherwise
    // stand in for a parent's child.
    .refine((key) => !key.startsWith('$'), { error: 'must not start with "$" (reserved for child tasks)' })
    .optional()
    .describe(
      'The same key within IDEMPOTENCY_WINDOW_SECONDS returns the first task instead of a new one; not starting with "$" (reserved)',
    ),
  concurrency_key: submitKey(
    "Tasks with one concurrency key share that key's concurrency limits (their task type's max_running_per_key); default: the tenant",
  ).optional(),
  singleton_key: submitKey(
    'While a task of this tenant with this key is PENDING or RUNNING, a submission with it returns that task instead of a new one (POST /tasks: 200, not 201; run-task: deduplicated true); once it finished, the key is free',
  ).optional(),
  debounce: z
    .strictObject({
      key: submitKey('Submissions with this key collapse into one PENDING task'),
      delay_ms: z
        .number()
        .int()
        .min(0)
        .max(DAY_MS)
        .describe('The task starts this many ms after the last submission with the key (0 to 1 day)'),
    })
    .optional()
    .describe(
      "Submissions of this tenant with the same key, while its task has not started, collapse into that one PENDING task: it starts delay_ms after the last of them, with the last one's parameters and options, and every caller gets its id (POST /tasks: 200 when it joined; run-task: deduplicated true). Not with delay_ms, run_at, idempotency_key or singleton_key",
    ),
  tags: z
    .array(tagSchema)
    .max(MAX_TAGS)
    // Duplicates are dropped (the first of each kept, in order): a tag is there or not.
    .transform((tags) => [...new Set(tags)])
    .optional()
    .describe(
      `Labels to find the task by (GET /tasks?tag=…): at most ${MAX_TAGS}, each 1 to 64 characters with no control character and no comma; duplicates are dropped`,
    ),
  metadata: z
    .record(z.string(), z.unknown())
    .superRefine((value, ctx) => {
      const bytes = Buffer.byteLength(JSON.stringify(value));
      if (bytes > MAX_METADATA_BYTES)
        ctx.addIssue({
          code: 'custom',
          message: `must be at most ${MAX_METADATA_BYTES} bytes as JSON (it is ${bytes})`,
        });
    })
    .optional()
    .describe(
      `A JSON object of yours, kept with the task and shown with it (GET /tasks?metadata_contains=… finds it): at most ${MAX_METADATA_BYTES} bytes as JSON text`,
    ),
  webhook_url: z
    .string()
    .max(2000)
    .optional()
    .describe(
      "When the task finishes (completed, failed, cancelled or expired), its final state is POSTed here at least once, signed with the tenant's task webhook secret (POST /webhooks/task-secret) as for a webhook; no loopback, private or link-local address",
    ),
};

const runOptions = z.object(runOptionsShape);
type RunOptions = z.output<typeof runOptions>;

/** The checks that span two run options (a `superRefine` of every submit input). */
export function checkRunOptions(value: Pick<RunOptions, 'delay_ms' | 'run_at'>, ctx: z.RefinementCtx): void {
  if (value.delay_ms !== undefined && value.run_at !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['run_at'], message: 'give delay_ms or run_at, not both' });
  }
  if (value.run_at !== undefined && Date.parse(value.run_at) - Date.now() > 30 * DAY_MS) {
    ctx.addIssue({ code: 'custom', path: ['run_at'], message: 'must be within 30 days from now' });
  }
}

/** The run options as the engine takes them. */
export function toSubmitOptions(options: RunOptions): Omit<SubmitRequest, 'tenantId' | 'name' | 'input'> {
  return {
    priority: options.priority,
    delayMs: options.delay_ms,
    runAt: options.run_at ? new Date(options.run_at) : undefined,
    maxAttempts: options.max_attempts,
    timeoutMs: options.timeout_ms,
    ttlMs: options.ttl_ms,
    cacheTtlMs: options.cache_ttl_ms,
    idempotencyKey: options.idempotency_key,
    concurrencyKey: options.concurrency_key,
    singletonKey: options.singleton_key,
    debounce: options.debounce && { key: options.debounce.key, delayMs: options.debounce.delay_ms },
    tags: options.tags,
    metadata: options.metadata,
    webhookUrl: options.webhook_url,
  };
}
