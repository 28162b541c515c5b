import type { BulkOperation, TaskFilter, TaskName, TaskStatus } from '@tasker/sdk';
import { listInWords, RETRYABLE_STATUSES } from '@tasker/states';
import { type Command, InvalidArgumentError } from 'commander';
import { connect } from './connect.ts';
import { CliError, describeError, EXIT } from './errors.ts';
import { paint, printJson, Spinner } from './output.ts';
import { statusOption } from './tasks.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--input-contains '{"a":1}'`: any JSON value (the server names what it cannot search for). */
function jsonOption(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}

/** `--created-after 2026-12-01T00:00:00Z`: an ISO 8601 date-time with its offset. */
function timeOption(value: string): string {
  if (
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) ||
    Number.isNaN(Date.parse(value))
  )
    throw new InvalidArgumentError('an ISO 8601 date-time with its offset, e.g. 2026-12-01T00:00:00Z');
  return value;
}

interface FilterFlags {
  status?: TaskStatus[];
  name: string[];
  createdAfter?: string;
  createdBefore?: string;
  inputContains?: unknown;
  outputContains?: unknown;
  tag: string[];
  metadataContains?: unknown;
}

interface BulkFlags extends FilterFlags {
  dryRun?: boolean;
  yes?: boolean;
  wait: boolean;
  json?: boolean;
}

/** The SDK's filter from the flags; none given is a usage error (it would act on every task). */
export function filterOf(flags: FilterFlags): TaskFilter {
  const filter: TaskFilter = {
    status: flags.status,
    name: flags.name.length > 0 ? (flags.name as TaskName[]) : undefined,
    createdAfter: flags.createdAfter,
    createdBefore: flags.createdBefore,
    inputContains: flags.inputContains as TaskFilter['inputContains'],
    outputContains: flags.outputContains as TaskFilter['outputContains'],
    tags: flags.tag.length > 0 ? flags.tag : undefined,
    metadataContains: flags.metadataContains as TaskFilter['metadataContains'],
  };
  const given = Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined));
  if (Object.keys(given).length === 0)
    throw new CliError(
      'give at least one filter (--status, --name, --created-after, --created-before, --input-contains, --output-contains, --tag, --metadata-contains)',
      EXIT.usage,
    );
  return given;
}

const ACTIONS = {
  cancel: {
    description:
      'Cancel every task that matches the filters: PENDING ones never run, RUNNING ones are aborted',
    applies: 'PENDING, RUNNING or WAITING',
    past: 'cancelled',
  },
  retry: {
    description: `Run again every ${listInWords(RETRYABLE_STATUSES)} task that matches the filters, each under its id`,
    applies: listInWords(RETRYABLE_STATUSES),
    past: 'retried',
  },
} as const;

const progressLine = (op: BulkOperation) =>
  `${op.action} ${op.id}: ${op.done} of ${op.matched} ${ACTIONS[op.action].past} (${op.status})`;

/**
 * `tasker tasks cancel|retry [filters]`: always counts first (a dry run); acts only with `--yes`,
 * then follows the operation to its end (unless `--no-wait`), with its progress.
 * `tasker tasks operation <id>`: an operation's state.
 */
export function bulkCommands(program: Command): void {
  const tasks = program
    .command('tasks')
    .description('Act on every task that matches a filter, as one tracked operation (bulk cancel, retry)');

  for (const action of ['cancel', 'retry'] as const) {
    tasks
      .command(action)
      .description(`${ACTIONS[action].description}. Counts them first; acts only with --yes`)
      .option('-s, --status <status>', 'only these statuses (comma-separated or repeated)', statusOption)
      .option('--name <type>', 'only this task type (repeatable)', collect, [])
      .option('--created-after <time>', 'only tasks created at or after this time (ISO 8601)', timeOption)
      .option('--created-before <time>', 'only tasks created before this time (ISO 8601)', timeOption)
      .option('--input-contains <json>', 'only tasks whose parameters contain this JSON', jsonOption)
      .option('--output-contains <json>', 'only tasks whose result contains this JSON', jsonOption)
      .option('--tag <tag>', 'only tasks carrying this tag (repeatable: every one of them)', collect, [])
      .option('--metadata-contains <json>', 'only tasks whose metadata contains this JSON object', jsonOption)
      .option('--dry-run', 'only count the tasks it would change (the default without --yes)')
      .option('-y, --yes', `${action} them: without it, only the count is printed`)
      .option('--no-wait', "with --yes: print the operation's id (with --json: the operation) and return")
      .option('--json', 'JSON on stdout: the count (dry run), or the operation')
      .action(async (flags: BulkFlags, command: Command) => {
        const filter = filterOf(flags);
        const { client, url } = connect(command);
        const fail = (error: unknown) => Promise.reject(describeError(error, url));
        const api = client.bulk;
        const count = await (action === 'cancel'
          ? api.cancel(filter, { dryRun: true })
          : api.retry(filter, { dryRun: true })
        ).catch(fail);
        if (flags.dryRun || !flags.yes) {
          if (flags.json) printJson(count);
          else {
            process.stdout.write(`${count.matched} ${ACTIONS[action].applies} tasks match\n`);
            if (!flags.dryRun && count.matched > 0)
              process.stderr.write(`to ${action} them: the same command with --yes\n`);
          }
          return;
        }
        if (!flags.json) process.stderr.write(`${action}: ${count.matched} tasks match\n`);
        const started = await (action === 'cancel' ? api.cancel(filter) : api.retry(filter)).catch(fail);
        if (!flags.wait) {
          // The id alone on stdout, as `run` without --wait prints it: `$(…)` captures it.
          if (flags.json) printJson(started);
          else {
            process.stdout.write(`${started.id}\n`);
            process.stderr.write(
              `${progressLine(started)}; follow it: tasker tasks operation ${started.id}\n`,
            );
          }
          return;
        }
        const spinner = new Spinner();
        let last = '';
        const ended = await api
          .wait(started.id, {
            onProgress: (op) => {
              const line = progressLine(op);
              if (spinner.enabled) spinner.text(line);
              else if (!flags.json && line !== last) process.stderr.write(`${line}\n`);
              last = line;
            },
          })
          .catch(fail)
          .finally(() => spinner.stop());
        if (flags.json) printJson(ended);
        else
          process.stdout.write(`${paint(ended.status === 'done' ? 'green' : 'red', progressLine(ended))}\n`);
        if (ended.status === 'failed')
          throw new CliError(`operation ${ended.id} failed: ${ended.error}`, EXIT.failed);
      });
  }

  tasks
    .command('operation')
    .description('A bulk operation: its status and progress')
    .argument('<id>', 'the operation id')
    .option('--json', 'the operation as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const { client, url } = connect(command);
      const op = await client.bulk
        .operation(id)
        .catch((error: unknown) => Promise.reject(describeError(error, url)));
      if (options.json) printJson(op);
      else process.stdout.write(`${progressLine(op)}${op.error ? `: ${op.error}` : ''}\n`);
    });
}
