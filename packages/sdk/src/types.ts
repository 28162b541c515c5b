import type { AppRouter, TaskEvent, TaskTypes, TaskView } from '@tasker/server';

export type { AppRouter };

/** Every task type the server runs, by name. */
export type TaskName = keyof TaskTypes & string;
/** The parameters of a task type. */
export type TaskInput<N extends TaskName> = TaskTypes[N]['input'];
/** The result of a task type. */
export type TaskOutput<N extends TaskName> = TaskTypes[N]['output'];

export type TaskStatus = TaskView['status'];
export type TaskError = NonNullable<TaskView['error']>;

/** A task's full record, its input and output typed by its name. */
export type Task<N extends TaskName = TaskName> = Omit<TaskView, 'name' | 'input' | 'output'> & {
  name: N;
  input: TaskInput<N>;
  /** The result once COMPLETED, else null. */
  output: TaskOutput<N> | null;
};

/** One state of a task as it changes (the record without its input). */
export type TaskUpdate<N extends TaskName = TaskName> = Omit<TaskEvent, 'name' | 'output'> & {
  name: N;
  output: TaskOutput<N> | null;
};
