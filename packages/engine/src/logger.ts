import { AsyncLocalStorage } from 'node:async_hooks';
import { pino } from 'pino';
import type { Env } from './config.ts';

export type Logger = pino.Logger;

/**
 * The request a piece of work is done for. The server enters it for each request; every log line
 * written meanwhile, by whichever module, carries its `requestId`.
 */
export const requestScope = new AsyncLocalStorage<{ requestId: string }>();

/**
 * JSON logs. Never a secret: authorization headers, API keys and the OpenAI key are redacted, and
 * no module logs task input (prompts) or output.
 */
export function createLogger(
  env: Pick<Env, 'LOG_LEVEL'>,
  name: string,
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      name,
      level: env.LOG_LEVEL,
      redact: [
        '*.apiKey',
        '*.key',
        '*.OPENAI_API_KEY',
        '*.OPENAI_FALLBACK_API_KEY',
        'req.headers.authorization',
        '*.authorization',
      ],
      mixin: () => requestScope.getStore() ?? {},
    },
    destination,
  );
}
