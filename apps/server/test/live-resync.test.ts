/**
 * The live feed's periodic resync (live.ts), the safety net beside the notifications: every watched
 * task is re-read once per `resyncMs`, in RESYNC_SLICES slices spread over it (issue 23: 10,000
 * watched tasks were read in one burst every 10 s), and a task is read whole only once it moved
 * past what its streams have (a watcher's first read counts).
 */
import { randomUUID } from 'node:crypto';
import type { TaskStore } from '@tasker/db';
import type { Logger } from '@tasker/engine';
import { waitFor } from '@tasker/testing';
import type postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { RESYNC_SLICES, TaskFeed } from '../src/live.ts';
import { feedRow } from './feed-rows.ts';

const log = { warn: () => {}, debug: () => {}, info: () => {} } as unknown as Logger;
/** A listening connection that hears nothing: every change below reaches the feed by a resync only. */
const silent = {
  listen: async (_channel: string, _onNotify: unknown, onListen: () => void) => {
    onListen();
    return { unlisten: async () => {} };
  },
} as unknown as postgres.Sql;

describe('the periodic resync', () => {
  it('re-reads the watched tasks a slice at a time; each stream gets a change it never heard of, and only changed rows are read whole', async () => {
    const WATCHED = 40;
    const ids: string[] = Array.from({ length: WATCHED }, () => randomUUID());
    const rows = new Map(ids.map((id) => [id, feedRow(id, 'RUNNING', 2)]));
    const versionReads: number[] = [];
    const wholeReads: string[][] = [];
    const store = {
      get: async (id: string) => rows.get(id),
      steps: { list: async () => [] },
      versions: async (some: string[]) => {
        versionReads.push(some.length);
        return some.flatMap((id) => {
          const r = rows.get(id);
          return r ? [{ id, version: r.version }] : [];
        });
      },
      getMany: async (some: string[]) => {
        if (some.length > 0) wholeReads.push(some);
        return some.flatMap((id) => rows.get(id) ?? []);
      },
    } as unknown as TaskStore;
    const resyncMs = 200;
    const feed = new TaskFeed(silent, store, { resyncMs }, log);
    await feed.start();
    const controller = new AbortController();
    try {
      const seen = new Map<string, string[]>();
      const streams = await Promise.all(
        ids.map(async (id) => {
          const updates = await feed.watch('acme', id, -1, { signal: controller.signal });
          if (!updates) throw new Error(`no stream for ${id}`);
          const statuses: string[] = [];
          seen.set(id, statuses);
          // Wrapped: an async function returning the promise would wait for the stream's end.
          return {
            ended: (async () => {
              for await (const event of updates) statuses.push(event.status);
            })(),
          };
        }),
      );
      // A full round with nothing changed: versions read, in slices, and no row read whole.
      await new Promise((resolve) => setTimeout(resolve, resyncMs * 1.5));
      expect(versionReads.length).toBeGreaterThanOrEqual(RESYNC_SLICES);
      expect(Math.max(...versionReads)).toBeLessThanOrEqual(Math.ceil(WATCHED / RESYNC_SLICES));
      expect(wholeReads).toEqual([]);
      // Half of them complete unheard: within a round or two, each of their streams ends with it.
      const done = ids.slice(0, WATCHED / 2);
      for (const id of done) rows.set(id, feedRow(id, 'COMPLETED', 3));
      await Promise.race([
        Promise.all(streams.slice(0, WATCHED / 2).map((s) => s.ended)),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('not every stream ended')), 5 * resyncMs),
        ),
      ]);
      for (const id of done) expect(seen.get(id)).toEqual(['RUNNING', 'COMPLETED']);
      for (const id of ids.slice(WATCHED / 2)) expect(seen.get(id)).toEqual(['RUNNING']);
      // Only the changed rows were read whole, each once.
      const read = wholeReads.flat();
      expect(new Set(read).size).toBe(read.length);
      expect(new Set(read)).toEqual(new Set(done));
      await waitFor(() => versionReads.length >= 2 * RESYNC_SLICES);
    } finally {
      controller.abort();
      await feed.close();
    }
  });
});
