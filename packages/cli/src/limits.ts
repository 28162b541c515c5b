import type {
  LimitsApi,
  LimitsInput,
  TaskerClient,
  TaskTypeLimits,
  TenantLimits,
  TenantLimitsInput,
  TypeLimitsInput,
} from '@tasker/sdk';
import type { MAX_LIMIT as TASKS_MAX_LIMIT } from '@tasker/tasks';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { connect } from './connect.ts';
import { CliError, describeError, EXIT } from './errors.ts';
import { paint, printJson, printTable, time } from './output.ts';
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

type View = TenantLimits | TaskTypeLimits;
type Field = keyof Required<TypeLimitsInput>;

/**
 * Each limit, by its field in the SDK: its flag is the field in kebab case (`--max-running`, which
 * commander reads back as `maxRunning`), its row in the table `label`, and `now` the count it bounds.
 */
const LIMITS: Record<Field, { help: string; label: string; now?: (view: View) => string }> = {
  maxRunning: {
    help: 'at most N tasks RUNNING at once, across every worker',
    label: 'max running',
    now: (view: View) => `${view.running} running`,
  },
  maxQueued: {
    help: 'at most N tasks PENDING: a submission beyond is refused (QUEUE_FULL)',
    label: 'max queued',
    now: (view: View) => `${view.queued} queued`,
  },
  startsPerMinute: { help: 'task starts spread to at most N per minute', label: 'starts per minute' },
  maxRunningPerKey: {
    help: 'at most N tasks of the type RUNNING at once per concurrency key',
    label: 'max running per key',
  },
};

/** A tenant's limits; a task type's are these and `maxRunningPerKey`. */
const TENANT_FIELDS = ['maxRunning', 'maxQueued', 'startsPerMinute'] as const satisfies (keyof LimitsInput)[];

const flagOf = (field: Field) => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** A tenant's LLM budgets (`tenants limits` only): `none` removes one. */
type Budget = keyof Required<Pick<TenantLimitsInput, 'llmTokensPerDay' | 'llmCostPerMonthUsd'>>;
const BUDGETS: Record<Budget, { flag: string; help: string; parse: (text: string) => number }> = {
  llmTokensPerDay: {
    flag: '--llm-tokens-per-day <n>',
    help: "LLM budget: tokens of the tenant's model calls per UTC day",
    parse: wholeNumber(0, Number.MAX_SAFE_INTEGER, 'or "none"'),
  },
  llmCostPerMonthUsd: {
    flag: '--llm-cost-per-month-usd <usd>',
    help: "LLM budget: US dollars of the tenant's model calls per UTC month",
    parse: (text) => {
      const usd = Number(text);
      if (!/^\d+(\.\d+)?$/.test(text) || usd > 1_000_000_000)
        throw new InvalidArgumentError('US dollars from 0 to 1,000,000,000, like 250 or 12.5 (or "none")');
      return usd;
    },
  },
};
const BUDGET_FIELDS = Object.keys(BUDGETS) as Budget[];

type Flags = { [K in Field]?: number | 'default' } & { [K in Budget]?: number | 'none' } & {
  clear?: boolean;
};

/** The limits (and budgets) given on the command line (a field left out stays as it is on the server). */
function changes(
  flags: Flags,
  fields: readonly Field[],
  budgets: readonly Budget[],
): (TypeLimitsInput & TenantLimitsInput) | undefined {
  const given = fields.filter((field) => flags[field] !== undefined);
  const budgetsGiven = budgets.filter((budget) => flags[budget] !== undefined);
  if (given.length === 0 && budgetsGiven.length === 0) return undefined;
  return Object.fromEntries([
    ...given.map((field) => [field, flags[field] === 'default' ? null : flags[field]]),
    ...budgetsGiven.map((budget) => [budget, flags[budget] === 'none' ? null : flags[budget]]),
  ]);
}

/** A tenant's budgets under its limits: set, used in the window, and whether its LLM tasks are held. */
function printBudgets(budgets: TenantLimits['budgets']): void {
  const usd = (value: number) => `$${value.toLocaleString('en-US', { maximumFractionDigits: 6 })}`;
  printTable(
    [
      ['BUDGET', 'SET', 'USED'],
      ['llm tokens per day', shown(budgets.llmTokensPerDay, 'none'), `${budgets.tokensToday} today`],
      [
        'llm cost per month',
        budgets.llmCostPerMonthUsd === null ? 'none' : usd(budgets.llmCostPerMonthUsd),
        `${usd(budgets.costThisMonthUsd)} this month`,
      ],
    ],
    (r, c, text) => (r === 0 ? paint('bold', text) : c === 0 ? paint('dim', text) : text),
  );
  if (budgets.exceeded)
    process.stdout.write(
      `${paint('yellow', `${budgets.exceeded} reached`)}: new LLM tasks are refused (429) and queued ones held until ${budgets.heldUntil ? time(budgets.heldUntil) : 'the budget is raised'}\n`,
    );
}

