import type { UsageGroup, UsageRow } from '@tasker/sdk';
import { type Command, Option } from 'commander';
import { connect } from './connect.ts';
import { describeError } from './errors.ts';
import { paint, printJson, printTable } from './output.ts';

/** What `--group-by` takes (the server's group_by). */
const GROUPS = ['day', 'task_type', 'model', 'tenant'] as const satisfies readonly UsageGroup[];

const KEY_HEADER: Record<UsageGroup, string> = {
  day: 'DAY (UTC)',
  task_type: 'TASK TYPE',
  model: 'MODEL',
  tenant: 'TENANT',
};

/** Dollars as a person reads them: cents for sums of a dollar or more, six decimals below. */
const dollars = (value: number) => `$${value >= 1 ? value.toFixed(2) : value.toFixed(6)}`;

const cells = (row: Omit<UsageRow, 'key'>) => [
  String(row.prompt_tokens),
  String(row.completion_tokens),
  String(row.prompt_tokens + row.completion_tokens),
  dollars(row.cost_usd),
  String(row.calls),
  String(row.tasks),
];

/**
 * `tasker usage [--from DATE] [--to DATE] [--group-by day|task_type|model|tenant] [--tenant T]`:
 * what the tenant's model calls used (GET /usage), as a table with a total line, or `--json`.
 */
export function usageCommand(program: Command): void {
  program
    .command('usage')
    .description(
      "What the tenant's model calls used: tokens, cost, calls and tasks per UTC day (or task type, model, tenant); default the last 30 days",
    )
    .option('--from <date>', 'from this date (2026-12-01, its UTC midnight) or date-time with an offset')
    .option('--to <date>', 'to this date (included: its whole UTC day) or date-time (excluded); default now')
    .addOption(new Option('--group-by <group>', 'how rows are grouped').choices(GROUPS).default('day'))
    .option('--tenant <tenant>', "another tenant's, or * for every tenant's (an operator key)")
    .option('--json', 'the report as JSON')
    .action(
      async (
        options: { from?: string; to?: string; groupBy: UsageGroup; tenant?: string; json?: boolean },
        command: Command,
      ) => {
        const { client, url } = connect(command);
        const report = await client
          .usage({ from: options.from, to: options.to, groupBy: options.groupBy, tenant: options.tenant })
          .catch((error: unknown) => Promise.reject(describeError(error, url)));
        if (options.json) {
          printJson(report);
          return;
        }
        const rows = [
          [KEY_HEADER[report.group_by], 'PROMPT', 'COMPLETION', 'TOKENS', 'COST', 'CALLS', 'TASKS'],
          ...report.rows.map((row) => [row.key, ...cells(row)]),
          ['total', ...cells(report.total)],
        ];
        const last = rows.length - 1;
        printTable(rows, (r, _c, text) => (r === 0 || r === last ? paint('bold', text) : text));
        process.stderr.write(
          paint(
            'dim',
            `${report.tenant === null ? 'every tenant' : `tenant ${report.tenant}`}, ${report.from} to ${report.to}\n`,
            process.stderr,
          ),
        );
      },
    );
}
