import type { TaskRow, TaskStepRow } from '@tasker/db';
import { isTerminal } from '@tasker/states';
import {
  type ChildFailureStatus,
  ChildTaskError,
  type ChildTaskFailure,
  ChildTaskLimitError,
  type ChildTaskOptions,
  ChildTasksError,
  InvalidStepError,
  NonDeterminismError,
} from '@tasker/tasks';
import { z } from 'zod';
import { InvalidTaskInputError } from '../errors/invalid-task-input.ts';
import { PublicFailureError } from '../errors/public-failure.ts';
import type { LifecycleResources } from './resources.ts';
import type { StepOrder } from './steps.ts';
import { submitMany } from './submit-many.ts';

/** How deep and how wide child tasks may go (CHILD_TASK_MAX_DEPTH, CHILD_TASK_MAX_FAN_OUT). */
export interface ChildBounds {
  /** Levels below a top-level task (a top-level task's child is level 1). */
  maxDepth: number;
  /** Children per `ctx.run` / `ctx.runMany` call. */
  maxFanOut: number;
}

export const DEFAULT_CHILD_BOUNDS: ChildBounds = { maxDepth: 5, maxFanOut: 100 };

/** The step id of a submission of children: its place in the handler's order. */
const childrenStepId = (seq: number) => `$children:${seq}`;

/** A child's idempotency key: one per parent, call and place, so that a repeated submission finds the first. */
const childKey = (parentId: string, seq: number, index: number) => `$child:${parentId}:${seq}:${index}`;

const optionsSchema = z
  .object({
    concurrencyKey: z.string().min(1).max(200).optional(),
    priority: z.number().int().min(0).max(100).optional(),
    maxAttempts: z.number().int().min(1).max(100).optional(),
    timeoutMs: z.number().int().min(1).max(86_400_000).optional(),
  })
  .strict();

export interface ChildRequest {
  name: string;
  input: unknown;
  options?: ChildTaskOptions;
}

const recordedChildren = (step: TaskStepRow | undefined): string[] | undefined => {
  const children = (step?.output as { children?: unknown } | null | undefined)?.children;
  return Array.isArray(children) && children.every((id) => typeof id === 'string') ? children : undefined;
};

/**
 * `ctx.run` and `ctx.runMany` of one run of a task's handler, on the StepRunner's order: one step
 * (`$children:N`) per call.
 *
 * - The first run submits the children (`submitMany`: one transaction; each with `parent_id`, the
 *   parent's tenant and concurrency key, and an idempotency key of parent, call and place, so that a
 *   run that died between the submission and its record finds the same children again), then
 *   suspends: the task is WAITING for them (`waiting_for {kind: 'children'}`), its step recorded
 *   `waiting` with their ids. The last child's end wakes it (the finishing trigger, migration 0027).
 * - A later run finds the ids in the step and reads the children's records: all ended → the step is
 *   recorded completed and their outputs returned in order (or a ChildTaskError /
 *   ChildTasksError); some still running (a retry meanwhile) → it waits again.
 */
export class ChildSteps {
  constructor(
    private readonly r: Pick<LifecycleResources, 'store'> & Partial<LifecycleResources>,
    private readonly row: TaskRow,
    private readonly order: StepOrder,
    private readonly bounds: ChildBounds = r.childBounds ?? DEFAULT_CHILD_BOUNDS,
  ) {}

  async run(name: string, input: unknown, options?: ChildTaskOptions): Promise<unknown> {
    try {
      const [output] = await this.runMany([{ name, input, ...(options ? { options } : {}) }]);
      return output;
    } catch (error) {
      const first = error instanceof ChildTasksError ? error.failures[0] : undefined;
      throw first ? first.error : error;
    }
  }

