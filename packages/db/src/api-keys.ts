import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { and, desc, eq, inArray, isNull, type SQL } from 'drizzle-orm';
import type { Database } from './client.ts';
import { type ApiKeyRow, type ApiKeyScope, apiKeys } from './schema.ts';

/** Every key starts with this, so that secret scanners and people recognise one. */
export const API_KEY_PREFIX = 'tsk_';
/** `tsk_` + 43 base64url characters: 256 random bits. */
const KEY_PATTERN = /^tsk_[A-Za-z0-9_-]{43}$/;

/** Whether a string has the shape of a Tasker key (says nothing of its validity). */
export const looksLikeApiKey = (value: string) => KEY_PATTERN.test(value);

/** The stored form of a key: hex SHA-256 (enough for a 256-bit random secret). */
export const hashApiKey = (key: string) => createHash('sha256').update(key).digest('hex');

export interface NewApiKey {
  tenantId: string;
  name: string;
  scopes: ApiKeyScope[];
  expiresAt?: Date | null;
  /** The key that made this one over the API; null (the default) for the CLI against the database. */
  createdBy?: string | null;
}

/** A key as listings show it: never the key, nor its hash. */
export type ApiKeyInfo = Omit<ApiKeyRow, 'hash'>;

const info = ({ hash: _hash, ...rest }: ApiKeyRow): ApiKeyInfo => rest;

/** The API keys table: create (the key is returned once), look up by key, list, revoke. */
export class ApiKeyStore {
  constructor(private readonly db: Database) {}

  /** Makes a key. The returned `key` is the only copy there will ever be. */
  async create(input: NewApiKey): Promise<{ key: string; info: ApiKeyInfo }> {
    const key = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const [row] = await this.db
      .insert(apiKeys)
      .values({
        id: randomUUID(),
        tenantId: input.tenantId,
        name: input.name,
        hash: hashApiKey(key),
        prefix: key.slice(0, 12),
        scopes: [...new Set(input.scopes)],
        expiresAt: input.expiresAt ?? null,
        createdBy: input.createdBy ?? null,
      })
      .returning();
    if (!row) throw new Error('insert returned no row');
    return { key, info: info(row) };
  }

  /** The key with this hash, revoked or expired ones included (the caller decides). */
  async findByHash(hash: string): Promise<ApiKeyRow | undefined> {
    const [row] = await this.db.select().from(apiKeys).where(eq(apiKeys.hash, hash)).limit(1);
    return row;
  }

  /** The key with this id (of this tenant only, when given), revoked or expired ones included. */
  async get(id: string, tenantId?: string): Promise<ApiKeyInfo | undefined> {
    const conditions: SQL[] = [eq(apiKeys.id, id)];
    if (tenantId !== undefined) conditions.push(eq(apiKeys.tenantId, tenantId));
    const [row] = await this.db
      .select()
      .from(apiKeys)
      .where(and(...conditions))
      .limit(1);
    return row ? info(row) : undefined;
  }

  /**
   * Of these key ids, those that no longer let anyone in (revoked, expired, or gone), with why: what
   * servers ask, every second or so, of the keys holding streams open.
   */
  async unusable(ids: readonly string[]): Promise<{ id: string; reason: 'revoked' | 'expired' }[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .select({ id: apiKeys.id, revokedAt: apiKeys.revokedAt, expiresAt: apiKeys.expiresAt })
      .from(apiKeys)
      .where(inArray(apiKeys.id, [...ids]));
    const now = Date.now();
    const found = new Map(rows.map((row) => [row.id, row]));
    return ids.flatMap((id): { id: string; reason: 'revoked' | 'expired' }[] => {
      const row = found.get(id);
      if (!row || row.revokedAt) return [{ id, reason: 'revoked' }];
      if (row.expiresAt && row.expiresAt.getTime() <= now) return [{ id, reason: 'expired' }];
      return [];
    });
  }

  /** Keys, newest first: of one tenant, or of all. Revoked ones too (with `revokedAt`). */
  async list(tenantId?: string): Promise<ApiKeyInfo[]> {
    const rows = await this.db
      .select()
      .from(apiKeys)
      .where(tenantId === undefined ? undefined : eq(apiKeys.tenantId, tenantId))
      .orderBy(desc(apiKeys.createdAt));
    return rows.map(info);
  }

  /** Revokes a key (of this tenant only, when given). Undefined when there is no such live key. */
  async revoke(id: string, tenantId?: string): Promise<ApiKeyInfo | undefined> {
    const conditions: SQL[] = [eq(apiKeys.id, id)];
    if (tenantId !== undefined) conditions.push(eq(apiKeys.tenantId, tenantId));
    const [row] = await this.db
      .update(apiKeys)
      .set({ revokedAt: new Date() })
      .where(and(...conditions, isNull(apiKeys.revokedAt)))
      .returning();
    return row ? info(row) : undefined;
  }

  /** Records that these keys were used now (the caller batches: at most once a minute per key). */
  async touch(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .update(apiKeys)
      .set({ lastUsedAt: new Date() })
      .where(inArray(apiKeys.id, [...ids]));
  }
}
