import { API_KEY_SCOPES, type ApiKeyScope, type ApiKeyStore, hashApiKey, looksLikeApiKey } from '@tasker/db';
import { DEFAULT_TENANT, ForbiddenError, type Logger } from '@tasker/engine';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { LruMap } from 'toad-cache';

/** Who is calling: a tenant, and what its key may do. */
export interface Identity {
  tenantId: string;
  scopes: readonly ApiKeyScope[];
  /** The key's id; null in `disabled` mode. */
  keyId: string | null;
}

/** The outcome of reading a request's credentials. */
export type Auth = { ok: true; identity: Identity } | { ok: false; reason: string };

declare module 'fastify' {
  interface FastifyRequest {
    auth: Auth;
  }
}

/** Why a call is refused, as an HTTP status and words; undefined when `auth` may make it. */
export type Refusal = { status: 401 | 403; message: string };

/** Whether a key acts across tenants (the shared queue, any tenant's keys). */
export const isOperator = (identity: Identity): boolean => identity.scopes.includes('operator');

/**
 * The tenant a caller may act on (its keys, its limits): an operator's, any, the one named (none:
 * every tenant); an admin's, its own, named or not. Another tenant named by an admin key is a 403
 * in `refusal`'s words, which say what the route reaches.
 */
export function reachable(caller: Identity, tenant: string, refusal: string): string;
export function reachable(caller: Identity, tenant: string | undefined, refusal: string): string | undefined;
export function reachable(caller: Identity, tenant: string | undefined, refusal: string): string | undefined {
  if (isOperator(caller)) return tenant;
  if (tenant !== undefined && tenant !== caller.tenantId) throw new ForbiddenError(refusal);
  return caller.tenantId;
}

/**
 * Whether `identity` holds `scope`. `operator` includes `admin`: the keys of any tenant include
 * those of its own. Nothing else implies anything (an operator key reads no task without tasks:read).
 */
export function hasScope(identity: Identity, scope: ApiKeyScope): boolean {
  return identity.scopes.includes(scope) || (scope === 'admin' && isOperator(identity));
}

/** The words of the 403 for a key without `scope`. */
export const lacksScope = (scope: ApiKeyScope): string =>
  `This API key lacks the "${scope}" scope${scope === 'admin' ? ' (or "operator")' : ''}`;

/**
 * The one rule for every route and stream: no or a bad key is a 401, a key without `scope` a 403
 * naming it. Returns the caller's identity, or why it is refused.
 */
export function authorize(auth: Auth, scope: ApiKeyScope): { identity: Identity } | { refusal: Refusal } {
  if (!auth.ok) return { refusal: { status: 401, message: auth.reason } };
  if (!hasScope(auth.identity, scope)) return { refusal: { status: 403, message: lacksScope(scope) } };
  return { identity: auth.identity };
}

/** How long a looked-up key is trusted before it is read again: a revocation reaches every server within this. */
const KEY_CACHE_MS = 1000;
/** `Authorization: Bearer <key>`. */
const BEARER = /^Bearer[ ]+(\S+)\s*$/i;
/** Most keys each cache holds (least recently used first out). */
const KEY_CACHE_SIZE = 10_000;
/** How long a refused key (unknown, revoked, expired) is answered without a lookup. */
const REFUSED_CACHE_MS = 10_000;
/**
 * How long a key once valid is known as such: it is still looked up after KEY_CACHE_MS, but the
 * per-IP budget in front of the lookups (rate-limits.ts) does not hold it back.
 */
const KNOWN_VALID_MS = 10 * 60_000;
/** `last_used_at` is written at most this often per key. */
const TOUCH_EVERY_MS = 60_000;

const DISABLED: Auth = {
  ok: true,
  identity: { tenantId: DEFAULT_TENANT, scopes: API_KEY_SCOPES, keyId: null },
};

/**
 * Checks `Authorization: Bearer tsk_…` against the API keys table. A key is looked up by its
 * SHA-256 (an index lookup: no timing to measure, nothing to compare byte by byte), cached for
 * KEY_CACHE_MS, and refused when unknown, revoked or expired. Its `last_used_at` is written in
 * batches, at most once a minute per key.
 *
 * Two bounded LRU caches, by hash: valid keys, and refused ones (for REFUSED_CACHE_MS). Refused
 * keys go only into theirs, so a flood of random keys evicts other refused keys, never a valid one.
 */
