import { CATCH_UP_POLICIES } from '@tasker/db';
import { isoDate, SCHEDULE_NEXT_FIRES, SCHEDULE_RUNS_SHOWN, taskStatusSchema } from '@tasker/engine';
import { taskNames } from '@tasker/tasks';
import { z } from 'zod';
import { readProcedure, router, writeProcedure } from '../trpc.ts';
import { restPage, runOptionsShape } from './schemas.ts';

const scheduleId = z.uuid().describe('The id of the schedule (POST /schedules answers it)');

const cron = z
  .string()
  .min(1)
  .max(200)
  .describe(
    '5 fields (minute hour day month weekday) or 6 (second first); *, ranges a-b, steps */n, lists a,b, names JAN..DEC, SUN..SAT. ' +
      'Refused (400) when it never fires, or fires more often than SCHEDULE_MIN_INTERVAL_MS (default 1 s)',
  );
const timezone = z
  .string()
  .min(1)
  .max(64)
  .describe(
    'An IANA time zone (default UTC), e.g. Europe/Paris: the cron reads its wall clock. Daylight saving: a time that happens twice fires once, at its first occurrence; a time that never happens fires once, at the first instant after the gap',
  );
const catchUp = z
  .enum(CATCH_UP_POLICIES)
  .describe(
    'What the ticks missed while nothing fired (every worker down, longer than SCHEDULE_GRACE_MS) become: none (dropped), latest (default: the latest of them fires), all (they all fire, at most SCHEDULE_CATCH_UP_MAX, the latest)',
  );
const paused = z
  .boolean()
  .describe('A paused schedule fires nothing; a resume starts from the next tick after now');
const scheduleInput = z
  .record(z.string(), z.unknown())
  .describe("The parameters of every task it creates, checked against the task type's schema");

const key = z
  .string()
  .min(1)
  .max(200)
  .regex(/^\P{Cc}*$/u, 'must hold no control character')
  .describe(
    "The caller's name for the schedule, unique per tenant: a create with a key the tenant already uses updates that schedule (200 instead of 201), so deploy scripts can declare schedules idempotently. 1 to 200 characters",
  );

/** POST /schedules: a task type and its input, the cron and zone, the run options of its tasks. */
export const createScheduleInput = z.strictObject({
  name: z.enum(taskNames).describe('The task type each tick runs'),
  input: scheduleInput,
  cron,
  timezone: timezone.optional(),
  key: key.optional(),
  catch_up: catchUp.optional(),
  paused: paused.optional(),
  priority: runOptionsShape.priority,
  max_attempts: runOptionsShape.max_attempts,
  timeout_ms: runOptionsShape.timeout_ms,
  ttl_ms: runOptionsShape.ttl_ms,
  concurrency_key: runOptionsShape.concurrency_key,
});

const when = isoDate.nullable();

export const scheduleSchema = z
  .object({
    id: z.uuid(),
    key: z.string().nullable().describe('Unique per tenant; null: none'),
    name: z.string().describe('The task type each tick runs'),
    input: z.unknown().describe('The parameters of its tasks'),
    cron: z.string().describe('Normalised: fields separated by one space'),
    timezone: z.string().describe('The IANA zone, canonical'),
    catchUp: z.enum(CATCH_UP_POLICIES),
    paused: z.boolean(),
    priority: z.number().int(),
    maxAttempts: z.number().int().nullable().describe("null: the task type's"),
    timeoutMs: z.number().int().nullable().describe("null: the task type's"),
    ttlMs: z.number().int().nullable().describe("null: the task type's, else none"),
    concurrencyKey: z.string().nullable().describe('null: the tenant'),
    nextFireAt: when.describe('The next tick to fire (null: the cron fires no more)'),
    lastFireAt: when.describe('The latest tick fired'),
    skippedRuns: z
      .number()
      .int()
      .describe("Ticks that made no task: refused by the tenant's or type's max_queued, or a task type gone"),
    lastSkippedFor: when.describe('The latest skipped tick'),
    lastSkipReason: z.string().nullable().describe('QUEUE_FULL or UNKNOWN_TYPE'),
    createdAt: isoDate,
    updatedAt: isoDate,
  })
  .meta({ id: 'Schedule' });

export const scheduleDetailSchema = scheduleSchema
  .extend({
    nextFires: z
      .array(isoDate)
      .describe(
        `Its next ${SCHEDULE_NEXT_FIRES} fire times after now (a paused schedule's too: what it would fire)`,
      ),
    runs: z
      .array(
        z.object({
          id: z.uuid().describe('The task'),
          scheduledFor: isoDate.describe('The tick it was made for'),
          status: taskStatusSchema,
        }),
      )
      .describe(`Its latest ${SCHEDULE_RUNS_SHOWN} tasks, newest tick first`),
  })
  .meta({ id: 'ScheduleDetail' });

const NOT_FOUND = 'No schedule of this tenant has this id';

/**
 * Schedules (issue 20): a task type run at each tick of a cron in a time zone, per tenant. Every
 * worker fires the due ticks; each tick makes exactly one ordinary task (schedule_id,
 * scheduled_for), which goes through the tenant's limits and fair dequeue like any other.
 */
