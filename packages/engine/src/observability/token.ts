import { createHash, timingSafeEqual } from 'node:crypto';
import type { Env } from '../config.ts';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Who may read `/metrics` (the server's, and a worker's on METRICS_PORT), which shows every
 * tenant's queue depths and paused task types: with METRICS_TOKEN set, its holders; without it,
 * anyone when AUTH_MODE=disabled (a developer's machine), nobody when AUTH_MODE=required.
 */
export interface MetricsAccess {
  token?: string;
  /** AUTH_MODE=required and no METRICS_TOKEN: every scrape is refused. */
  closed: boolean;
}

export function metricsAccess(env: Pick<Env, 'AUTH_MODE' | 'METRICS_TOKEN'>): MetricsAccess {
  return { token: env.METRICS_TOKEN, closed: env.AUTH_MODE === 'required' && !env.METRICS_TOKEN };
}

/** What a refused scrape is told when /metrics is closed, and what the process logs once at start. */
export const METRICS_CLOSED =
  '/metrics is closed: AUTH_MODE=required and METRICS_TOKEN is unset. Set METRICS_TOKEN and scrape with Authorization: Bearer <METRICS_TOKEN>';

/** Why a scrape with this Authorization header is refused, or undefined when it may read. */
export function metricsRefusal(access: MetricsAccess, header: string | undefined): string | undefined {
  if (access.closed) return METRICS_CLOSED;
  if (!access.token) return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  // Compared in constant time.
  if (match?.[1] && timingSafeEqual(digest(match[1]), digest(access.token))) return undefined;
  return header
    ? 'Invalid metrics token'
    : 'This endpoint needs the metrics token: send Authorization: Bearer <METRICS_TOKEN>';
}
