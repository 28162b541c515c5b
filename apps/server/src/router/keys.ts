import { API_KEY_SCOPES } from '@tasker/db';
import { z } from 'zod';
import { apiKeySchema, OPERATOR_ONLY, OTHER_TENANT } from '../keys-api.ts';
import { adminProcedure, router } from '../trpc.ts';

const scopes = z
  .array(z.enum(API_KEY_SCOPES))
  .min(1)
  .describe(
    "tasks:write (run, cancel, retry), tasks:read (get, list, output, streams), admin (its own tenant's keys), operator (across tenants: the shared queue, any tenant's keys; given only by an operator key or the CLI)",
  );

/** A tenant's name, wherever the API takes one. */
export const tenant = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\w.-]+$/, 'letters, digits, "_", "." or "-" only');

/** 403 of every key route, beyond a key without the scope. */
const REACH = `an admin key reaching another tenant ("${OTHER_TENANT}")`;

/**
 * Key management: an `admin` key manages its own tenant's keys, an `operator` key any tenant's (the
 * rules: keys-api.ts). `tasker keys` does the same from a shell, against the database.
 */
export const keysRouter = router({
  createApiKey: adminProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/api-keys',
        summary: 'Create an API key (shown once)',
        description:
          'The answer carries the whole key in `key`, this once: only its SHA-256 is stored. Send it as `Authorization: Bearer <key>`. ' +
          "An admin key makes keys for its own tenant (the default tenant); an operator key for any. createdBy records the caller's key.",
        tags: ['keys'],
        successDescription: 'The new key, with the key itself in `key` (shown this once)',
        errorResponses: {
          400: 'A missing or malformed tenant, name, scopes or expires_in_s',
          403: `The API key lacks the admin scope (or operator); or ${REACH}; or an admin key asking for the operator scope ("${OPERATOR_ONLY}"); or AUTH_MODE=disabled, where no key is made`,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.strictObject({
        tenant: tenant
          .describe(
            "The tenant whose tasks the key reaches (default: the caller's; another needs an operator key)",
          )
          .optional(),
        name: z.string().min(1).max(200).describe('What the key is for, e.g. "ci"'),
        scopes,
        expires_in_s: z
          .number()
          .int()
          .min(1)
          .max(10 * 365 * 24 * 3600)
          .optional()
          .describe('The key stops working this many seconds from now (default: never)'),
      }),
    )
    .output(apiKeySchema.extend({ key: z.string().describe('The key, shown this once') }))
    .mutation(({ ctx, input }) =>
      ctx.keys.create(ctx.identity, {
        tenant: input.tenant,
        name: input.name,
        scopes: input.scopes,
        expiresInS: input.expires_in_s,
      }),
    ),

  listApiKeys: adminProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/api-keys',
        summary: 'List API keys (never the keys themselves)',
        description:
          "The keys of the caller's tenant (an operator key: of every tenant, or of `tenant`), revoked and expired ones included, " +
          'with their prefix, scopes, times and the key that made each; never the key nor its hash.',
        tags: ['keys'],
        successDescription: 'The keys',
        errorResponses: {
          400: 'A malformed tenant',
          403: `The API key lacks the admin scope (or operator); or ${REACH}`,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.object({
        tenant: tenant
          .describe('Only this tenant’s keys (another than the caller’s: operator only)')
          .optional(),
      }),
    )
    .output(z.object({ keys: z.array(apiKeySchema) }))
    .query(async ({ ctx, input }) => ({ keys: await ctx.keys.list(ctx.identity, input.tenant) })),

  revokeApiKey: adminProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/api-keys/{id}',
        summary: 'Revoke an API key',
        description:
          "Every server refuses the key within 2 s, and ends the streams it holds open within 5 s. An admin key revokes its own tenant's keys (not an operator key); an operator key any.",
        tags: ['keys'],
        successDescription: 'The key, with revokedAt set',
        errorResponses: {
          400: 'Malformed id (not a UUID)',
          403: `The API key lacks the admin scope (or operator); or an admin key revoking an operator key ("${OPERATOR_ONLY}")`,
          404: "No live API key of the caller's reach has this id (unknown, another tenant's, or already revoked)",
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ id: z.uuid().describe('The key id (not the key)') }))
    .output(apiKeySchema)
    .mutation(({ ctx, input }) => ctx.keys.revoke(ctx.identity, input.id)),
});
