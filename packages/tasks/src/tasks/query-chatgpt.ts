import OpenAI from 'openai';
import { z } from 'zod';
import { defineTask, NonRetryableError, type TaskConfig } from '../define.ts';

const clients = new Map<string, OpenAI>();

/** One OpenAI client per process and configuration (it keeps its HTTP connections alive). */
function client(config: TaskConfig['openai']): OpenAI {
  const key = `${config.baseURL ?? ''}\u0000${config.apiKey ?? ''}`;
  let found = clients.get(key);
  if (!found) {
    // Retries belong to the queue (attempts + backoff), not to a second layer inside the handler.
    found = new OpenAI({ apiKey: config.apiKey, baseURL: config.baseURL, maxRetries: 0 });
    clients.set(key, found);
  }
  return found;
}

export const queryChatgpt = defineTask({
  name: 'query_chatgpt',
  description: "Sends the prompt to an OpenAI chat model. The result is the model's reply text.",
  input: z.strictObject({ prompt: z.string().min(1).describe('The prompt to send') }),
  output: z.string(),
  example: { prompt: 'Tell me a joke.' },
  exampleOutput: 'Why did the scarecrow win an award? Because he was outstanding in his field.',
  retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 2000 } },
  timeoutMs: 120_000,
  unavailable: (config) =>
    config.openai.apiKey
      ? undefined
      : 'query_chatgpt is not available: OPENAI_API_KEY is not set on this server',
  async run({ prompt }, { signal, config, progress }) {
    try {
      // Streamed, so that watchers see the reply grow (reported as progress.partial).
      const stream = await client(config.openai).chat.completions.create(
        { model: config.openai.model, messages: [{ role: 'user', content: prompt }], stream: true },
        { signal },
      );
      let reply = '';
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta?.content;
        if (delta) {
          reply += delta;
          progress({ partial: reply });
        }
      }
      // An aborted stream ends quietly: do not mistake that for a complete (possibly empty) reply.
      signal.throwIfAborted();
      return reply;
    } catch (error) {
      // 4xx other than 408/409/429 will fail the same way again.
      if (error instanceof OpenAI.APIError && error.status !== undefined) {
        const status = error.status;
        if (status >= 400 && status < 500 && ![408, 409, 429].includes(status)) {
          throw new NonRetryableError(`OpenAI refused the request (${status}): ${error.message}`);
        }
      }
      throw error;
    }
  },
});
