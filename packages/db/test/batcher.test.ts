import { describe, expect, it } from 'vitest';
import { Batcher } from '../src/batcher.ts';

describe('Batcher', () => {
  it('runs calls made in one turn as one batch, each caller getting its own result', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>(
      async (items) => {
        batches.push(items);
        return items.map((n) => n * 10);
      },
      String,
      { maxSize: 100 },
    );
    expect(await Promise.all([1, 2, 3].map((n) => batcher.add(n)))).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('splits at maxSize and defers a repeated key to the next batch', async () => {
    const batches: string[][] = [];
    const batcher = new Batcher<string, string>(
      async (items) => {
        batches.push(items);
        return items;
      },
      (s) => s,
      { maxSize: 2 },
    );
    await Promise.all(['a', 'a', 'b', 'c'].map((s) => batcher.add(s)));
    expect(batches).toEqual([
      ['a', 'b'],
      ['a', 'c'],
    ]);
  });

  it('rejects every caller of a failed batch, and keeps working afterwards', async () => {
    let fail = true;
    const batcher = new Batcher<number, number>(
      async (items) => {
        if (fail) throw new Error('down');
        return items;
      },
      String,
      { maxSize: 10 },
    );
    const results = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await batcher.add(3)).toBe(3);
  });
});
