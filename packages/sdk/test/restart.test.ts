import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTaskerClient } from '../src/index.ts';
import { type LiveStack, startLiveStack } from './stack.ts';

let stack: LiveStack;
beforeAll(async () => {
  stack = await startLiveStack();
});
afterAll(async () => {
  await stack?.close();
});

it('updates() survives a server restart mid-task and still reaches the terminal state', async () => {
  const tasker = createTaskerClient({ url: stack.url });
  const chat = await tasker.run('query_chatgpt', { prompt: 'long answer' });
  const statuses: string[] = [];
  let restarted = false;
  for await (const update of chat.updates()) {
    statuses.push(update.status);
    if (update.status === 'RUNNING' && !restarted) {
      restarted = true;
      await stack.restartServer(); // the stream is cut; the client reconnects with its last event id
    }
  }
  expect(restarted).toBe(true);
  expect(statuses.at(-1)).toBe('COMPLETED');
  expect(statuses.indexOf('COMPLETED')).toBe(statuses.length - 1);
});
