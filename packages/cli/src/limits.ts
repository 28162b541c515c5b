import type { TaskName, TaskTypeLimits, TenantLimits, TypeLimitsInput } from '@tasker/sdk';
import type { MAX_LIMIT as TASKS_MAX_LIMIT } from '@tasker/tasks';
import { type Command, Option } from 'commander';
import { connect } from './connect.ts';
import { CliError, describeError, EXIT } from './errors.ts';
import { paint, printJson, printTable } from './output.ts';
import { wholeNumber } from './params.ts';

/**
 * The largest limit the server takes: @tasker/tasks's MAX_LIMIT (define.ts), tied to it by its type,
 * so that a change there is a compile error here. Its value is not imported: that would bundle the
 * task catalog, and OpenAI's client with it (1 MB), into the CLI.
 */
const MAX_LIMIT: typeof TASKS_MAX_LIMIT = 1_000_000;

const limitNumber = wholeNumber(0, MAX_LIMIT, 'or "default": back to the default');

/**
 * A limit on the command line: an integer from 0 to 1,000,000, or `default` (back to the default;
 * kept as the word here: commander takes a null from a parser for a missing value).
 */
function limitValue(text: string): number | 'default' {
  return text === 'default' ? text : limitNumber(text);
}

const LIMIT_FLAGS = [
  ['maxRunning', '--max-running <n>', 'at most N tasks RUNNING at once, across every worker'],
  ['maxQueued', '--max-queued <n>', 'at most N tasks PENDING: a submission beyond is refused (QUEUE_FULL)'],
  ['startsPerMinute', '--starts-per-minute <n>', 'task starts spread to at most N per minute'],
] as const;
const PER_KEY_FLAG = [
  'maxRunningPerKey',
  '--max-running-per-key <n>',
  'at most N tasks of the type RUNNING at once per concurrency key',
] as const;

type Flags = { [K in keyof TypeLimitsInput]?: number | 'default' } & { clear?: boolean; json?: boolean };

function withLimitFlags(command: Command, flags: readonly (readonly [string, string, string])[]): Command {
  for (const [, flag, description] of flags) {
    command.addOption(
      new Option(flag, `${description} ("default": back to the default)`).argParser(limitValue),
    );
  }
  return command
    .option('--clear', 'remove every limit set here: the defaults apply again')
    .option('--json', 'the limits and counts as JSON');
}

/** The limits given on the command line (a field left out stays as it is on the server). */
function changes(flags: Flags, fields: readonly (keyof TypeLimitsInput)[]): TypeLimitsInput | undefined {
  const given = fields.filter((field) => flags[field] !== undefined);
  if (given.length === 0) return undefined;
  return Object.fromEntries(given.map((field) => [field, flags[field] === 'default' ? null : flags[field]]));
}

const shown = (value: number | null, none = '-') => (value === null ? none : String(value));

function printLimits(title: string, view: TenantLimits | TaskTypeLimits, perKey: boolean): void {
  process.stdout.write(
    `${paint('bold', title)}${view.updatedAt ? paint('dim', `  (set ${view.updatedAt})`) : paint('dim', '  (the defaults)')}\n`,
  );
  const row = (label: string, field: keyof TypeLimitsInput, now: string) => {
    const pick = (limits: object) =>
      ((limits as Record<string, number | null>)[field] ?? null) as number | null;
    return [
      label,
      shown(pick(view.stored)),
      shown(pick(view.defaults)),
      shown(pick(view.effective), 'none'),
      now,
    ];
  };
  printTable(
    [
      ['LIMIT', 'SET', 'DEFAULT', 'APPLIES', 'NOW'],
      row('max running', 'maxRunning', `${view.running} running`),
      row('max queued', 'maxQueued', `${view.queued} queued`),
      row('starts per minute', 'startsPerMinute', ''),
      ...(perKey ? [row('max running per key', 'maxRunningPerKey', '')] : []),
    ],
    (r, c, text) => (r === 0 ? paint('bold', text) : c === 0 ? paint('dim', text) : text),
  );
}

