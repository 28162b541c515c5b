import { pino } from 'pino';
import type { Env } from './config.ts';

export type Logger = pino.Logger;

export function createLogger(env: Pick<Env, 'LOG_LEVEL'>, name: string): Logger {
  return pino({
    name,
    level: env.LOG_LEVEL,
    redact: ['*.apiKey', '*.OPENAI_API_KEY', 'req.headers.authorization'],
  });
}