const shown = (value: number | null | undefined, none = '-') =>
  value === null || value === undefined ? none : String(value);

function printLimits(title: string, view: View, fields: readonly Field[]): void {
  process.stdout.write(
    `${paint('bold', title)}${view.updatedAt ? paint('dim', `  (set ${time(view.updatedAt)})`) : paint('dim', '  (the defaults)')}\n`,
  );
  // A tenant's view has no maxRunningPerKey (its fields leave that row out).
  const pick = (limits: Partial<Record<Field, number | null>>, field: Field) => limits[field];
  printTable(
    [
      ['LIMIT', 'SET', 'DEFAULT', 'APPLIES', 'NOW'],
      ...fields.map((field) => [
        LIMITS[field].label,
        shown(pick(view.stored, field)),
        shown(pick(view.defaults, field)),
        shown(pick(view.effective, field), 'none'),
        LIMITS[field].now?.(view) ?? '',
      ]),
    ],
    (r, c, text) => (r === 0 ? paint('bold', text) : c === 0 ? paint('dim', text) : text),
  );
}

/**
 * `limits <key>` under `parent` (`tenants`, `types`): without a limit flag or `--clear`, reads the
 * limits of `key` through the SDK's `api`; with flags, sets them; `--clear` gives them all back.
 */
function limitsCommand<Key extends string, V extends View>(
  parent: Command,
  spec: {
    description: string;
    argument: [name: string, description: string];
    fields: readonly Field[];
    /** The tenant's LLM budgets, set beside its limits (`tenants limits`). */
    budgets?: boolean;
    api: (client: TaskerClient) => LimitsApi<Key, TypeLimitsInput & TenantLimitsInput, V>;
    title: (view: V) => string;
  },
): void {
  const command = parent
    .command('limits')
    .description(spec.description)
    .argument(`<${spec.argument[0]}>`, spec.argument[1]);
  for (const field of spec.fields) {
    command.addOption(
      new Option(`${flagOf(field)} <n>`, `${LIMITS[field].help} ("default": back to the default)`).argParser(
        limitValue,
      ),
    );
  }
  const budgets = spec.budgets ? BUDGET_FIELDS : [];
  for (const budget of budgets) {
    const { flag, help, parse } = BUDGETS[budget];
    command.addOption(
      new Option(flag, `${help} ("none": no budget)`).argParser((text) =>
        text === 'none' ? text : parse(text),
      ),
    );
  }
  command
    .option('--clear', 'remove every limit set here: the defaults apply again')
    .option('--json', 'the limits and counts as JSON')
    .action(async (key: string, flags: Flags, command: Command) => {
      const { client, url } = connect(command);
      const change = changes(flags, spec.fields, budgets);
      if (flags.clear && change) throw new CliError('--clear: give it alone, without limits', EXIT.usage);
      const api = spec.api(client);
      const view = await (flags.clear
        ? api.clear(key as Key)
        : change
          ? api.set(key as Key, change)
          : api.get(key as Key)
      ).catch((error: unknown) => Promise.reject(describeError(error, url)));
      // `--json` is also the parent's option (`tenants --json`, `types --json`), wherever it stands on the line.
      if (command.optsWithGlobals<{ json?: boolean }>().json) printJson(view);
      else {
        printLimits(spec.title(view), view, spec.fields);
        if ('budgets' in view) printBudgets(view.budgets);
      }
    });
}

/**
 * `tasker tenants [limits TENANT ...]`: the tenants, and a tenant's limits set at runtime, with the
 * counts they bound.
 */
export function tenantsCommand(program: Command): void {
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

  limitsCommand(tenants, {
    description:
      "A tenant's limits and its running/queued tasks; with flags, sets them (its own with an admin key, any with an operator key)",
    argument: ['tenant', 'the tenant'],
    fields: TENANT_FIELDS,
    budgets: true,
    api: (client) => client.tenants.limits,
    title: (view) => `tenant ${view.tenant}`,
  });
}

/** `tasker types limits NAME ...`: a task type's limits (`types`: the command that lists the types). */
export function typeLimitsCommand(types: Command): void {
  limitsCommand(types, {
    description:
      "A task type's limits and its running/queued tasks (every tenant's); with flags, sets them (an operator key)",
    argument: ['name', 'the task type'],
    fields: [...TENANT_FIELDS, 'maxRunningPerKey'],
    api: (client) => client.types.limits,
    title: (view) => `task type ${view.name}`,
  });
}
