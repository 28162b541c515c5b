import { API_KEY_SCOPES } from '@tasker/db';
import { z } from 'zod';
import { apiKeySchema } from '../keys-api.ts';
import { adminProcedure, router } from '../trpc.ts';

const scopes = z
  .array(z.enum(API_KEY_SCOPES))
  .min(1)
  .describe('tasks:write (run, cancel, retry), tasks:read (get, list, output, streams), admin (queue, keys)');

/** The operator's key management (`admin` scope): keys of any tenant. `tasker keys` does the same from a shell. */
export const keysRouter = router({
  createApiKey: adminProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/api-keys',
        summary: 'Create an API key (shown once)',
        description:
          'The answer carries the whole key in `key`, this once: only its SHA-256 is stored. Send it as `Authorization: Bearer <key>`.',
        tags: ['keys'],
        successDescription: 'The new key, with the key itself in `key` (shown this once)',
        errorResponses: { 400: 'A missing or malformed tenant, name, scopes or expires_in_s' },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.strictObject({
        tenant: z
          .string()
          .min(1)
          .max(100)
          .regex(/^[\w.-]+$/, 'letters, digits, "_", "." or "-" only')
          .describe('The tenant whose tasks the key reaches'),
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
      ctx.keys.create({
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
          'Every API key (of one tenant, if given), revoked and expired ones included, with their prefix, scopes and times; never the key nor its hash.',
        tags: ['keys'],
        successDescription: 'The keys',
        errorResponses: { 400: 'A malformed tenant' },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ tenant: z.string().min(1).max(100).describe('Only this tenant’s keys').optional() }))
    .output(z.object({ keys: z.array(apiKeySchema) }))
    .query(async ({ ctx, input }) => ({ keys: await ctx.keys.list(input.tenant) })),

  revokeApiKey: adminProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/api-keys/{id}',
        summary: 'Revoke an API key',
        description: 'Every server refuses the key within 2 s.',
        tags: ['keys'],
        successDescription: 'The key, with revokedAt set',
        errorResponses: {
          400: 'Malformed id (not a UUID)',
          404: 'No live API key has this id (unknown or already revoked)',
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ id: z.uuid().describe('The key id (not the key)') }))
    .output(apiKeySchema)
    .mutation(({ ctx, input }) => ctx.keys.revoke(input.id)),
});
