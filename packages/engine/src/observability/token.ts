import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Whether a request may read `/metrics`: always when no token is configured (METRICS_TOKEN unset),
 * otherwise only with `Authorization: Bearer <token>` (compared in constant time).
 */
export function metricsAuthorized(header: string | undefined, token: string | undefined): boolean {
  if (!token) return true;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) return false;
  return timingSafeEqual(digest(match[1]), digest(token));
}

/** The words of a refused scrape. */
export function metricsRefusal(header: string | undefined): string {
  return header
    ? 'Invalid metrics token'
    : 'This endpoint needs the metrics token: send Authorization: Bearer <METRICS_TOKEN>';
}
