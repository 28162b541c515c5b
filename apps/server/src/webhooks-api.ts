import { randomUUID } from 'node:crypto';
import {
  WEBHOOK_DELIVERY_STATUSES,
  WEBHOOK_EVENTS,
  type WebhookDeliveryRow,
  type WebhookInfo,
  type WebhookStore,
} from '@tasker/db';
import {
  checkWebhookUrl,
  InvalidArgumentError,
  iso,
  isoDate,
  NotFoundError,
  postWebhook,
  type WebhookPayload,
  webhookHeaders,
} from '@tasker/engine';
import { z } from 'zod';
import { type Identity, isOperator, reachable } from './auth.ts';

export const webhookEventSchema = z.enum(WEBHOOK_EVENTS).meta({ id: 'WebhookEvent' });

/** A webhook as the API shows it: never its secret (shown once, at creation). */
export const webhookSchema = z
  .object({
    id: z.uuid(),
    tenant: z.string().describe('The tenant whose tasks it follows'),
    url: z.string().describe('Where each delivery is POSTed'),
    events: z.array(webhookEventSchema),
    taskNames: z.array(z.string()).nullable().describe('Only tasks of these types; null: every type'),
    createdAt: isoDate,
    updatedAt: isoDate,
  })
  .meta({ id: 'Webhook' });

export const webhookAttemptSchema = z
  .object({
    at: isoDate,
    status: z.number().int().nullable().describe("The receiver's HTTP status; null when none came"),
    error: z.string().nullable().describe('Why the attempt failed; null when delivered'),
    durationMs: z.number().int(),
  })
  .meta({ id: 'WebhookAttempt' });

export const webhookDeliverySchema = z
  .object({
    id: z.uuid().describe('The `webhook-id` header: the same on every attempt'),
    webhookId: z.uuid().nullable().describe("Null for a delivery to the task's own webhook_url"),
    taskId: z.uuid(),
    url: z.string(),
    event: webhookEventSchema,
    status: z
      .enum(WEBHOOK_DELIVERY_STATUSES)
      .describe('pending (to be sent, or retried), delivered (a 2xx came), failed (every attempt failed)'),
    attempts: z.number().int().describe('Attempts made in this round (a redelivery starts a new one)'),
    nextAttemptAt: isoDate.nullable().describe('When the next attempt is due; null unless pending'),
    lastStatus: z.number().int().nullable(),
    lastError: z.string().nullable(),
    log: z.array(webhookAttemptSchema).describe('Every attempt, oldest first'),
    createdAt: isoDate,
    updatedAt: isoDate,
  })
  .meta({ id: 'WebhookDelivery' });

export const webhookTestSchema = z
  .object({
    id: z.uuid().describe('The test delivery’s webhook-id'),
    delivered: z.boolean().describe('The receiver answered with a 2xx'),
    attempt: webhookAttemptSchema,
  })
  .meta({ id: 'WebhookTest' });

export type WebhookView = z.output<typeof webhookSchema>;
export type WebhookDeliveryView = z.output<typeof webhookDeliverySchema>;
export type WebhookTestView = z.output<typeof webhookTestSchema>;
type WebhookEventName = WebhookView['events'][number];
type DeliveryStatusName = WebhookDeliveryView['status'];

/**
 * Webhook management, for the caller's reach: an `admin` key manages its own tenant's webhooks, an
 * `operator` key any tenant's. The rules are here; the router only passes the caller along.
 */
export interface WebhooksApi {
  /** The returned `secret` is shown this once. `tenant` defaults to the caller's. */
  create(
    caller: Identity,
    input: { tenant?: string; url: string; events: WebhookEventName[]; taskNames?: string[] },
  ): Promise<WebhookView & { secret: string }>;
  list(caller: Identity, tenant?: string): Promise<WebhookView[]>;
  /** Another tenant's webhook (for an admin) is unknown: 404. */
  get(caller: Identity, id: string): Promise<WebhookView>;
  /** Its deliveries go with it. */
  remove(caller: Identity, id: string): Promise<WebhookView>;
  /** Sends one signed `webhook.test` event now, once, and says what the receiver answered. */
  test(caller: Identity, id: string): Promise<WebhookTestView>;
  deliveries(
    caller: Identity,
    id: string,
    filter: { status?: DeliveryStatusName; limit: number },
  ): Promise<WebhookDeliveryView[]>;
  /** The delivery is sent again from now, with a new round of attempts (same id, same body). */
  redeliver(caller: Identity, id: string, deliveryId: string): Promise<WebhookDeliveryView>;
  /** A new secret for the tenant's tasks' own webhook_url deliveries, shown this once. */
  rotateTaskSecret(
    caller: Identity,
    tenant?: string,
  ): Promise<{ tenant: string; secret: string; createdAt: string }>;
}

