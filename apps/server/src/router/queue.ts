import { taskNames } from '@tasker/tasks';
import { z } from 'zod';
import { operatorProcedure, router } from '../trpc.ts';

const queueStateSchema = z
  .object({
    paused: z.boolean(),
    waiting: z.number().int().describe('Queued and ready to run (or held by the pause)'),
    delayed: z.number().int().describe('Waiting for their start time or a retry backoff'),
    active: z.number().int(),
    failed: z
      .number()
      .int()
      .describe(
        'Jobs the queue gave up on (their tasks are FAILED, or ended FAILED by the next sweep); with Redis, BullMQ keeps them 24 h',
      ),
    pausedTypes: z.array(z.string()).describe('Task types paused on their own'),
    suspended: z
      .number()
      .int()
      .describe(
        'Tasks WAITING (asleep, waiting for child tasks or for a wait token): they hold no worker slot and no job, and are queued again when their wait ends',
      ),
  })
  .meta({ id: 'QueueState' });

/** The body is optional: without it (or without task_name), every task type. */
const pauseInput = z
  .object({
    task_name: z.enum(taskNames).optional().describe('Only this task type; without it, every task type'),
  })
  .default({});

/**
 * The 403 of every queue route: the queue is every tenant's, so a tenant's admin key may not touch
 * it (a pause per tenant needs a fair dequeue first).
 */
const OPERATOR_403 =
  "The API key lacks the operator scope: the queue is shared by every tenant, so pausing, resuming and its depths are an operator's (a tenant admin key gets this 403)";

/** Pausing and resuming processing, of everything or of one task type; queue depths: an operator's. */
export const queueRouter = router({
  getQueue: operatorProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/queue',
        summary: 'Whether processing is paused, and queue depths',
        description:
          'Whether processing is paused (as a whole, and which task types on their own), how many jobs wait, are delayed, run and failed, and how many tasks are suspended (WAITING). Shared by every tenant: an operator key only.',
        tags: ['queue'],
        successDescription: 'The state of the queue',
        errorResponses: { 403: OPERATOR_403 },
      },
    })
    .input(z.object({}))
    .output(queueStateSchema)
    .query(({ ctx }) => ctx.tasks.queueState()),

  pauseQueue: operatorProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/queue/pause',
        summary: 'Pause processing (of task_name only, if given)',
        description:
          'Workers start no queued task (of task_name only, if given) until resumed; running tasks finish; ' +
          'submissions are still accepted and wait. Nothing queued is lost. The body is optional.',
        tags: ['queue'],
        successDescription: 'The state of the queue, paused',
        errorResponses: { 400: 'An unknown task_name', 403: OPERATOR_403 },
      },
    })
    .input(pauseInput)
    .output(queueStateSchema)
    .mutation(({ ctx, input }) => ctx.tasks.pause(input.task_name)),

  resumeQueue: operatorProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/queue/resume',
        summary: 'Resume processing (of task_name only, if given)',
        description:
          'Workers start queued tasks again (of task_name only, if given; without it, every task type, including those paused on their own). The body is optional.',
        tags: ['queue'],
        successDescription: 'The state of the queue, resumed',
        errorResponses: { 400: 'An unknown task_name', 403: OPERATOR_403 },
      },
    })
    .input(pauseInput)
    .output(queueStateSchema)
    .mutation(({ ctx, input }) => ctx.tasks.resume(input.task_name)),
});
