import type { CatchUp, Schedule, ScheduleChange, ScheduleOptions, TaskerClient, TaskName } from '@tasker/sdk';
import { type Command, Option } from 'commander';
import { connect } from './connect.ts';
import { describeError } from './errors.ts';
import { paint, printJson, printTable, statusText, time } from './output.ts';
import { buildParameters, wholeNumber } from './params.ts';

const CATCH_UP: readonly CatchUp[] = ['none', 'latest', 'all'];
const catchUpOption = () =>
  new Option('--catch-up <policy>', 'missed ticks: none, latest (default), all').choices(CATCH_UP);
/** `--param key=value`, repeatable. */
const collect = (value: string, all: string[]) => [...all, value];

/** A call of the SDK, its failure in the CLI's words (one line, its exit code). */
async function withClient<T>(command: Command, work: (client: TaskerClient) => Promise<T>): Promise<T> {
  const { client, url } = connect(command);
  return work(client).catch((error: unknown) => Promise.reject(describeError(error, url)));
}

const json = (command: Command) => command.optsWithGlobals<{ json?: boolean }>().json === true;

function printSchedule(s: Schedule): void {
  printTable(
    [
      ['id', s.id],
      ['key', s.key ?? '-'],
      ['task', s.name],
      ['input', JSON.stringify(s.input)],
      ['cron', `${s.cron}  (${s.timezone})`],
      ['catch up', s.catchUp],
      ['paused', s.paused ? 'yes' : 'no'],
      ['next fire', time(s.nextFireAt)],
      ['last fire', time(s.lastFireAt)],
      [
        'skipped',
        s.skippedRuns > 0 ? `${s.skippedRuns} (last ${time(s.lastSkippedFor)}, ${s.lastSkipReason})` : '0',
      ],
    ],
    (_r, c, text) => (c === 0 ? paint('dim', text) : text),
  );
}

/**
 * `tasker schedules [list] | create | get | update | pause | resume | delete`: the tenant's schedules, through
 * the SDK (tasks:write to change, tasks:read to read).
 */
