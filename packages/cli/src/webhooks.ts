import type { TaskerClient, TaskName, Webhook, WebhookDelivery, WebhookEvent } from '@tasker/sdk';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { connect } from './connect.ts';
import { describeError } from './errors.ts';
import { paint, printJson, printTable, time } from './output.ts';
import { wholeNumber } from './params.ts';

const EVENTS: readonly WebhookEvent[] = ['task.completed', 'task.failed', 'task.cancelled', 'task.expired'];
const DELIVERY_STATUSES: readonly WebhookDelivery['status'][] = ['pending', 'delivered', 'failed'];

/** A call of the SDK, its failure in the CLI's words (one line, its exit code). */
async function withClient<T>(command: Command, work: (client: TaskerClient) => Promise<T>): Promise<T> {
  const { client, url } = connect(command);
  return work(client).catch((error: unknown) => Promise.reject(describeError(error, url)));
}

const json = (command: Command) => command.optsWithGlobals<{ json?: boolean }>().json === true;
const repeated = (value: string, all: string[] = []) => [...all, value];
/** `-e` taken again and again, each one of EVENTS. */
function event(value: string, all: WebhookEvent[] = []): WebhookEvent[] {
  const found = EVENTS.find((e) => e === value);
  if (!found) throw new InvalidArgumentError(`one of ${EVENTS.join(', ')}`);
  return [...all, found];
}

function printWebhook(w: Webhook): void {
  printTable(
    [
      ['id', w.id],
      ['tenant', w.tenant],
      ['url', w.url],
      ['events', w.events.join(', ')],
      ['task types', w.taskNames?.join(', ') ?? 'all'],
      ['created', time(w.createdAt)],
    ],
    (_r, c, text) => (c === 0 ? paint('dim', text) : text),
  );
}

/** Shown once: on stdout alone with --json, else on its own line with a warning on stderr. */
function printSecret(secret: string): void {
  process.stdout.write(`\n${paint('bold', 'secret')}  ${secret}\n`);
  process.stderr.write('The secret is shown this once: keep it where your receiver reads it.\n');
}

/**
 * `tasker webhooks [list] | create | get | delete | test | deliveries | redeliver | task-secret`:
 * the tenant's completion webhooks, through the SDK (an admin key; an operator key for any tenant).
 */
