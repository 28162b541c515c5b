import { readFile } from 'node:fs/promises';
import {
  type RunOptions,
  type Task,
  TaskFailedError,
  type TaskName,
  type TaskStatus,
  type TaskStepEvent,
  type TaskUpdate,
  toTaskerError,
} from '@tasker/sdk';
import { isTerminal, listInWords, RETRYABLE_STATUSES, TASK_STATUSES } from '@tasker/states';
import { type Command, InvalidArgumentError } from 'commander';
import { type Connection, connect } from './connect.ts';
import { parseDuration, parseDurationMs } from './duration.ts';
import { CliError, describeError, EXIT } from './errors.ts';
import { typeLimitsCommand } from './limits.ts';
import { clip, paint, printJson, printTable, Spinner, statusText, time, valueText } from './output.ts';
import { asOption, buildParameters, wholeNumber } from './params.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * The server's rules for the keys of a submission, copied: they live in apps/server/src/router/schemas.ts
 * (`submitKey`: 1 to 200 characters, none a control character; `debounce.delay_ms`: 0 to DAY_MS),
 * which exports neither (and the server is no runtime dependency of the CLI). Checked here so that a
 * bad value is a usage error (exit 2) before anything is asked; the server checks them again.
 */
const DEBOUNCE_MAX_MS = 24 * 3600 * 1000;

/** A key of a submission: 1 to 200 characters, no control character (the server's `submitKey`). */
function keyOption(value: string): string {
  if (value.length < 1 || value.length > 200 || /\p{Cc}/u.test(value))
    throw new InvalidArgumentError('1 to 200 characters, no control character');
  return value;
}

/** The options of `run`, as the command line gave them. */
export interface RunFlags {
  delay?: number;
  priority?: number;
  ttl?: number;
  concurrencyKey?: string;
  singletonKey?: string;
  debounceKey?: string;
  debounceMs?: number;
  tag?: string[];
  metadata?: Record<string, unknown>;
  webhookUrl?: string;
}

/**
 * A tag: 1 to 64 characters, no control character and no comma (the server's `tagSchema`, copied
 * for the same reason as the keys' rule above).
 */
function tagOption(value: string, previous: string[] = []): string[] {
  if (value.length < 1 || value.length > 64 || /[\p{Cc},]/u.test(value))
    throw new InvalidArgumentError('1 to 64 characters, no control character and no comma');
  return [...previous, value];
}

/** A JSON object on the command line (`--metadata`): anything else is a usage error. */
function jsonObjectOption(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new InvalidArgumentError('a JSON object, e.g. {"team":"billing"}');
  return parsed as Record<string, unknown>;
}

/** Most tasks one batch holds (the server's MAX_BATCH_SIZE). */
const MAX_BATCH = 1000;

/**
 * The tasks of `run --batch <file>`: one JSON object a line, each as POST /tasks takes one
 * (`{"name": …, "input": {…}, "priority": 5, "tags": […]}`, snake_case as on REST); blank lines
 * are skipped. Not JSON, not an object, none or more than 1,000: a usage error naming the line.
 */
export function batchLines(text: string, file: string): Record<string, unknown>[] {
  const items: Record<string, unknown>[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    let item: unknown;
    try {
      item = JSON.parse(line);
    } catch (error) {
      throw new CliError(
        `${file}, line ${index + 1}: not JSON (${error instanceof Error ? error.message : String(error)})`,
        EXIT.usage,
      );
    }
    if (item === null || typeof item !== 'object' || Array.isArray(item))
      throw new CliError(`${file}, line ${index + 1}: not a JSON object`, EXIT.usage);
    items.push(item as Record<string, unknown>);
  });
  if (items.length === 0 || items.length > MAX_BATCH)
    throw new CliError(`${file}: 1 to ${MAX_BATCH} tasks a batch (it holds ${items.length})`, EXIT.usage);
  return items;
}

