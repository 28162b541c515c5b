import { API_KEY_SCOPES, type ApiKeyInfo, type ApiKeyStore } from '@tasker/db';
import { ForbiddenError, iso, isoDate, NotFoundError } from '@tasker/engine';
import { z } from 'zod';
import { type Identity, isOperator, reachable } from './auth.ts';

/** An API key as the API shows it: never the key itself, nor its hash. */
export const apiKeySchema = z
  .object({
    id: z.uuid(),
    tenant: z.string().describe('The tenant whose tasks the key reaches'),
    name: z.string(),
    prefix: z.string().describe('The first characters of the key, to tell keys apart'),
    scopes: z.array(z.enum(API_KEY_SCOPES)),
    createdAt: isoDate,
    createdBy: z
      .uuid()
      .nullable()
      .describe(
        'The id of the key that made this one over the API; null when made by the CLI against the database',
      ),
    lastUsedAt: isoDate.nullable().describe('Updated at most once a minute'),
    expiresAt: isoDate.nullable(),
    revokedAt: isoDate.nullable(),
  })
  .meta({ id: 'ApiKey' });

export type ApiKeyView = z.output<typeof apiKeySchema>;
export type ApiKeyScopeName = ApiKeyView['scopes'][number];

/**
 * Key management, for the caller's reach: an `admin` key manages the keys of its own tenant only; an
 * `operator` key those of any tenant. The rules are here, in one place; the router only passes the
 * caller along.
 */
export interface KeysApi {
  /** The returned `key` is shown this once; only its hash is kept. `tenant` defaults to the caller's. */
  create(
    caller: Identity,
    input: { tenant?: string; name: string; scopes: ApiKeyScopeName[]; expiresInS?: number },
  ): Promise<ApiKeyView & { key: string }>;
  /** The caller's tenant's keys; an operator's: those of `tenant`, or of every tenant. */
  list(caller: Identity, tenant?: string): Promise<ApiKeyView[]>;
  /** Takes effect on every server within 2 s. Another tenant's key (for an admin) is unknown: 404. */
  revoke(caller: Identity, id: string): Promise<ApiKeyView>;
}

export function toApiKeyView(info: ApiKeyInfo): ApiKeyView {
  return {
    id: info.id,
    tenant: info.tenantId,
    name: info.name,
    prefix: info.prefix,
    scopes: info.scopes,
    createdAt: info.createdAt.toISOString(),
    createdBy: info.createdBy,
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

/** The 403 of an admin key reaching past its tenant: the words of the document and of the API. */
export const OTHER_TENANT =
  'An admin key manages the keys of its own tenant only; another tenant needs an operator key';
export const OPERATOR_ONLY =
  'Only an operator key (or `tasker keys create` against the database) may give the operator scope, or revoke a key that has it';

export function createKeysApi(store: ApiKeyStore, authMode: 'required' | 'disabled'): KeysApi {
  return {
    create: async (caller, { tenant, name, scopes, expiresInS }) => {
      if (authMode === 'disabled') throw new ForbiddenError(KEYS_NEED_AUTH);
      const target = reachable(caller, tenant, OTHER_TENANT) ?? caller.tenantId;
      if (scopes.includes('operator') && !isOperator(caller)) throw new ForbiddenError(OPERATOR_ONLY);
      const { key, info } = await store.create({
        tenantId: target,
        name,
        scopes,
        expiresAt: expiresInS === undefined ? null : new Date(Date.now() + expiresInS * 1000),
        createdBy: caller.keyId,
      });
      return { ...toApiKeyView(info), key };
    },
    list: async (caller, tenant) =>
      (await store.list(reachable(caller, tenant, OTHER_TENANT))).map(toApiKeyView),
    revoke: async (caller, id) => {
      // An admin's reach is its tenant: another tenant's key answers as an unknown one.
      const scope = isOperator(caller) ? undefined : caller.tenantId;
      const key = await store.get(id, scope);
      // Unknown, another tenant's or already revoked: a 404 either way (the id names no live key).
      if (!key || key.revokedAt) throw new NotFoundError('API key not found');
      if (key.scopes.includes('operator') && !isOperator(caller)) throw new ForbiddenError(OPERATOR_ONLY);
      const revoked = await store.revoke(id, scope);
      if (!revoked) throw new NotFoundError('API key not found');
      return toApiKeyView(revoked);
    },
  };
}