/**
 * `tasker tenants [limits TENANT ...]` and `tasker types limits NAME ...`: limits set at runtime, with
 * the counts they bound. Without a limit flag or `--clear`, they are read.
 */
export function limitsCommands(program: Command): void {
  const tenants = program
    .command('tenants')
    .description(
      'The tenants, with their limits and running/queued tasks (an operator key); `tenants limits TENANT`',
    )
    // 200: the most the server's listTenants gives (apps/server/src/router/limits.ts).
    .option('--limit <n>', 'tenants per page, 1 to 200', wholeNumber(1, 200), 50)
    .option('--cursor <tenant>', 'the page after this tenant (the last of the previous page)')
    .option('--json', 'the page as JSON')
    .action(async (options: { limit: number; cursor?: string; json?: boolean }, command: Command) => {
      const { client, url } = connect(command);
      const page = await client.tenants
        .list({ limit: options.limit, cursor: options.cursor })
        .catch((error: unknown) => Promise.reject(describeError(error, url)));
      if (options.json) {
        printJson(page);
        return;
      }
      printTable(
        [
          ['TENANT', 'MAX RUNNING', 'MAX QUEUED', 'STARTS/MIN', 'RUNNING', 'QUEUED'],
          ...page.tenants.map((t) => [
            t.tenant,
            shown(t.effective.maxRunning, 'none'),
            shown(t.effective.maxQueued, 'none'),
            shown(t.effective.startsPerMinute, 'none'),
            String(t.running),
            String(t.queued),
          ]),
        ],
        (r, _c, text) => (r === 0 ? paint('bold', text) : text),
      );
      if (page.nextCursor) process.stderr.write(`more: tasker tenants --cursor ${page.nextCursor}\n`);
    });

  withLimitFlags(
    tenants
      .command('limits')
      .description(
        "A tenant's limits and its running/queued tasks; with flags, sets them (its own with an admin key, any with an operator key)",
      )
      .argument('<tenant>', 'the tenant'),
    LIMIT_FLAGS,
  ).action(async (tenant: string, flags: Flags, command: Command) => {
    const { client, url } = connect(command);
    const change = changes(flags, ['maxRunning', 'maxQueued', 'startsPerMinute']);
    if (flags.clear && change) throw new CliError('--clear: give it alone, without limits', EXIT.usage);
    const view = await (flags.clear
      ? client.tenants.limits.clear(tenant)
      : change
        ? client.tenants.limits.set(tenant, change)
        : client.tenants.limits.get(tenant)
    ).catch((error: unknown) => Promise.reject(describeError(error, url)));
    // `--json` is also the parent's option (`tenants --json`, `types --json`), wherever it stands on the line.
    if (command.optsWithGlobals<{ json?: boolean }>().json) printJson(view);
    else printLimits(`tenant ${view.tenant}`, view, false);
  });

  const types = program.commands.find((command) => command.name() === 'types');
  if (!types) throw new Error('the types command must be registered first');
  withLimitFlags(
    types
      .command('limits')
      .description(
        "A task type's limits and its running/queued tasks (every tenant's); with flags, sets them (an operator key)",
      )
      .argument('<name>', 'the task type'),
    [...LIMIT_FLAGS, PER_KEY_FLAG],
  ).action(async (name: string, flags: Flags, command: Command) => {
    const { client, url } = connect(command);
    const change = changes(flags, ['maxRunning', 'maxQueued', 'startsPerMinute', 'maxRunningPerKey']);
    if (flags.clear && change) throw new CliError('--clear: give it alone, without limits', EXIT.usage);
    const type = name as TaskName;
    const view = await (flags.clear
      ? client.types.limits.clear(type)
      : change
        ? client.types.limits.set(type, change)
        : client.types.limits.get(type)
    ).catch((error: unknown) => Promise.reject(describeError(error, url)));
    // `--json` is also the parent's option (`tenants --json`, `types --json`), wherever it stands on the line.
    if (command.optsWithGlobals<{ json?: boolean }>().json) printJson(view);
    else printLimits(`task type ${view.name}`, view, true);
  });
}