export function schedulesCommand(program: Command): void {
  const schedules = program
    .command('schedules')
    .description("The tenant's schedules: a task type run at each tick of a cron in a time zone")
    .option('--json', 'JSON on stdout');

  schedules
    .command('list', { isDefault: true })
    .description('The schedules, oldest first')
    .option('--json', 'JSON on stdout')
    .option('--limit <n>', 'schedules per page, 1 to 200', wholeNumber(1, 200), 50)
    .option('--cursor <id>', 'the page after this schedule (the previous page says it)')
    .action(async (options: { limit: number; cursor?: string }, command: Command) => {
      const page = await withClient(command, (c) =>
        c.schedules.list({ limit: options.limit, cursor: options.cursor }),
      );
      if (json(command)) return printJson(page);
      printTable(
        [
          ['ID', 'KEY', 'TASK', 'CRON', 'TIMEZONE', 'NEXT FIRE', 'PAUSED'],
          ...page.schedules.map((s) => [
            s.id,
            s.key ?? '-',
            s.name,
            s.cron,
            s.timezone,
            time(s.nextFireAt),
            s.paused ? 'yes' : 'no',
          ]),
        ],
        (r, _c, text) => (r === 0 ? paint('bold', text) : text),
      );
      if (page.nextCursor) process.stderr.write(`more: tasker schedules list --cursor ${page.nextCursor}\n`);
    });

  schedules
    .command('create')
    .description('Creates a schedule; with a --key the tenant already uses, updates that one (idempotent)')
    .option('--json', 'JSON on stdout')
    .option('-q, --quiet', "the schedule's id only (for a script: ID=$(tasker schedules create … -q))")
    .argument('<task>', 'the task type each tick runs')
    .requiredOption('--cron <cron>', '5 fields (minute hour day month weekday), or 6 with seconds first')
    .option('--timezone <zone>', 'an IANA time zone (default UTC)')
    .option('--key <key>', 'unique per tenant: creating again with it updates that schedule')
    .option(
      '-p, --param <key=value>',
      'a parameter (repeatable), read as JSON if it parses, else as text',
      collect,
      [] as string[],
    )
    .option('-i, --input <json>', 'the parameters as one JSON object (--param values override)')
    .addOption(catchUpOption())
    .option('--paused', 'created paused')
    .option('--priority <n>', "its tasks' priority, 0 to 100", wholeNumber(0, 100))
    .option('--max-attempts <n>', "its tasks' attempts in all", wholeNumber(1, 100))
    .option('--timeout-ms <n>', 'an attempt running longer is aborted', wholeNumber(100, 86_400_000))
    .option(
      '--ttl-ms <n>',
      'a task not started within this many ms ends EXPIRED',
      wholeNumber(100, 2_592_000_000),
    )
    .option('--concurrency-key <key>', "its tasks share this key's concurrency limits")
    .addHelpText(
      'after',
      `
Examples:
  tasker schedules create sum_two_numbers --param a=1 --param b=2 --cron '0 2 * * *' --timezone Europe/Paris --key nightly
  tasker schedules create sum_two_numbers --input '{"a":1,"b":2}' --cron '*/10 * * * * *' --catch-up all`,
    )
    .action(
      async (
        task: string,
        options: ScheduleOptions & { cron: string; param: string[]; input?: string; quiet?: boolean },
        command: Command,
      ) => {
        const { cron, param, input, quiet, ...rest } = options;
        const made = await withClient(command, (c) =>
          c.schedules.create({
            name: task as TaskName,
            input: buildParameters(input, param, undefined) as never,
            cron,
            ...rest,
          }),
        );
        if (json(command)) return printJson(made);
        if (quiet) {
          process.stdout.write(`${made.id}\n`);
          return;
        }
        printSchedule(made);
      },
    );

  schedules
    .command('get')
    .description('A schedule, its next 5 fire times and its latest runs')
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the schedule')
    .action(async (id: string, _options: object, command: Command) => {
      const detail = await withClient(command, (c) => c.schedules.get(id));
      if (json(command)) return printJson(detail);
      printSchedule(detail);
      process.stdout.write(`\n${paint('bold', 'next fires')}\n`);
      for (const at of detail.nextFires) process.stdout.write(`  ${time(at)}\n`);
      process.stdout.write(`\n${paint('bold', 'latest runs')}\n`);
      if (detail.runs.length === 0) process.stdout.write('  none yet\n');
      else
        printTable(
          detail.runs.map((r) => [`  ${time(r.scheduledFor)}`, statusText(r.status), r.id]),
          (_r, _c, text) => text,
        );
    });

  schedules
    .command('update')
    .description(
      'Changes a schedule: what is given changes (a new cron or zone starts from the next tick after now)',
    )
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the schedule')
    .option('--cron <cron>', '5 fields (minute hour day month weekday), or 6 with seconds first')
    .option('--timezone <zone>', 'an IANA time zone')
    .option('-p, --param <key=value>', 'a parameter of the new input (repeatable)', collect, [] as string[])
    .option('-i, --input <json>', 'the new input as one JSON object (--param values override)')
    .addOption(catchUpOption())
    .addHelpText(
      'after',
      `
Examples:
  tasker schedules update <id> --cron '0 3 * * *' --timezone America/New_York
  tasker schedules update <id> --param a=5 --param b=6 --catch-up none`,
    )
    .action(
      async (
        id: string,
        options: Omit<ScheduleChange, 'input' | 'paused'> & { param: string[]; input?: string },
        command: Command,
      ) => {
        const { cron, timezone, catchUp, param, input } = options;
        const change: ScheduleChange = { cron, timezone, catchUp };
        // The input changes only when given, whole (a parameter left out is gone).
        if (input !== undefined || param.length > 0)
          change.input = buildParameters(input, param, undefined) as never;
        const s = await withClient(command, (c) => c.schedules.update(id, change));
        if (json(command)) return printJson(s);
        printSchedule(s);
      },
    );

  for (const [name, description, paused] of [
    ['pause', 'Pauses a schedule: it fires nothing until resumed', true],
    ['resume', 'Resumes a schedule from its next tick after now (the paused ticks are not caught up)', false],
  ] as const) {
    schedules
      .command(name)
      .description(description)
      .option('--json', 'JSON on stdout')
      .argument('<id>', 'the schedule')
      .action(async (id: string, _options: object, command: Command) => {
        const s = await withClient(command, (c) => (paused ? c.schedules.pause(id) : c.schedules.resume(id)));
        if (json(command)) return printJson(s);
        process.stdout.write(`${s.id} ${paused ? 'paused' : `resumed; next fire ${time(s.nextFireAt)}`}\n`);
      });
  }

  schedules
    .command('delete')
    .description('Deletes a schedule (its tasks stay)')
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the schedule')
    .action(async (id: string, _options: object, command: Command) => {
      const s = await withClient(command, (c) => c.schedules.delete(id));
      if (json(command)) return printJson(s);
      process.stdout.write(`${s.id} deleted\n`);
    });
}
