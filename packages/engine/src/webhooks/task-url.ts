import type { WebhookStore } from '@tasker/db';
import { checkWebhookUrl } from './address-guard.ts';

/** Why a submission's `webhook_url` is refused (400 naming webhook_url); undefined: it is taken. */
export type TaskWebhookCheck = (tenantId: string, url: string) => Promise<string | undefined>;

/**
 * The check of a task's own `webhook_url` at submission: the same URL rules as a webhook's (no
 * loopback, private or link-local address unless WEBHOOK_ALLOW_PRIVATE=1), and a secret to sign
 * it with: the tenant's, made by `POST /webhooks/task-secret`. A tenant's secret is replaced, never
 * deleted: once a read has found it, it is there for good, and no submission reads it again (a
 * batch of 1,000 items with as many distinct URLs made 1,000 reads of the same row).
 */
export function taskWebhookCheck(
  store: Pick<WebhookStore, 'hasTaskSecret'>,
  allowPrivate: boolean,
): TaskWebhookCheck {
  const withSecret = new Set<string>();
  return async (tenantId, url) => {
    const refusal = await checkWebhookUrl(url, allowPrivate);
    if (refusal !== undefined) return refusal;
    if (withSecret.has(tenantId)) return undefined;
    if (!(await store.hasTaskSecret(tenantId)))
      return "the tenant has no secret to sign its tasks' webhooks with yet: an admin key makes one with POST /webhooks/task-secret";
    withSecret.add(tenantId);
    return undefined;
  };
}