/** The SDK's run options from `run`'s flags; `--debounce-key` and `--debounce-ms` go together. */
export function runOptionsOf(flags: RunFlags): RunOptions {
  if ((flags.debounceKey === undefined) !== (flags.debounceMs === undefined))
    throw new CliError('--debounce-key and --debounce-ms go together: give both, or neither', EXIT.usage);
  return {
    delayMs: flags.delay,
    priority: flags.priority,
    ttlMs: flags.ttl,
    concurrencyKey: flags.concurrencyKey,
    singletonKey: flags.singletonKey,
    debounce:
      flags.debounceKey !== undefined && flags.debounceMs !== undefined
        ? { key: flags.debounceKey, delayMs: flags.debounceMs }
        : undefined,
    tags: flags.tag && flags.tag.length > 0 ? flags.tag : undefined,
    metadata: flags.metadata,
    webhookUrl: flags.webhookUrl,
  };
}

/** `--status a,b` (repeatable): every status of @tasker/states, in any case. */
export function statusOption(value: string, previous: TaskStatus[] = []): TaskStatus[] {
  const statuses = value.split(',').map((s) => s.trim().toUpperCase());
  const unknown = statuses.filter((s) => !(TASK_STATUSES as readonly string[]).includes(s));
  if (unknown.length > 0)
    throw new InvalidArgumentError(`statuses are ${TASK_STATUSES.join(', ')} (got "${value}")`);
  return [...previous, ...(statuses as TaskStatus[])];
}

function idArgument(value: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) {
    throw new InvalidArgumentError('a task id is a UUID, e.g. 0b5f0c1e-2a3b-4c5d-8e9f-0a1b2c3d4e5f');
  }
  return value.toLowerCase();
}

function attemptsText(t: { attempts: number; maxAttempts: number }): string {
  return `${t.attempts} of ${t.maxAttempts}`;
}

/** A task's record as `key  value` lines. */
function printTask(task: Task | TaskUpdate): void {
  const rows: string[][] = [
    ['id', task.id],
    ['type', task.name],
    ['status', task.status],
    ['attempts', attemptsText(task)],
    ['concurrency key', task.concurrencyKey],
    ['created', time(task.createdAt)],
    ['started', time(task.startedAt)],
    ['finished', time(task.finishedAt)],
  ];
  if (task.runAfter) rows.push(['run after', time(task.runAfter)]);
  if (task.waitingFor) rows.push(['waiting for', waitingText(task.waitingFor)]);
  if (task.parentId) rows.push(['parent', task.parentId]);
  if ('children' in task && task.children && task.children.total > 0) {
    const counts = Object.entries(task.children.byStatus)
      .filter(([, n]) => n > 0)
      .map(([status, n]) => `${n} ${status}`);
    rows.push(['children', `${task.children.total} (${counts.join(', ')})`]);
  }
  for (const child of ('childTasks' in task ? task.childTasks : undefined) ?? [])
    rows.push([`child ${child.id}`, `${child.name} ${child.status}`]);
  if (task.expiresAt) rows.push(['expires', `${time(task.expiresAt)} (ttl ${task.ttlMs} ms)`]);
  if (task.singletonKey) rows.push(['singleton key', task.singletonKey]);
  if (task.debounceKey) rows.push(['debounce key', task.debounceKey]);
  if (task.tags.length > 0) rows.push(['tags', task.tags.join(', ')]);
  if (task.metadata) rows.push(['metadata', JSON.stringify(task.metadata)]);
  if (task.webhookUrl) rows.push(['webhook', task.webhookUrl]);
  if (task.usage) {
    const { promptTokens, completionTokens, calls, model, costUsd } = task.usage;
    const cost =
      costUsd === null
        ? 'cost unknown (no price for the model)'
        : `$${new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 }).format(costUsd)}`;
    rows.push([
      'model usage',
      `${promptTokens} + ${completionTokens} tokens, ${calls} calls (${model}), ${cost}`,
    ]);
  }
  if (task.cancelRequestedAt) rows.push(['cancel asked', time(task.cancelRequestedAt)]);
  for (const step of task.steps ?? []) {
    const result = step.status === 'failed' ? (step.error?.message ?? '') : (step.preview ?? '');
    rows.push([`step ${step.id}`, `${step.status} ${time(step.finishedAt)} ${result}`.trimEnd()]);
  }
  if ('input' in task) rows.push(['input', JSON.stringify(task.input)]);
  if (task.status === 'COMPLETED') rows.push(['output', valueText(task.output)]);
  if (task.error) rows.push(['error', `${task.error.code}: ${task.error.message}`]);
  if (task.status === 'RUNNING' && task.progress !== null)
    rows.push(['progress', JSON.stringify(task.progress)]);
  printTable(rows, (_r, c, text) => {
    if (c === 0) return paint('dim', text);
    return (TASK_STATUSES as readonly string[]).includes(text) ? statusText(text) : text;
  });
}