export function webhooksCommand(program: Command): void {
  const webhooks = program
    .command('webhooks')
    .description("The tenant's completion webhooks: signed POSTs when its tasks finish (admin)")
    .option('--json', 'JSON on stdout');

  webhooks
    .command('list', { isDefault: true })
    .description('The webhooks, newest first (never their secrets)')
    .option('--json', 'JSON on stdout')
    .option('--tenant <tenant>', "another tenant's (an operator key)")
    .action(async (options: { tenant?: string }, command: Command) => {
      const list = await withClient(command, (c) => c.webhooks.list({ tenant: options.tenant }));
      if (json(command)) return printJson(list);
      printTable(
        [
          ['ID', 'URL', 'EVENTS', 'TASK TYPES', 'CREATED'],
          ...list.map((w) => [
            w.id,
            w.url,
            w.events.join(','),
            w.taskNames?.join(',') ?? 'all',
            time(w.createdAt),
          ]),
        ],
        (r, _c, text) => (r === 0 ? paint('bold', text) : text),
      );
    });

  webhooks
    .command('create')
    .description('Registers a webhook; its signing secret is shown this once')
    .option('--json', 'JSON on stdout')
    .argument('<url>', 'an http:// or https:// URL, POSTed to on each event')
    .addOption(
      new Option('-e, --event <event>', `an event it is told of (repeatable): ${EVENTS.join(', ')}`)
        .argParser(event)
        .makeOptionMandatory(),
    )
    .option('-t, --task <name>', 'only tasks of this type (repeatable; default: every type)', repeated)
    .option('--tenant <tenant>', "another tenant's (an operator key)")
    .addHelpText(
      'after',
      `
Examples:
  tasker webhooks create https://hooks.example.com/tasker -e task.completed -e task.failed
  tasker webhooks create https://hooks.example.com/reports -e task.completed -t sum_two_numbers`,
    )
    .action(
      async (
        url: string,
        options: { event: WebhookEvent[]; task?: string[]; tenant?: string },
        command: Command,
      ) => {
        const made = await withClient(command, (c) =>
          c.webhooks.create({
            url,
            events: options.event,
            taskNames: options.task as TaskName[] | undefined,
            tenant: options.tenant,
          }),
        );
        if (json(command)) return printJson(made);
        printWebhook(made);
        printSecret(made.secret);
      },
    );

  webhooks
    .command('get')
    .description('A webhook (never its secret)')
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the webhook')
    .action(async (id: string, _options: object, command: Command) => {
      const found = await withClient(command, (c) => c.webhooks.get(id));
      if (json(command)) return printJson(found);
      printWebhook(found);
    });

  webhooks
    .command('delete')
    .description('Deletes a webhook and its deliveries')
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the webhook')
    .action(async (id: string, _options: object, command: Command) => {
      const gone = await withClient(command, (c) => c.webhooks.delete(id));
      if (json(command)) return printJson(gone);
      process.stdout.write(`deleted ${gone.id} (${gone.url})\n`);
    });

  webhooks
    .command('test')
    .description('Sends a signed webhook.test event now, once, and says what the receiver answered')
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the webhook')
    .action(async (id: string, _options: object, command: Command) => {
      const tested = await withClient(command, (c) => c.webhooks.test(id));
      if (json(command)) return printJson(tested);
      const { status, error, durationMs } = tested.attempt;
      const what = tested.delivered
        ? paint('green', `delivered (${status})`)
        : paint('red', error ?? 'failed');
      process.stdout.write(`${what} in ${durationMs} ms, webhook-id ${tested.id}\n`);
      if (!tested.delivered) process.exitCode = 1;
    });

  webhooks
    .command('deliveries')
    .description("A webhook's deliveries, newest first, with their attempts")
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the webhook')
    .addOption(new Option('--status <status>', 'only those in this status').choices(DELIVERY_STATUSES))
    .option('--limit <n>', 'at most this many, 1 to 100', wholeNumber(1, 100), 50)
    .action(
      async (
        id: string,
        options: { status?: WebhookDelivery['status']; limit: number },
        command: Command,
      ) => {
        const list = await withClient(command, (c) =>
          c.webhooks.deliveries(id, { status: options.status, limit: options.limit }),
        );
        if (json(command)) return printJson(list);
        printTable(
          [
            ['DELIVERY', 'TASK', 'EVENT', 'STATUS', 'ATTEMPTS', 'LAST', 'NEXT'],
            ...list.map((d) => [
              d.id,
              d.taskId,
              d.event,
              d.status,
              String(d.attempts),
              d.lastError ?? (d.lastStatus === null ? '-' : String(d.lastStatus)),
              time(d.nextAttemptAt),
            ]),
          ],
          (r, _c, text) => (r === 0 ? paint('bold', text) : text),
        );
      },
    );

  webhooks
    .command('redeliver')
    .description('Sends a delivery again from now, with a new round of attempts (same id and body)')
    .option('--json', 'JSON on stdout')
    .argument('<id>', 'the webhook')
    .argument('<delivery>', 'the delivery (its webhook-id)')
    .action(async (id: string, delivery: string, _options: object, command: Command) => {
      const again = await withClient(command, (c) => c.webhooks.redeliver(id, delivery));
      if (json(command)) return printJson(again);
      process.stdout.write(`${again.id}: ${again.status}, due ${time(again.nextAttemptAt)}\n`);
    });

  webhooks
    .command('task-secret')
    .description("Makes (or replaces) the secret that signs the deliveries to tasks' own webhook_url")
    .option('--json', 'JSON on stdout')
    .option('--tenant <tenant>', "another tenant's (an operator key)")
    .action(async (options: { tenant?: string }, command: Command) => {
      const made = await withClient(command, (c) => c.webhooks.rotateTaskSecret({ tenant: options.tenant }));
      if (json(command)) return printJson(made);
      process.stdout.write(`tenant ${made.tenant}\n`);
      printSecret(made.secret);
    });
}