  async runMany(requests: readonly ChildRequest[]): Promise<unknown[]> {
    const id = childrenStepId(this.order.peek());
    const seq = this.order.take(id);
    if (!Array.isArray(requests) || requests.length === 0)
      throw new InvalidStepError('runMany takes at least one child task');
    if (requests.length > this.bounds.maxFanOut)
      throw new ChildTaskLimitError(
        `at most ${this.bounds.maxFanOut} child tasks per call (CHILD_TASK_MAX_FAN_OUT); got ${requests.length}`,
      );
    const recorded = await this.order.find(id, seq);
    let ids = recordedChildren(recorded);
    if (ids && ids.length !== requests.length)
      throw new NonDeterminismError(
        `step ${seq + 1} ran ${ids.length} child tasks in an earlier run; it runs ${requests.length} now`,
      );
    ids ??= await this.submit(seq, requests);
    const rows = new Map((await this.r.store.getMany(ids)).map((row) => [row.id, row]));
    const ended = ids.every((child) => {
      const row = rows.get(child);
      return !row || isTerminal(row.status);
    });
    if (!ended) {
      this.order.suspend({
        stepId: id,
        seq,
        waitingFor: { kind: 'children', children: ids },
        until: null,
        output: { children: ids },
      });
      return new Promise<unknown[]>(() => {}); // never returns: the attempt ends here, and the task waits
    }
    if (recorded?.status !== 'completed') {
      await this.r.store.steps.record({
        taskId: this.row.id,
        taskCreatedAt: this.row.createdAt,
        stepId: id,
        seq,
        status: 'completed',
        output: { children: ids },
        startedAt: recorded?.startedAt ?? new Date(),
      });
    }
    const outputs: unknown[] = [];
    const failures: { index: number; error: ChildTaskError }[] = [];
    ids.forEach((child, index) => {
      const row = rows.get(child);
      if (row?.status === 'COMPLETED') {
        outputs.push(row.output ?? null);
        return;
      }
      outputs.push(undefined);
      const error: ChildTaskFailure | null = row
        ? row.error && { message: row.error.message, name: row.error.name, code: row.error.code }
        : {
            message: 'the child task is gone (deleted by retention)',
            name: 'Error',
            code: 'CHILD_TASK_GONE',
          };
      const status = (row?.status ?? 'FAILED') as ChildFailureStatus;
      failures.push({ index, error: new ChildTaskError(child, status, error) });
    });
    if (failures.length > 0) throw new ChildTasksError(failures, outputs);
    return outputs;
  }

  /** Submits the children of call `seq` (idempotently) and returns their ids in order. */
  private async submit(seq: number, requests: readonly ChildRequest[]): Promise<string[]> {
    const { store, limits, checkWebhookUrl, config, log } = this.r;
    if (!limits || !checkWebhookUrl || !config || !log)
      throw new Error('child tasks need the lifecycle: run the handler through TaskLifecycle.steps');
    const depth = await store.children.depth(this.row.id, this.bounds.maxDepth);
    if (depth + 1 > this.bounds.maxDepth)
      throw new ChildTaskLimitError(
        `a child task here would be ${depth + 1} levels below its top-level task; at most ${this.bounds.maxDepth} (CHILD_TASK_MAX_DEPTH)`,
      );
    const submissions = requests.map((request, index) => {
      const name = (request as { name?: unknown } | null)?.name;
      if (typeof name !== 'string')
        throw new InvalidStepError(`child task ${index}: give the name of a task type`);
      const options = optionsSchema.safeParse(request.options ?? {});
      if (!options.success)
        throw new InvalidStepError(
          `child task ${index} (${name}): bad options: ${options.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`,
        );
      const { concurrencyKey, ...rest } = options.data;
      return {
        name,
        input: request.input,
        ...rest,
        concurrencyKey: concurrencyKey ?? this.row.concurrencyKey ?? this.row.tenantId,
        idempotencyKey: childKey(this.row.id, seq, index),
        parentId: this.row.id,
      };
    });
    try {
      const items = await submitMany(this.r as LifecycleResources, this.row.tenantId, submissions);
      return items.map((item) => item.row.id);
    } catch (error) {
      // Parameters a child's type refuses: no attempt of the parent can fix them.
      if (
        error instanceof InvalidTaskInputError ||
        (error instanceof PublicFailureError && error.failure.status === 400)
      )
        throw new InvalidStepError(`child tasks refused: ${error.message}`);
      throw error;
    }
  }
}