/** What a WAITING task waits for, in words. */
function waitingText(waitingFor: NonNullable<TaskUpdate['waitingFor']>): string {
  if (waitingFor.kind === 'children') return `${waitingFor.children?.length ?? 0} child tasks`;
  if (waitingFor.kind === 'token')
    return `token ${waitingFor.token} until ${time(waitingFor.until ?? null)} (tasker tokens complete ${waitingFor.token} --output JSON)`;
  return `${time(waitingFor.until ?? null)} (a sleep)`;
}

/** `progress.partial` of a RUNNING task as text (query_chatgpt reports its reply so far). */
function partialText(update: TaskUpdate): string | undefined {
  const progress = update.progress as { partial?: unknown } | null;
  return typeof progress?.partial === 'string' ? progress.partial : undefined;
}

function statusLine(update: TaskUpdate): string {
  const status = statusText(update.status, process.stderr);
  const detail =
    update.status === 'RUNNING'
      ? ` (attempt ${update.attempts} of ${update.maxAttempts})`
      : update.status === 'PENDING' && update.attempts > 0
        ? // Its last attempt failed (a retry), or suspended and was woken (the same attempt goes on).
          update.attemptErrors.length >= update.attempts
          ? ` (retry ${update.attempts + 1} of ${update.maxAttempts})`
          : ' (its wait is over: it resumes)'
        : update.waitingFor
          ? ` (waiting for ${waitingText(update.waitingFor)})`
          : '';
  return `${update.name} ${paint('dim', update.id, process.stderr)} ${status}${detail}`;
}

/** A durable step as `watch` shows it on stderr: `  step fetch completed`, a failure with its message. */
function stepLine(step: TaskStepEvent): string {
  const style = step.status === 'completed' ? 'green' : step.status === 'failed' ? 'red' : 'yellow';
  const why = step.status === 'failed' && step.error ? `: ${clip(step.error.message, 200)}` : '';
  return `  step ${step.id} ${paint(style, step.status, process.stderr)}${why}`;
}

/**
 * Follows a task to its end. `watch`: each status on stderr, each durable step as it is written
 * (`  step <id> <status>`), and the reply streaming to stdout as it grows (progress.partial), then
 * the rest of the result; `--json` makes it one JSON line per
 * update. Else (`--wait`): a spinner on a terminal, then the result (with `--json`, the final
 * record). A task that ends FAILED or CANCELLED is exit 1, EXPIRED exit 6 (exitCodeOf).
 */
