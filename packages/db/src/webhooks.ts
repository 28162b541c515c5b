import { randomBytes, randomUUID } from 'node:crypto';
import { and, desc, eq, getTableColumns, type SQL, sql } from 'drizzle-orm';
import type { Database } from './client.ts';
import {
  tenantWebhookSecrets,
  type WebhookAttempt,
  type WebhookDeliveryRow,
  type WebhookDeliveryStatus,
  type WebhookEvent,
  type WebhookRow,
  webhookDeliveries,
  webhooks,
} from './schema.ts';
import { column } from './tasks/rows.ts';

/** Every webhook secret starts with this (Standard Webhooks' `whsec_`), then base64 of 24 random bytes. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

/** A new secret: `whsec_` + base64 of 24 random bytes (192 bits). */
export const newWebhookSecret = () => `${WEBHOOK_SECRET_PREFIX}${randomBytes(24).toString('base64')}`;

export interface NewWebhook {
  tenantId: string;
  url: string;
  events: WebhookEvent[];
  /** Only tasks of these types; null or absent: every type. */
  taskNames?: string[] | null;
}

/** A webhook as listings show it: never its secret. */
export type WebhookInfo = Omit<WebhookRow, 'secret'>;

const info = ({ secret: _secret, ...rest }: WebhookRow): WebhookInfo => rest;

/** A delivery a sender took (its lease runs), with the secret that signs it (null: none any more). */
export interface TakenDelivery {
  delivery: WebhookDeliveryRow;
  secret: string | null;
}

/** What an attempt ended in: delivered, another attempt in `retryInMs`, or no more attempts (null). */
export type AttemptOutcome = { delivered: true } | { delivered: false; retryInMs: number | null };

const deliveryColumns = getTableColumns(webhookDeliveries);

/** A raw delivery row (snake_case, driver values) → the drizzle row type. */
function deliveryFromDriver(raw: Record<string, unknown>): WebhookDeliveryRow {
  const row: Record<string, unknown> = {};
  for (const [key, col] of Object.entries(deliveryColumns)) {
    const value = raw[col.name];
    row[key] = value === null || value === undefined ? null : col.mapFromDriverValue(value);
  }
  return row as WebhookDeliveryRow;
}

/**
 * Completion webhooks: a tenant's webhooks (create, list, get, delete), the tenant's secret for its
 * tasks' own `webhook_url`s, and the deliveries that the trigger `tasks_finished` (migration 0023)
 * stores when a task finishes: taken by senders under a lease, recorded, listed, redelivered.
 * Every call that a tenant makes passes its tenant (undefined: an operator's, across tenants).
 */
export class WebhookStore {
  constructor(private readonly db: Database) {}

  /** Makes a webhook. The returned `secret` is the only copy anyone will be shown. */
  async create(input: NewWebhook): Promise<{ secret: string; info: WebhookInfo }> {
    const secret = newWebhookSecret();
    const [row] = await this.db
      .insert(webhooks)
      .values({
        id: randomUUID(),
        tenantId: input.tenantId,
        url: input.url,
        events: [...new Set(input.events)],
        taskNames: input.taskNames ? [...new Set(input.taskNames)] : null,
        secret,
      })
      .returning();
    if (!row) throw new Error('insert returned no row');
    return { secret, info: info(row) };
  }

  /** Webhooks, newest first: of one tenant, or of all. */
  async list(tenantId?: string): Promise<WebhookInfo[]> {
    const rows = await this.db
      .select()
      .from(webhooks)
      .where(tenantId === undefined ? undefined : eq(webhooks.tenantId, tenantId))
      .orderBy(desc(webhooks.createdAt), desc(webhooks.id));
    return rows.map(info);
  }

  /** The webhook with this id (of this tenant only, when given). */
  async get(id: string, tenantId?: string): Promise<WebhookInfo | undefined> {
    const row = await this.withSecret(id, tenantId);
    return row ? info(row) : undefined;
  }

  /** The webhook with its secret (for a test event): never shown to a caller. */
  async withSecret(id: string, tenantId?: string): Promise<WebhookRow | undefined> {
    const conditions: SQL[] = [eq(webhooks.id, id)];
    if (tenantId !== undefined) conditions.push(eq(webhooks.tenantId, tenantId));
    const [row] = await this.db
      .select()
      .from(webhooks)
      .where(and(...conditions))
      .limit(1);
    return row;
  }

  /** Deletes a webhook and its deliveries (of this tenant only, when given). Undefined: no such webhook. */
  async delete(id: string, tenantId?: string): Promise<WebhookInfo | undefined> {
    const conditions: SQL[] = [eq(webhooks.id, id)];
    if (tenantId !== undefined) conditions.push(eq(webhooks.tenantId, tenantId));
    const [row] = await this.db
      .delete(webhooks)
      .where(and(...conditions))
      .returning();
    return row ? info(row) : undefined;
  }

  /**
   * A new secret for the deliveries to the tenant's tasks' own `webhook_url`s (replacing the old
   * one: deliveries not yet sent are signed with the new one). Returned this once.
   */
  async rotateTaskSecret(tenantId: string): Promise<{ secret: string; createdAt: Date }> {
    const secret = newWebhookSecret();
    const [row] = await this.db
      .insert(tenantWebhookSecrets)
      .values({ tenantId, secret })
      .onConflictDoUpdate({ target: tenantWebhookSecrets.tenantId, set: { secret, createdAt: sql`now()` } })
      .returning();
    if (!row) throw new Error('upsert returned no row');
    return { secret, createdAt: row.createdAt };
  }