export function toWebhookView(info: WebhookInfo): WebhookView {
  return {
    id: info.id,
    tenant: info.tenantId,
    url: info.url,
    events: info.events,
    taskNames: info.taskNames,
    createdAt: info.createdAt.toISOString(),
    updatedAt: info.updatedAt.toISOString(),
  };
}

export function toDeliveryView(row: WebhookDeliveryRow): WebhookDeliveryView {
  return {
    id: row.id,
    webhookId: row.webhookId,
    taskId: row.taskId,
    url: row.url,
    event: row.event,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === 'pending' ? iso(row.nextAttemptAt) : null,
    lastStatus: row.lastStatus,
    lastError: row.lastError,
    log: row.log,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** The 403 of an admin key reaching past its tenant. */
export const OTHER_TENANT_WEBHOOKS =
  'An admin key manages the webhooks of its own tenant only; another tenant needs an operator key';

export interface WebhooksApiOptions {
  /** WEBHOOK_ALLOW_PRIVATE: loopback, private and link-local receivers allowed. */
  allowPrivate: boolean;
  /** WEBHOOK_TIMEOUT_MS: how long a test event waits for the receiver. */
  timeoutMs: number;
}

export function createWebhooksApi(store: WebhookStore, options: WebhooksApiOptions): WebhooksApi {
  /** An admin's reach is its tenant: another tenant's webhook answers as an unknown one. */
  const scopeOf = (caller: Identity) => (isOperator(caller) ? undefined : caller.tenantId);
  const found = async (caller: Identity, id: string) => {
    const webhook = await store.withSecret(id, scopeOf(caller));
    if (!webhook) throw new NotFoundError('Webhook not found');
    return webhook;
  };
  return {
    create: async (caller, { tenant, url, events, taskNames }) => {
      const target = reachable(caller, tenant, OTHER_TENANT_WEBHOOKS) ?? caller.tenantId;
      const refusal = await checkWebhookUrl(url, options.allowPrivate);
      if (refusal !== undefined) throw new InvalidArgumentError('url', refusal);
      const { secret, info } = await store.create({
        tenantId: target,
        url,
        events,
        taskNames: taskNames ?? null,
      });
      return { ...toWebhookView(info), secret };
    },
    list: async (caller, tenant) =>
      (await store.list(reachable(caller, tenant, OTHER_TENANT_WEBHOOKS))).map(toWebhookView),
    get: async (caller, id) => {
      const { secret: _secret, ...info } = await found(caller, id);
      return toWebhookView(info);
    },
    remove: async (caller, id) => {
      const removed = await store.delete(id, scopeOf(caller));
      if (!removed) throw new NotFoundError('Webhook not found');
      return toWebhookView(removed);
    },
    test: async (caller, id) => {
      const webhook = await found(caller, id);
      const deliveryId = randomUUID();
      const payload: WebhookPayload = { event: 'webhook.test', task: null };
      const body = JSON.stringify(payload);
      const attempt = await postWebhook(
        webhook.url,
        webhookHeaders(webhook.secret, deliveryId, body),
        body,
        options,
      );
      const delivered = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
      return { id: deliveryId, delivered, attempt };
    },
    deliveries: async (caller, id, filter) => {
      await found(caller, id);
      return (await store.deliveries(id, filter)).map(toDeliveryView);
    },
    redeliver: async (caller, id, deliveryId) => {
      await found(caller, id);
      const row = await store.redeliver(id, deliveryId);
      if (!row) throw new NotFoundError('Delivery not found');
      return toDeliveryView(row);
    },
    rotateTaskSecret: async (caller, tenant) => {
      const target = reachable(caller, tenant, OTHER_TENANT_WEBHOOKS) ?? caller.tenantId;
      const { secret, createdAt } = await store.rotateTaskSecret(target);
      return { tenant: target, secret, createdAt: createdAt.toISOString() };
    },
  };
}
