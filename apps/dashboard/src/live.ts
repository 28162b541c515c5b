import { type QueryKey, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';

/**
 * For a page fed by a live feed: reads `keys` again each time the feed is connected (tRPC's
 * subscription status `pending`: first, and after each reconnection, a server's rolling restart
 * say). Changes made before or while it connected were not heard, and a tenant-wide feed has no
 * event ids to resume from.
 */
export function useReadAgainWhenConnected(status: string, keys: readonly QueryKey[]): void {
  const queryClient = useQueryClient();
  const latest = useRef(keys);
  latest.current = keys;
  const connected = status === 'pending';
  useEffect(() => {
    if (!connected) return;
    for (const queryKey of latest.current) void queryClient.invalidateQueries({ queryKey });
  }, [connected, queryClient]);
}

/**
 * The newest event heard of each task, for the last `kept` tasks heard of. A list read over HTTP
 * may answer with a row older than an event already applied (read before the change committed,
 * answered after its event): `newest` lays the newer events over such rows.
 */
export class HeardEvents<E extends { id: string; version: number }> {
  private readonly events = new Map<string, E>();

  constructor(private readonly kept = 2000) {}

  /** Remembers `event` if it is the task's newest yet. */
  add(event: E): void {
    const known = this.events.get(event.id);
    if (known && known.version >= event.version) return;
    this.events.delete(event.id);
    this.events.set(event.id, event);
    if (this.events.size > this.kept) {
      const oldest = this.events.keys().next().value;
      if (oldest !== undefined) this.events.delete(oldest);
    }
  }

  /** `rows`, each with the newer event heard of it applied by `apply`; the others as they are. */
  newest<R extends { id: string; version: number }>(rows: readonly R[], apply: (row: R, event: E) => R): R[] {
    return rows.map((row) => {
      const event = this.events.get(row.id);
      return event && event.version > row.version ? apply(row, event) : row;
    });
  }
}