async function follow(
  connection: Connection,
  id: string,
  mode: { watch: boolean; json: boolean },
): Promise<void> {
  const { client, url } = connection;
  const spinner = new Spinner();
  let printed = '';
  let lastStatus = '';
  let final: TaskUpdate | undefined;
  try {
    for await (const event of client.task(id).activity()) {
      if (event.type === 'step') {
        if (mode.watch && !mode.json) {
          spinner.stop();
          process.stderr.write(`${stepLine(event.step)}\n`);
        }
        continue;
      }
      const update = event.task;
      final = update;
      if (mode.json) {
        if (mode.watch) process.stdout.write(`${JSON.stringify(update)}\n`);
        continue;
      }
      if (!mode.watch) {
        spinner.text(statusLine(update));
        continue;
      }
      if (isTerminal(update.status)) break;
      if (update.status !== lastStatus) {
        lastStatus = update.status;
        spinner.stop();
        // A retry starts the reply over: end the line of the attempt before.
        if (printed) process.stdout.write('\n');
        printed = '';
        process.stderr.write(`${statusLine(update)}\n`);
      }
      const partial = update.status === 'RUNNING' ? partialText(update) : undefined;
      if (partial !== undefined && partial !== printed) {
        spinner.stop();
        if (partial.startsWith(printed)) process.stdout.write(partial.slice(printed.length));
        else process.stdout.write(`\n${partial}`);
        printed = partial;
      } else if (!printed) {
        spinner.text(`${statusText(update.status, process.stderr)}…`);
      }
    }
  } catch (error) {
    throw describeError(error, url);
  } finally {
    spinner.stop();
  }
  if (!final) throw new CliError(`the stream of task ${id} ended with no news`, EXIT.failed);
  if (mode.json && !mode.watch) {
    printJson(await client.get(id).catch((error: unknown) => Promise.reject(describeError(error, url))));
  } else if (!mode.json && final.status === 'COMPLETED') {
    const output = final.output;
    if (typeof output === 'string' && printed && output.startsWith(printed)) {
      process.stdout.write(`${output.slice(printed.length)}\n`);
    } else {
      if (printed) process.stdout.write('\n');
      process.stdout.write(`${valueText(output)}\n`);
    }
  } else if (printed) {
    process.stdout.write('\n');
  }
  if (mode.watch && !mode.json) process.stderr.write(`${statusLine(final)}\n`);
  if (final.status === 'COMPLETED') return;
  // The SDK's words for the end (`task … failed: …`, `… was cancelled: …`, `… expired: …`) and its exit code.
  if (isTerminal(final.status)) throw describeError(new TaskFailedError(id, final.status, final.error), url);
  throw new CliError(`the stream of task ${id} ended while it is ${final.status}`, EXIT.failed);
}

/**
 * `run --batch <file>`: the file's tasks in one POST /tasks/batch (tRPC runTasks), all or nothing.
 * Prints one line per task, in the file's order: its id and `created`, or the key that matched an
 * existing task (`idempotency`, `singleton`); `--json`, the answer. A refused batch stores nothing:
 * its issues name each bad task by its index (`tasks.3.input.a`: the file's 4th task).
 */
