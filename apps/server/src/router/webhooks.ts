import { WEBHOOK_DELIVERY_STATUSES, WEBHOOK_EVENTS } from '@tasker/db';
import { isoDate } from '@tasker/engine';
import { taskNames } from '@tasker/tasks';
import { z } from 'zod';
import { adminProcedure, router } from '../trpc.ts';
import {
  OTHER_TENANT_WEBHOOKS,
  webhookDeliverySchema,
  webhookSchema,
  webhookTestSchema,
} from '../webhooks-api.ts';
import { tenant } from './keys.ts';

/** The 403 of every webhook route, beyond a key without the scope. */
const ADMIN_403 = 'The API key lacks the admin scope (or operator)';
const TENANT_403 = `${ADMIN_403}; or an admin key naming another tenant ("${OTHER_TENANT_WEBHOOKS}")`;
const NOT_FOUND = "No webhook of the caller's reach has this id (unknown, or another tenant's)";

const id = z.uuid().describe('The webhook id');

/** How a delivery is signed and retried, in the words of every route that creates or lists them. */
const SIGNED =
  'Each delivery is a POST of `{event, task}` (the task record of GET /tasks/{id}) signed as Standard Webhooks says: ' +
  'headers `webhook-id` (the delivery id, the same on every retry), `webhook-timestamp` and `webhook-signature` ' +
  '(`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret). Retried on a non-2xx answer or a timeout ' +
  'after about 1 s, 5 s, 30 s, 2 min, 10 min, 1 h, then hourly for a day (WEBHOOK_RETRY_SCHEDULE), then kept as failed.';

/**
 * Completion webhooks: a tenant's `admin` key (or an `operator` key, for any tenant) registers URLs
 * to be told when its tasks finish. The deliveries are stored with the task's final state (a
 * trigger, migration 0019) and sent by the workers (apps/worker/src/webhook-sender.ts).
 */
