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
