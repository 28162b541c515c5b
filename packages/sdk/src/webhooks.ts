import type { TRPCClient } from '@trpc/client';
import type { AppRouter, TaskName, WireOutputs } from './types.ts';
import { type WireFields, webhookToWire } from './wire.ts';

/** A webhook as the server shows it (never its secret). */
export type Webhook = WireOutputs['getWebhook'];
/** The events a webhook may be told of: `task.completed`, `task.failed`, `task.cancelled`, `task.expired`. */
export type WebhookEvent = Webhook['events'][number];
/** One delivery: its id (the `webhook-id` header), status, attempts and the log of each. */
export type WebhookDelivery = WireOutputs['redeliverWebhook'];
/** What a test event got: `delivered` (a 2xx came) and the attempt. */
export type WebhookTest = WireOutputs['testWebhook'];
/** The tenant's secret for its tasks' own `webhookUrl`, shown this once. */
export type TaskWebhookSecret = WireOutputs['rotateTaskWebhookSecret'];

/** A webhook to register: where, which events, and optionally which task types (default: all). */
export interface NewWebhook {
  url: string;
  events: WebhookEvent[];
  taskNames?: TaskName[];
  /** Another tenant's (an `operator` key); default: the caller's. */
  tenant?: string;
}

export interface WebhooksApi {
  /** Registers a webhook; the answer's `secret` (`whsec_...`) is shown this once. */
  create(webhook: NewWebhook): Promise<Webhook & { secret: string }>;
  /** The tenant's webhooks, newest first (an operator key: every tenant's, or `tenant`'s). */
  list(options?: { tenant?: string }): Promise<Webhook[]>;
  get(id: string): Promise<Webhook>;
  /** Deletes it and its deliveries. */
  delete(id: string): Promise<Webhook>;
  /** Sends a signed `webhook.test` event now, once, and says what the receiver answered. */
  test(id: string): Promise<WebhookTest>;
  /** Its deliveries, newest first: `status` only those, `limit` 1 to 100 (default 50). */
  deliveries(
    id: string,
    options?: { status?: WebhookDelivery['status']; limit?: number },
  ): Promise<WebhookDelivery[]>;
  /** Sends a delivery again from now, with a new round of attempts (same id and body). */
  redeliver(id: string, deliveryId: string): Promise<WebhookDelivery>;
  /** Makes (or replaces) the secret that signs the deliveries to tasks' own `webhookUrl`; shown this once. */
  rotateTaskSecret(options?: { tenant?: string }): Promise<TaskWebhookSecret>;
}

/** `tasker.webhooks`, over the router's webhook procedures (an `admin` key). */
export function createWebhooksApi(
  trpc: TRPCClient<AppRouter>,
  call: <T>(promise: Promise<T>, fields?: WireFields) => Promise<T>,
): WebhooksApi {
  return {
    // Async: an option refused while building the wire input rejects, as a refusal of the server does.
    create: async (webhook) => call(trpc.createWebhook.mutate(webhookToWire(webhook)), 'webhook'),
    list: async (options = {}) => (await call(trpc.listWebhooks.query({ tenant: options.tenant }))).webhooks,
    get: (id) => call(trpc.getWebhook.query({ id })),
    delete: (id) => call(trpc.deleteWebhook.mutate({ id })),
    test: (id) => call(trpc.testWebhook.mutate({ id })),
    deliveries: async (id, options = {}) =>
      (await call(trpc.listWebhookDeliveries.query({ id, status: options.status, limit: options.limit })))
        .deliveries,
    redeliver: (id, deliveryId) => call(trpc.redeliverWebhook.mutate({ id, delivery_id: deliveryId })),
    rotateTaskSecret: (options = {}) => call(trpc.rotateTaskWebhookSecret.mutate({ tenant: options.tenant })),
  };
}