export const webhooksRouter = router({
  createWebhook: adminProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/webhooks',
        summary: 'Register a completion webhook (its secret shown once)',
        description:
          'When a task of the tenant finishes with one of `events` (and, with `task_names`, is of one of those types), a delivery to `url` is stored with its final state and sent at least once. ' +
          `${SIGNED} The answer carries the secret (\`whsec_...\`) in \`secret\`, this once. ` +
          'The URL may not reach a loopback, private, link-local or reserved address (unless WEBHOOK_ALLOW_PRIVATE=1), checked now and at every delivery; redirects are not followed.',
        tags: ['webhooks'],
        successStatus: 201,
        successDescription: 'The webhook, with its secret in `secret` (shown this once)',
        errorResponses: {
          400: 'A missing or malformed url (or one that reaches a private address), events, task_names or tenant',
          403: TENANT_403,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.strictObject({
        tenant: tenant
          .describe(
            "The tenant whose tasks it follows (default: the caller's; another needs an operator key)",
          )
          .optional(),
        url: z.string().max(2000).describe('An http:// or https:// URL, POSTed to on each event'),
        events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).describe('The events it is told of'),
        task_names: z
          .array(z.enum(taskNames))
          .min(1)
          .describe('Only tasks of these types (default: every type)')
          .optional(),
      }),
    )
    .output(webhookSchema.extend({ secret: z.string().describe('The signing secret, shown this once') }))
    .mutation(({ ctx, input }) =>
      ctx.webhooks.create(ctx.identity, {
        tenant: input.tenant,
        url: input.url,
        events: input.events,
        taskNames: input.task_names,
      }),
    ),

  listWebhooks: adminProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/webhooks',
        summary: 'List webhooks (never their secrets)',
        description:
          "The webhooks of the caller's tenant (an operator key: of every tenant, or of `tenant`), newest first.",
        tags: ['webhooks'],
        successDescription: 'The webhooks',
        errorResponses: { 400: 'A malformed tenant', 403: TENANT_403 },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.object({
        tenant: tenant
          .describe('Only this tenant’s webhooks (another than the caller’s: operator only)')
          .optional(),
      }),
    )
    .output(z.object({ webhooks: z.array(webhookSchema) }))
    .query(async ({ ctx, input }) => ({ webhooks: await ctx.webhooks.list(ctx.identity, input.tenant) })),

  getWebhook: adminProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/webhooks/{id}',
        summary: 'A webhook (never its secret)',
        description:
          "Its URL, events and task types. An admin key reads its own tenant's webhooks (another tenant's answers 404, as an unknown one); an operator key any.",
        tags: ['webhooks'],
        successDescription: 'The webhook',
        errorResponses: { 400: 'Malformed id (not a UUID)', 403: ADMIN_403, 404: NOT_FOUND },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ id }))
    .output(webhookSchema)
    .query(({ ctx, input }) => ctx.webhooks.get(ctx.identity, input.id)),

  deleteWebhook: adminProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/webhooks/{id}',
        summary: 'Delete a webhook and its deliveries',
        description: 'No delivery is stored for it from now on; those not sent yet are dropped with it.',
        tags: ['webhooks'],
        successDescription: 'The webhook deleted',
        errorResponses: { 400: 'Malformed id (not a UUID)', 403: ADMIN_403, 404: NOT_FOUND },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ id }))
    .output(webhookSchema)
    .mutation(({ ctx, input }) => ctx.webhooks.remove(ctx.identity, input.id)),

  testWebhook: adminProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/webhooks/{id}/test',
        summary: 'Send a test event now',
        description:
          'POSTs `{"event": "webhook.test", "task": null}`, signed like every delivery, once (no retry, nothing stored), and answers with what the receiver said.',
        tags: ['webhooks'],
        successDescription: 'The attempt: delivered (a 2xx came) or not, with the status or the error',
        errorResponses: { 400: 'Malformed id (not a UUID)', 403: ADMIN_403, 404: NOT_FOUND },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ id }))
    .output(webhookTestSchema)
    .mutation(({ ctx, input }) => ctx.webhooks.test(ctx.identity, input.id)),

  listWebhookDeliveries: adminProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/webhooks/{id}/deliveries',
        summary: "A webhook's deliveries and their attempts",
        description: `Newest first. ${SIGNED}`,
        tags: ['webhooks'],
        successDescription: 'The deliveries, each with its log of attempts',
        errorResponses: {
          400: 'Malformed id, status or limit',
          403: ADMIN_403,
          404: NOT_FOUND,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.object({
        id,
        status: z.enum(WEBHOOK_DELIVERY_STATUSES).describe('Only deliveries in this status').optional(),
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(100)
          .default(50)
          .describe('At most this many (1-100, default 50)'),
      }),
    )
    .output(z.object({ deliveries: z.array(webhookDeliverySchema) }))
    .query(async ({ ctx, input }) => ({
      deliveries: await ctx.webhooks.deliveries(ctx.identity, input.id, {
        status: input.status,
        limit: input.limit,
      }),
    })),

  redeliverWebhook: adminProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/webhooks/{id}/deliveries/{delivery_id}/redeliver',
        summary: 'Send a delivery again',
        description:
          'The delivery (any status) is due now, with a new round of attempts on the retry schedule: the same webhook-id and body, a new timestamp and signature. Its log is kept.',
        tags: ['webhooks'],
        successDescription: 'The delivery, pending',
        errorResponses: {
          400: 'Malformed id or delivery_id (not a UUID)',
          403: ADMIN_403,
          404: "No webhook of the caller's reach has this id, or it has no such delivery",
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ id, delivery_id: z.uuid().describe('The delivery id (its webhook-id)') }))
    .output(webhookDeliverySchema)
    .mutation(({ ctx, input }) => ctx.webhooks.redeliver(ctx.identity, input.id, input.delivery_id)),

  rotateTaskWebhookSecret: adminProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/webhooks/task-secret',
        summary: "A new secret for the tenant's tasks' own webhook_url (shown once)",
        description:
          "A task submitted with `webhook_url` is POSTed its final state there, signed like a webhook's deliveries with this secret, the tenant's. A submission with webhook_url is refused (400) until the tenant has one. Each call replaces it: deliveries not yet sent are signed with the new one. The answer carries it in `secret`, this once.",
        tags: ['webhooks'],
        successDescription: 'The new secret (shown this once)',
        errorResponses: { 400: 'A malformed tenant', 403: TENANT_403 },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.strictObject({
        tenant: tenant
          .describe("The tenant (default: the caller's; another needs an operator key)")
          .optional(),
      }),
    )
    .output(
      z.object({
        tenant: z.string(),
        secret: z.string().describe('The signing secret (whsec_...), shown this once'),
        createdAt: isoDate,
      }),
    )
    .mutation(({ ctx, input }) => ctx.webhooks.rotateTaskSecret(ctx.identity, input.tenant)),
});
