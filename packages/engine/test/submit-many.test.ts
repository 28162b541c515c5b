/**
 * submitMany's checks before anything is stored (no database: a batch refused with a 400 touches
 * no store).
 */
import { describe, expect, it } from 'vitest';
import type { LifecycleResources } from '../src/lifecycle/index.ts';
import { submitMany } from '../src/lifecycle/submit-many.ts';

describe('submitMany', () => {
  it('checks each distinct webhook_url once per batch, and names every item that carries a refused one', async () => {
    const checked: string[] = [];
    const resources = {
      config: {},
      log: { warn: () => {} },
      checkWebhookUrl: async (_tenant: string, url: string) => {
        checked.push(url);
        return url.includes('bad') ? 'refused' : undefined;
      },
    } as unknown as LifecycleResources;
    const items = Array.from({ length: 1000 }, (_, i) => ({
      name: 'sum_two_numbers',
      input: { a: i, b: 1 },
      webhookUrl: i % 2 === 0 ? 'https://hooks.example.com/bad' : 'https://hooks.example.com/good',
    }));
    const error = await submitMany(resources, 'alice', items).catch((e: unknown) => e);
    expect(error).toMatchObject({ failure: { status: 400 } });
    const paths = (error as { failure: { issues: { path: string }[] } }).failure.issues.map((i) => i.path);
    expect(paths).toHaveLength(500);
    expect(paths[0]).toBe('tasks.0.webhook_url');
    expect(paths.at(-1)).toBe('tasks.998.webhook_url');
    expect(checked.sort()).toEqual(['https://hooks.example.com/bad', 'https://hooks.example.com/good']);
  });
});
