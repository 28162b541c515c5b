import { API_KEY_SCOPES, type ApiKeyInfo, type ApiKeyStore } from '@tasker/db';
import { ForbiddenError, iso, isoDate, NotFoundError } from '@tasker/engine';
import { z } from 'zod';

/** An API key as the API shows it: never the key itself, nor its hash. */
export const apiKeySchema = z
  .object({
    id: z.uuid(),
    tenant: z.string().describe('The tenant whose tasks the key reaches'),
    name: z.string(),
    prefix: z.string().describe('The first characters of the key, to tell keys apart'),
    scopes: z.array(z.enum(API_KEY_SCOPES)),
    createdAt: isoDate,
    lastUsedAt: isoDate.nullable().describe('Updated at most once a minute'),
    expiresAt: isoDate.nullable(),
    revokedAt: isoDate.nullable(),
  })
  .meta({ id: 'ApiKey' });

export type ApiKeyView = z.output<typeof apiKeySchema>;
export type ApiKeyScopeName = ApiKeyView['scopes'][number];

/** The operator's key management (the `admin` scope), over any tenant. */
export interface KeysApi {
  /** The returned `key` is shown this once; only its hash is kept. */
  create(input: {
    tenant: string;
    name: string;
    scopes: ApiKeyScopeName[];
    expiresInS?: number;
  }): Promise<ApiKeyView & { key: string }>;
  list(tenant?: string): Promise<ApiKeyView[]>;
  /** Takes effect on every server within 2 s. */
  revoke(id: string): Promise<ApiKeyView>;
}

export function toApiKeyView(info: ApiKeyInfo): ApiKeyView {
  return {
    id: info.id,
    tenant: info.tenantId,
    name: info.name,
    prefix: info.prefix,
    scopes: info.scopes,
    createdAt: info.createdAt.toISOString(),
    lastUsedAt: iso(info.lastUsedAt),
    expiresAt: iso(info.expiresAt),
    revokedAt: iso(info.revokedAt),
  };
}

/**
 * Why no key is made while AUTH_MODE=disabled: that server asks nobody for a key, so a key would
 * suggest a protection that is not there. The CLI's `keys create` refuses in the same words.
 */
export const KEYS_NEED_AUTH =
  'API keys are not made while AUTH_MODE=disabled: this server asks nobody for a key, so it would protect nothing. Run the server with AUTH_MODE=required (NODE_ENV=production implies it), then make keys';

export function createKeysApi(store: ApiKeyStore, authMode: 'required' | 'disabled'): KeysApi {
  return {
    create: async ({ tenant, name, scopes, expiresInS }) => {
      if (authMode === 'disabled') throw new ForbiddenError(KEYS_NEED_AUTH);
      const { key, info } = await store.create({
        tenantId: tenant,
        name,
        scopes,
        expiresAt: expiresInS === undefined ? null : new Date(Date.now() + expiresInS * 1000),
      });
      return { ...toApiKeyView(info), key };
    },
    list: async (tenant) => (await store.list(tenant)).map(toApiKeyView),
    revoke: async (id) => {
      const revoked = await store.revoke(id);
      // Unknown or already revoked: a 404 either way (the id names no live key).
      if (!revoked) throw new NotFoundError('API key not found');
      return toApiKeyView(revoked);
    },
  };
}
