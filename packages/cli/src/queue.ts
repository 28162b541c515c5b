import type { QueueState, TaskName } from '@tasker/sdk';
import type { Command } from 'commander';
import { connect } from './connect.ts';
import { describeError } from './errors.ts';
import { paint, printJson, printTable } from './output.ts';

function printQueue(state: QueueState): void {
  printTable(
    [
      ['processing', state.paused ? 'paused' : 'running'],
      ['paused types', state.pausedTypes.length > 0 ? state.pausedTypes.join(', ') : '-'],
      ['waiting', String(state.waiting)],
      ['delayed', String(state.delayed)],
      ['active', String(state.active)],
      ['failed', String(state.failed)],
      ['suspended (WAITING)', String(state.suspended)],
    ],
    (_r, c, text) =>
      c === 0
        ? paint('dim', text)
        : text === 'paused'
          ? paint('yellow', text)
          : text === 'running'
            ? paint('green', text)
            : text,
  );
}

/** `tasker queue [pause|resume] [--type]`: queue depths and pausing (an operator key in required mode). */
export function queueCommand(program: Command): void {
  const queue = program
    .command('queue')
    .description(
      "Queue depths and paused types; `queue pause|resume [--type]` (an operator key: the queue is every tenant's)",
    )
    .option('--json', 'the state as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { client, url } = connect(command);
      const state = await client.queue().catch((error: unknown) => Promise.reject(describeError(error, url)));
      if (options.json) printJson(state);
      else printQueue(state);
    });

  for (const [name, description] of [
    ['pause', 'Workers start no queued task (of --type only) until resumed; running ones finish'],
    [
      'resume',
      'Workers start queued tasks again (of --type only; without it, every type, those paused on their own too)',
    ],
  ] as const) {
    queue
      .command(name)
      .description(description)
      .option('-t, --type <type>', 'only this task type')
      .action(async (options: { type?: string }, command: Command) => {
        const { client, url } = connect(command);
        // `queue --json` is the parent's option, wherever it stands on the line.
        const { json } = command.optsWithGlobals<{ json?: boolean }>();
        const target = { taskName: options.type as TaskName | undefined };
        const state = await (name === 'pause' ? client.pauseQueue(target) : client.resumeQueue(target)).catch(
          (error: unknown) => Promise.reject(describeError(error, url)),
        );
        if (json) printJson(state);
        else printQueue(state);
      });
  }
}