async function runBatch(
  connection: Connection,
  file: string,
  options: RunFlags & { param: string[]; input?: string; wait?: boolean; watch?: boolean; json?: boolean },
  type: string | undefined,
): Promise<void> {
  const single = Object.entries({
    '<type>': type,
    '--param': options.param.length > 0 ? true : undefined,
    '--input': options.input,
    '--wait': options.wait,
    '--watch': options.watch,
    '--tag': options.tag,
    '--metadata': options.metadata,
    '--webhook-url': options.webhookUrl,
    '--delay': options.delay,
    '--priority': options.priority,
    '--ttl': options.ttl,
    '--concurrency-key': options.concurrencyKey,
    '--singleton-key': options.singletonKey,
    '--debounce-key': options.debounceKey,
  })
    .filter(([, value]) => value !== undefined)
    .map(([flag]) => flag);
  if (single.length > 0)
    throw new CliError(
      `--batch takes its tasks and their options from the file: not with ${single.join(', ')}`,
      EXIT.usage,
    );
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`,
      EXIT.usage,
    );
  }
  const items = batchLines(text, file === '-' ? 'stdin' : file);
  const { client, url } = connection;
  const answer = await client.trpc.runTasks
    .mutate({ tasks: items as Parameters<typeof client.trpc.runTasks.mutate>[0]['tasks'] })
    .catch((error: unknown) => Promise.reject(describeError(toTaskerError(error), url)));
  if (options.json) {
    printJson(answer);
    return;
  }
  for (const task of answer.tasks) process.stdout.write(`${task.id}  ${task.matched ?? 'created'}\n`);
  if (process.stderr.isTTY) {
    const created = answer.tasks.filter((t) => t.created).length;
    process.stderr.write(
      `${paint('dim', `${created} created, ${answer.tasks.length - created} answered by an existing task`, process.stderr)}\n`,
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `run`, `get`, `list`, `cancel`, `retry` and `watch`: through the SDK, on TASKER_URL. */
export function taskCommands(program: Command): void {
  program
    .command('run')
    .description('Submit a task; prints its id (or, with --wait, its result). --batch: many at once')
    .argument('[type]', 'the task type, e.g. sum_two_numbers (`tasker types` lists them); none with --batch')
    .option(
      '-p, --param <key=value>',
      'a parameter (repeatable); read as the type’s schema says (number, boolean, text), else as JSON, else as text',
      collect,
      [],
    )
    .option('-i, --input <json>', 'the parameters as one JSON object (--param values override)')
    .option(
      '--delay <duration>',
      'start no sooner than this from now: 90s, 15m, 12h, 30d',
      asOption((value) => parseDuration(value) * 1000),
    )
    .option('--priority <n>', '0 (default) to 100: higher runs first', wholeNumber(0, 100))
    .option(
      '--ttl <duration>',
      'not started within this (500ms, 30s, 15m, ...; from --delay, else now), it ends EXPIRED without running',
      asOption(parseDurationMs),
    )
    .option(
      '--concurrency-key <key>',
      "tasks with one key share its concurrency limits (default: the tenant's)",
      keyOption,
    )
    .option(
      '--singleton-key <key>',
      'while a task with this key is unfinished, print its id instead of making a new one',
      keyOption,
    )
    .option(
      '--debounce-key <key>',
      'runs with this key collapse into one task, started --debounce-ms after the last (with its parameters)',
      keyOption,
    )
    .option(
      '--debounce-ms <n>',
      'with --debounce-key: milliseconds after the last run (0 to 1 day)',
      wholeNumber(0, DEBOUNCE_MAX_MS, 'milliseconds: 1 day'),
    )
    .option(
      '--tag <tag>',
      'a label to find the task by (repeatable, at most 10): tasker list --tag',
      tagOption,
    )
    .option('--metadata <json>', 'a JSON object kept with the task (at most 4 KB)', jsonObjectOption)
    .option(
      '--webhook-url <url>',
      "POSTed the task's final state when it ends, signed with the tenant's task secret (tasker webhooks task-secret)",
    )
    .option(
      '--batch <file>',
      'submit the tasks of a JSON Lines file (- for stdin), all or nothing: one POST /tasks body a line, at most 1,000; prints each id and whether it was created or matched',
    )
    .option('-w, --wait', 'wait for the end and print the result (a spinner on a terminal)')
    .option('--watch', 'show each status and stream the reply as it grows, then the result')
    .option('--json', 'JSON on stdout: the task record (with --watch, one JSON line per update)')
    .addHelpText(
      'after',
      `
Examples:
  tasker run sum_two_numbers --param a=1 --param b=2 --wait
  tasker run query_chatgpt --param prompt="Tell me a joke" --watch
  tasker run sum_two_numbers --input '{"a": 1, "b": 2}' --json
  tasker run sum_two_numbers -p a=1 -p b=2 --singleton-key nightly --ttl 10m
  tasker run sum_two_numbers -p a=1 -p b=2 --debounce-key reindex-7 --debounce-ms 5000 --concurrency-key customer-7
  tasker run sum_two_numbers -p a=1 -p b=2 --tag nightly --metadata '{"team":"billing"}'
  tasker run --batch tasks.jsonl     # lines like {"name":"sum_two_numbers","input":{"a":1,"b":2},"tags":["x"]}`,
    )
    .action(
      async (
        type: string | undefined,
        options: RunFlags & {
          param: string[];
          input?: string;
          wait?: boolean;
          watch?: boolean;
          json?: boolean;
          batch?: string;
        },
        command: Command,
      ) => {
        const connection = connect(command);
        const { client, url } = connection;
        if (options.batch !== undefined) {
          await runBatch(connection, options.batch, options, type);
          return;
        }
        if (type === undefined) throw new CliError('give a task type, or --batch <file>', EXIT.usage);
        const runOptions = runOptionsOf(options);
        try {
          // The parameters' JSON Schema says how to read each --param (a type it does not know: none).
          const schema =
            options.param.length > 0
              ? (await client.taskTypes().catch(() => [])).find((t) => t.name === type)?.parameters
              : undefined;
          const parameters = buildParameters(options.input, options.param, schema);
          const handle = await client.run(type as TaskName, parameters as never, runOptions);
          if (handle.deduplicated && process.stderr.isTTY) {
            const why =
              options.singletonKey !== undefined ? 'its singleton key is held' : 'debounced into it';
            process.stderr.write(`${paint('dim', `an existing task: ${why}`, process.stderr)}\n`);
          }
          if (options.wait || options.watch) {
            if (!options.json && options.wait && !options.watch && process.stderr.isTTY) {
              process.stderr.write(`${paint('dim', `submitted ${type} ${handle.id}`, process.stderr)}\n`);
            }
            await follow(connection, handle.id, {
              watch: Boolean(options.watch),
              json: Boolean(options.json),
            });
            return;
          }
          if (options.json) printJson(await handle.get());
          else process.stdout.write(`${handle.id}\n`);
        } catch (error) {
          throw describeError(error, url);
        }
      },
    );

  program
    .command('get')
    .description('Show a task: status, attempts, times, input, output or error')
    .argument('<id>', 'the task id', idArgument)
    .option('--json', 'the task record as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const { client, url } = connect(command);
      const task = await client.get(id).catch((error: unknown) => Promise.reject(describeError(error, url)));
      if (options.json) printJson(task);
      else printTask(task);
    });

  program
    .command('list')
    .description('List tasks, newest first')
    .option(
      '-s, --status <status>',
      `only these statuses (comma-separated or repeated): ${TASK_STATUSES.join(', ')}`,
      statusOption,
    )
    .option('-t, --type <type>', 'only this task type (repeatable)', collect, [])
    .option('--tag <tag>', 'only tasks carrying this tag (repeatable: every one of them)', tagOption)
    .option(
      '--metadata <json>',
      'only tasks whose metadata contains this JSON object, e.g. {"team":"billing"}',
      jsonObjectOption,
    )
    .option('--parent <id>', 'only the child tasks of this task (ctx.run, ctx.runMany)', idArgument)
    .option('-n, --limit <n>', 'at most this many (1 to 500)', wholeNumber(1, 500), 20)
    .option('--cursor <cursor>', 'the page after the one that printed this cursor')
    .option('--json', '{"tasks": [...], "nextCursor": ...} as JSON')
    .action(
      async (
        options: {
          status?: TaskStatus[];
          type: string[];
          tag?: string[];
          metadata?: Record<string, unknown>;
          parent?: string;
          limit: number;
          cursor?: string;
          json?: boolean;
        },
        command: Command,
      ) => {
        const { client, url } = connect(command);
        const page = await client
          .list({
            status: options.status,
            name: options.type.length > 0 ? (options.type as TaskName[]) : undefined,
            tags: options.tag,
            metadataContains: options.metadata,
            parentId: options.parent,
            limit: options.limit,
            cursor: options.cursor,
          })
          .catch((error: unknown) => Promise.reject(describeError(error, url)));
        if (options.json) {
          printJson(page);
          return;
        }
        if (page.tasks.length === 0) {
          process.stderr.write('no tasks\n');
          return;
        }
        printTable(
          [
            ['ID', 'TYPE', 'STATUS', 'ATTEMPTS', 'KEY', 'CREATED', 'FINISHED', 'TAGS', 'INPUT'],
            ...page.tasks.map((t) => [
              t.id,
              t.name,
              t.status,
              attemptsText(t),
              // The concurrency key, its start when long.
              clip(t.concurrencyKey, 24),
              time(t.createdAt),
              time(t.finishedAt),
              t.tags.length > 0 ? clip(t.tags.join(','), 24) : '-',
              // A list row carries a preview of the input (its JSON cut at 1 KiB): its start, here.
              clip(t.inputPreview.json, 40, t.inputPreview.truncated),
            ]),
          ],
          (r, c, text) =>
            r === 0
              ? paint('bold', text)
              : c === 2
                ? statusText(text.trim()) + text.slice(text.trim().length)
                : text,
        );
        if (page.nextCursor) {
          process.stderr.write(`more: tasker list --cursor ${page.nextCursor} (same filters)\n`);
        }
      },
    );

  for (const [name, description] of [
    [
      'cancel',
      'Cancel a task: a PENDING one never runs, a WAITING one never resumes, a RUNNING one is aborted',
    ],
    ['retry', `Run a ${listInWords(RETRYABLE_STATUSES)} task again, under the same id`],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument('<id>', 'the task id', idArgument)
      .option('--json', 'the task record as JSON')
      .action(async (id: string, options: { json?: boolean }, command: Command) => {
        const { client, url } = connect(command);
        const handle = client.task(id);
        const task = await (name === 'cancel' ? handle.cancel() : handle.retry()).catch((error: unknown) =>
          Promise.reject(describeError(error, url)),
        );
        if (options.json) {
          printJson(task);
          return;
        }
        const note =
          name === 'cancel' && task.status !== 'CANCELLED' ? ' (cancellation requested, it stops soon)' : '';
        process.stdout.write(`${task.id} ${statusText(task.status)}${note}\n`);
      });
  }

  program
    .command('watch')
    .description('Follow a task live: each status, the reply as it streams, then the result')
    .argument('<id>', 'the task id', idArgument)
    .option('--json', 'one JSON line per update')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const connection = connect(command);
      // A clear 404 before subscribing to a task that does not exist.
      await connection.client
        .get(id)
        .catch((error: unknown) => Promise.reject(describeError(error, connection.url)));
      await follow(connection, id, { watch: true, json: Boolean(options.json) });
    });

  const types = program
    .command('types')
    .description('The task types the server runs, with their parameters')
    .option('--json', 'the list as JSON, with each type’s JSON Schemas')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { client, url } = connect(command);
      const types = await client
        .taskTypes()
        .catch((error: unknown) => Promise.reject(describeError(error, url)));
      if (options.json) {
        printJson(types);
        return;
      }
      const params = (schema: Record<string, unknown>) => {
        const properties = (schema.properties ?? {}) as Record<string, { type?: unknown }>;
        return Object.entries(properties)
          .map(([key, p]) => `${key}:${typeof p.type === 'string' ? p.type : 'json'}`)
          .join(' ');
      };
      printTable(
        [
          ['TYPE', 'PARAMETERS', 'DESCRIPTION'],
          ...types.map((t) => [t.name, params(t.parameters), t.description]),
        ],
        (r, _c, text) => (r === 0 ? paint('bold', text) : text),
      );
    });
  typeLimitsCommand(types);
}
