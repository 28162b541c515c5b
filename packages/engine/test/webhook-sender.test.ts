/**
 * The WebhookDeliverer's sending, without a database (a store that hands out deliveries and keeps
 * what is recorded): an attempt's timeout measures its receiver, never a wait for a connection.
 */
import { createServer, type Server } from 'node:http';
import type { WebhookDeliveryRow, WebhookStore } from '@tasker/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Logger, WebhookDeliverer } from '../src/index.ts';

let receiver: Server;
let url = '';
let connections = 0;

beforeAll(async () => {
  // Answers each delivery after 600 ms, within the 1 s timeout below.
  receiver = createServer((req, res) => {
    req.resume();
    setTimeout(() => res.writeHead(204).end(), 600);
  });
  receiver.on('connection', () => connections++);
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const bound = receiver.address();
  url = `http://127.0.0.1:${typeof bound === 'object' && bound ? bound.port : 0}/hook`;
});

afterAll(async () => {
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

describe('WebhookDeliverer', () => {
  it('delivers 100 attempts under way to one slow receiver, none timed out waiting for a connection', async () => {
    const due = Array.from(
      { length: 100 },
      (_, i) =>
        ({
          id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
          url,
          body: '{}',
          attempts: 0,
        }) as WebhookDeliveryRow,
    );
    const recorded: Parameters<WebhookStore['record']>[0][number][] = [];
    const store = {
      take: async (limit: number) =>
        due.splice(0, limit).map((delivery) => ({ delivery, secret: 'whsec_AAAA' })),
      fixBodies: async () => new Map(),
      record: async (items: typeof recorded) => {
        recorded.push(...items);
        return [];
      },
    } as unknown as WebhookStore;
    const deliverer = new WebhookDeliverer(
      store,
      { getMany: async () => [] },
      { timeoutMs: 1000, allowPrivate: true, retrySchedule: [1000] },
      { warn: () => {} } as unknown as Logger,
    );
    try {
      expect((await deliverer.deliverDue()) + (await deliverer.deliverDue())).toBe(100);
      await deliverer.drain();
    } finally {
      deliverer.close();
    }
    expect(recorded.filter((r) => r.attempt.error !== null).map((r) => r.attempt.error)).toEqual([]);
    expect(recorded.filter((r) => r.outcome.delivered)).toHaveLength(100);
    expect(connections).toBe(100);
  });
});
