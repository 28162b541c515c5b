import { createTaskerClient, type TaskerClient } from '@tasker/sdk';
import type { Command } from 'commander';
import { z } from 'zod';
import { CliError, EXIT } from './errors.ts';

export const DEFAULT_URL = 'http://127.0.0.1:5000';

const urlSchema = z.url({ protocol: /^https?$/ });

export interface Connection {
  client: TaskerClient;
  url: string;
}

/** The server of `--url` / TASKER_URL and the key of `--api-key` / TASKER_API_KEY, through the SDK. */
export function connect(command: Command): Connection {
  const globals = command.optsWithGlobals<{ url?: string; apiKey?: string }>();
  const url = globals.url || process.env.TASKER_URL || DEFAULT_URL;
  if (!urlSchema.safeParse(url).success) {
    throw new CliError(`--url / TASKER_URL: expected an http(s) URL, got "${url}"`, EXIT.usage);
  }
  const apiKey = globals.apiKey || process.env.TASKER_API_KEY || undefined;
  return { client: createTaskerClient({ url, apiKey }), url };
}