  /** Whether the tenant has a secret for its tasks' own `webhook_url`s. */
  async hasTaskSecret(tenantId: string): Promise<boolean> {
    const [row] = await this.db
      .select({ tenantId: tenantWebhookSecrets.tenantId })
      .from(tenantWebhookSecrets)
      .where(eq(tenantWebhookSecrets.tenantId, tenantId))
      .limit(1);
    return row !== undefined;
  }

  /**
   * Up to `limit` due pending deliveries, oldest due first, each leased for `leaseMs`: its next
   * attempt time moves ahead in the same statement, so no other sender takes it meanwhile (rows
   * another sender is taking are skipped), and a sender killed mid-send leaves it to be retried
   * when the lease ends. Each comes with the secret that signs it: its webhook's, or for a task's
   * own `webhook_url` its tenant's.
   */
  async take(limit: number, leaseMs: number): Promise<TakenDelivery[]> {
    const rows = await this.db.execute<Record<string, unknown>>(sql`
      with due as (
        select id from webhook_deliveries
        where status = 'pending' and next_attempt_at <= now()
        order by next_attempt_at
        limit ${limit}::int
        for update skip locked)
      update webhook_deliveries d
      set next_attempt_at = now() + ${leaseMs}::int * interval '1 millisecond', updated_at = now()
      from due
      where d.id = due.id
      returning d.*,
        case when d.webhook_id is null
          then (select s.secret from tenant_webhook_secrets s where s.tenant_id = d.tenant_id)
          else (select w.secret from webhooks w where w.id = d.webhook_id) end as signing_secret`);
    return rows.map((raw) => ({
      delivery: deliveryFromDriver(raw),
      secret: (raw.signing_secret as string | null) ?? null,
    }));
  }

  /**
   * The deliveries' bodies: for each, the one already stored, else the one given, stored now (first
   * writer wins), so that every attempt sends the same bytes. One statement for the lot.
   */
  async fixBodies(bodies: readonly { id: string; body: string }[]): Promise<Map<string, string>> {
    if (bodies.length === 0) return new Map();
    const rows = await this.db.execute<{ id: string; body: string }>(sql`
      update webhook_deliveries d set body = coalesce(d.body, v.body)
      from unnest(${column(bodies, (b) => b.id)}::uuid[], ${column(bodies, (b) => b.body)}::text[]) as v(id, body)
      where d.id = v.id
      returning d.id, d.body`);
    return new Map(rows.map((row) => [row.id, row.body]));
  }

  /**
   * Records attempts of pending deliveries, one statement for the lot: each appended to its log;
   * delivered, pending again at now + `retryInMs`, or failed (no attempt left). Those no longer
   * pending (deleted with their webhook, or recorded by another sender after this one's lease ran
   * out) are left as they are and not returned.
   */
  async record(
    attempts: readonly { id: string; attempt: WebhookAttempt; outcome: AttemptOutcome }[],
  ): Promise<WebhookDeliveryRow[]> {
    if (attempts.length === 0) return [];
    const statusOf = ({ outcome }: { outcome: AttemptOutcome }): WebhookDeliveryStatus =>
      outcome.delivered ? 'delivered' : outcome.retryInMs === null ? 'failed' : 'pending';
    const retryOf = ({ outcome }: { outcome: AttemptOutcome }) =>
      outcome.delivered ? null : outcome.retryInMs;
    const rows = await this.db.execute<Record<string, unknown>>(sql`
      update webhook_deliveries d
      set status = v.status, attempts = d.attempts + 1,
        next_attempt_at = case when v.retry_ms is null then now() else now() + v.retry_ms * interval '1 millisecond' end,
        last_status = v.last_status, last_error = v.last_error,
        log = d.log || jsonb_build_array(v.attempt), updated_at = now()
      from unnest(${column(attempts, (a) => a.id)}::uuid[], ${column(attempts, statusOf)}::text[],
                  ${column(attempts, retryOf)}::int[], ${column(attempts, (a) => a.attempt.status)}::int[],
                  ${column(attempts, (a) => a.attempt.error)}::text[],
                  ${column(attempts, (a) => JSON.stringify(a.attempt))}::jsonb[])
        as v(id, status, retry_ms, last_status, last_error, attempt)
      where d.id = v.id and d.status = 'pending'
      returning d.*`);
    return rows.map(deliveryFromDriver);
  }

  /** A webhook's deliveries, newest first (with `status`: only those), at most `limit`. */
  async deliveries(
    webhookId: string,
    { status, limit }: { status?: WebhookDeliveryStatus; limit: number },
  ): Promise<WebhookDeliveryRow[]> {
    const conditions: SQL[] = [eq(webhookDeliveries.webhookId, webhookId)];
    if (status !== undefined) conditions.push(eq(webhookDeliveries.status, status));
    return this.db
      .select()
      .from(webhookDeliveries)
      .where(and(...conditions))
      .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
      .limit(limit);
  }

  /**
   * Sends a delivery of this webhook again, from now, with a fresh round of attempts (its log kept;
   * its id and body unchanged). Undefined: no such delivery of this webhook.
   */
  async redeliver(webhookId: string, deliveryId: string): Promise<WebhookDeliveryRow | undefined> {
    const [row] = await this.db
      .update(webhookDeliveries)
      .set({ status: 'pending', attempts: 0, nextAttemptAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.webhookId, webhookId)))
      .returning();
    return row;
  }
}