export const schedulesRouter = router({
  createSchedule: writeProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/schedules',
        summary: 'Create a schedule (or update the one with this key)',
        description:
          "Checks the cron, the zone, the task type and its input (nothing is stored when one is wrong: 400 naming it), then records the schedule for the caller's tenant: 201. " +
          'With a key the tenant already uses, that schedule takes these values instead: 200. Every tick then creates one task carrying schedule_id and scheduled_for, exactly once whatever the number of servers and workers.',
        tags: ['schedules'],
        successStatus: 201,
        successDescription: 'The schedule, created',
        otherSuccess: { status: 200, description: 'The schedule with this key, updated to these values' },
        errorResponses: {
          400: "An unknown name, input that does not fit its task type's schema, a malformed cron, one that never fires or fires more often than SCHEDULE_MIN_INTERVAL_MS, a zone that is not an IANA name, or a run option out of range",
        },
        unavailable: 'PostgreSQL is unavailable',
      },
      taskParameters: 'input',
    })
    .input(createScheduleInput)
    .output(scheduleSchema)
    .mutation(async ({ ctx, input }) => {
      const { schedule, created } = await ctx.schedules.create({
        tenantId: ctx.identity.tenantId,
        name: input.name,
        input: input.input,
        cron: input.cron,
        timezone: input.timezone,
        key: input.key,
        catchUp: input.catch_up,
        paused: input.paused,
        priority: input.priority,
        maxAttempts: input.max_attempts,
        timeoutMs: input.timeout_ms,
        ttlMs: input.ttl_ms,
        concurrencyKey: input.concurrency_key,
      });
      if (!created) ctx.rest.status = 200;
      return schedule;
    }),

  listSchedules: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/schedules',
        summary: "The tenant's schedules, oldest first",
        description: 'A page at a time: pass next_cursor back as cursor; null on the last page.',
        tags: ['schedules'],
        successDescription: 'A page of schedules',
        errorResponses: { 400: 'A limit out of range, or a cursor this API did not give' },
      },
    })
    .input(
      z.object({
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(200)
          .default(50)
          .describe('Schedules per page, 1 to 200 (default 50)'),
        cursor: z.uuid().describe('The next_cursor of the previous page').optional(),
      }),
    )
    .output(
      z.object({
        schedules: z.array(scheduleSchema),
        next_cursor: z
          .string()
          .nullable()
          .describe('Pass it as cursor for the next page; null: the last page'),
      }),
    )
    .query(async ({ ctx, input }) =>
      restPage(await ctx.schedules.list(ctx.identity.tenantId, { limit: input.limit, cursor: input.cursor })),
    ),

  getSchedule: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/schedules/{id}',
        summary: 'A schedule, its next fire times and its latest runs',
        description: `The schedule, its next ${SCHEDULE_NEXT_FIRES} fire times and its latest ${SCHEDULE_RUNS_SHOWN} tasks (id, scheduled_for, status).`,
        tags: ['schedules'],
        successDescription: 'The schedule',
        errorResponses: { 400: 'A malformed id (not a UUID)', 404: NOT_FOUND },
      },
    })
    .input(z.object({ id: scheduleId }))
    .output(scheduleDetailSchema)
    .query(({ ctx, input }) => ctx.schedules.get(ctx.identity.tenantId, input.id)),

  updateSchedule: writeProcedure
    .meta({
      openapi: {
        method: 'PATCH',
        path: '/schedules/{id}',
        summary: 'Change a schedule: cron, timezone, input, paused, catch_up',
        description:
          'Each field given changes; one left out stays. A new cron or zone, or a resume, starts from the next tick after now (the ticks of a pause are not caught up). Checked as at creation: 400 naming the field, nothing changed.',
        tags: ['schedules'],
        successDescription: 'The schedule, changed',
        errorResponses: {
          400: "A malformed id, cron or zone, a cron firing more often than SCHEDULE_MIN_INTERVAL_MS, input that does not fit the task type's schema, or an unknown field",
          404: NOT_FOUND,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
      taskParameters: 'input',
    })
    .input(
      z.strictObject({
        id: scheduleId,
        cron: cron.optional(),
        timezone: timezone.optional(),
        input: scheduleInput.optional(),
        paused: paused.optional(),
        catch_up: catchUp.optional(),
      }),
    )
    .output(scheduleSchema)
    .mutation(({ ctx, input }) =>
      ctx.schedules.update(ctx.identity.tenantId, input.id, {
        cron: input.cron,
        timezone: input.timezone,
        input: input.input,
        paused: input.paused,
        catchUp: input.catch_up,
      }),
    ),

  deleteSchedule: writeProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/schedules/{id}',
        summary: 'Delete a schedule',
        description:
          'It fires no more. The tasks it made stay, with its id in schedule_id; a tick being fired as it is deleted may still make its task.',
        tags: ['schedules'],
        successDescription: 'The schedule as it was',
        errorResponses: { 400: 'A malformed id (not a UUID)', 404: NOT_FOUND },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ id: scheduleId }))
    .output(scheduleSchema)
    .mutation(({ ctx, input }) => ctx.schedules.delete(ctx.identity.tenantId, input.id)),
});
