import type { WaitToken } from '@tasker/sdk';
import { type Command, InvalidArgumentError } from 'commander';
import { connect } from './connect.ts';
import { describeError } from './errors.ts';
import { paint, printJson, printTable, time } from './output.ts';

/** `--output '{"approved":true}'`: any JSON value. */
function jsonOutput(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}

/** A callback URL (what a handler's ctx.createToken gave as url) rather than a token id. */
const isUrl = (value: string) => /^https?:\/\//i.test(value);

function printToken(token: WaitToken): void {
  printTable(
    [
      ['token', token.id],
      ['task', token.taskId],
      ['status', token.status],
      ['completed', time(token.completedAt)],
      ['timeout', time(token.timeoutAt)],
    ],
    (_r, c, text) => (c === 0 ? paint('dim', text) : text),
  );
}

/**
 * `tasker tokens complete TOKEN [--output JSON]`: completes a wait token (a handler's
 * `ctx.waitForToken`), so that its task resumes with the output. TOKEN is the token's id (a key of
 * its tenant with tasks:write), or its callback URL (no key needed).
 */
export function tokensCommand(program: Command): void {
  const tokens = program
    .command('tokens')
    .description('Wait tokens: complete one, and the task waiting for it (ctx.waitForToken) resumes');

  tokens
    .command('complete')
    .description('Completes a wait token once, with an output (JSON); its task resumes with it')
    .argument('<token>', "the token's id (a task's waiting_for.token), or its callback URL")
    .option('-o, --output <json>', 'what ctx.waitForToken returns: any JSON (default null)', jsonOutput)
    .option('--json', 'JSON on stdout')
    .addHelpText(
      'after',
      `
Examples:
  tasker tokens complete 0b9c…-… --output '{"approved":true}'
  tasker tokens complete http://127.0.0.1:5000/token-callbacks/… --output '"done"'

A token is completed once, before its timeout, while its task waits: a second completion, a token
past its timeout or of a finished task exits 5 (409); an unknown one exits 5 (404).`,
    )
    .action(async (token: string, options: { output?: unknown; json?: boolean }, command: Command) => {
      const { client, url } = connect(command);
      const output = options.output === undefined ? null : options.output;
      const done = await (isUrl(token)
        ? client.tokens.completeByUrl(token, output)
        : client.tokens.complete(token, output)
      ).catch((error: unknown) => Promise.reject(describeError(error, url)));
      if (options.json) return printJson(done);
      printToken(done);
      process.stderr.write(`Task ${done.taskId} resumes with the output.\n`);
    });
}