export class Authenticator {
  private readonly valid = new LruMap<{ auth: Auth; until: number }>(KEY_CACHE_SIZE, KNOWN_VALID_MS);
  private readonly refused = new LruMap<Auth>(KEY_CACHE_SIZE, REFUSED_CACHE_MS);
  private readonly touched = new Map<string, number>();
  private readonly toTouch = new Set<string>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly keys: ApiKeyStore,
    private readonly mode: 'required' | 'disabled',
    private readonly log: Logger,
  ) {}

  async authenticate(header: string | undefined): Promise<Auth> {
    if (this.mode === 'disabled') return DISABLED;
    if (!header) return { ok: false, reason: 'No API key: send Authorization: Bearer <key>' };
    const match = BEARER.exec(header);
    const key = match?.[1];
    if (!key || !looksLikeApiKey(key))
      return { ok: false, reason: 'Malformed API key: expected Bearer tsk_…' };
    const hash = hashApiKey(key);
    const now = Date.now();
    const cached = this.valid.get(hash);
    let auth = cached && cached.until > now ? cached.auth : this.refused.get(hash);
    if (!auth) {
      auth = await this.lookUp(hash);
      if (auth.ok) {
        this.valid.set(hash, { auth, until: now + KEY_CACHE_MS });
        this.refused.delete(hash);
      } else {
        this.refused.set(hash, auth);
        this.valid.delete(hash);
      }
    }
    if (auth.ok && auth.identity.keyId) this.touch(auth.identity.keyId, now);
    return auth;
  }

  /**
   * Whether authenticating this header would query the database for a key not known as valid
   * lately: what the per-IP budget in front of the lookups holds back (rate-limits.ts).
   */
  wouldLookUp(header: string | undefined): boolean {
    if (this.mode === 'disabled' || !header) return false;
    const key = BEARER.exec(header)?.[1];
    if (!key || !looksLikeApiKey(key)) return false;
    const hash = hashApiKey(key);
    return this.valid.get(hash) === undefined && this.refused.get(hash) === undefined;
  }

  private async lookUp(hash: string): Promise<Auth> {
    const row = await this.keys.findByHash(hash);
    if (!row) return { ok: false, reason: 'Unknown API key' };
    if (row.revokedAt) return { ok: false, reason: 'This API key was revoked' };
    if (row.expiresAt && row.expiresAt.getTime() <= Date.now())
      return { ok: false, reason: 'This API key has expired' };
    return { ok: true, identity: { tenantId: row.tenantId, scopes: row.scopes, keyId: row.id } };
  }

  private touch(keyId: string, now: number) {
    if (now - (this.touched.get(keyId) ?? 0) < TOUCH_EVERY_MS) return;
    this.touched.set(keyId, now);
    this.toTouch.add(keyId);
    this.flushTimer ??= setTimeout(() => void this.flush(), 1000);
  }

  private async flush() {
    this.flushTimer = undefined;
    const ids = [...this.toTouch];
    this.toTouch.clear();
    await this.keys.touch(ids).catch((error) => this.log.warn({ err: error }, 'could not record key use'));
  }

  close(): Promise<void> {
    clearTimeout(this.flushTimer);
    return this.flush();
  }

  /**
   * Reads every request's credentials once, before anything else (rate limits count per key).
   * `isOpen`: whether the request's route is open to anyone (routes.ts); no key is read there.
   */
  register(app: FastifyInstance, isOpen: (request: FastifyRequest) => boolean): void {
    app.decorateRequest('auth', null as never); // set by the hook below on every request
    // A key lookup that meets PostgreSQL down throws: the error handler answers 503.
    app.addHook('onRequest', async (request: FastifyRequest) => {
      request.auth = isOpen(request)
        ? { ok: false, reason: 'an open route needs no key' }
        : await this.authenticate(request.headers.authorization);
    });
  }
}
