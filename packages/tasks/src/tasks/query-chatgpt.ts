import { z } from 'zod';
import { defineTask } from '../define.ts';

export const queryChatgpt = defineTask({
  name: 'query_chatgpt',
  description: "Sends the prompt to an OpenAI chat model. The result is the model's reply text.",
  input: z.strictObject({ prompt: z.string().min(1).describe('The prompt to send') }),
  output: z.string(),
  example: { prompt: 'Tell me a joke.' },
  exampleOutput: 'Why did the scarecrow win an award? Because he was outstanding in his field.',
  retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 2000 } },
  timeoutMs: 120_000,
  // A longer prompt is refused at submission (400 naming prompt); the reply is cut at 4,096 tokens.
  llm: { maxPromptChars: 32_000, maxTokens: 4096 },
  // Streamed: watchers see the reply grow in progress.partial; usage and provider errors: ctx.llm.
  run: async ({ prompt }, { llm }) => (await llm.chat({ prompt })).text,
});
