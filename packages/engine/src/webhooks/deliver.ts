import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  type TakenDelivery,
  type TaskStore,
  WEBHOOK_SECRET_PREFIX,
  type WebhookAttempt,
  type WebhookEvent,
  type WebhookStore,
} from '@tasker/db';
import type { Logger } from '../logger.ts';
import { type TaskView, toTaskView } from '../view.ts';
import { checkUrlShape, guardedLookup } from './address-guard.ts';

/** What every delivery's body is: the event and the task's record, as GET /tasks/{id} answers it. */
export interface WebhookPayload {
  event: WebhookEvent | 'webhook.test';
  task: TaskView | null;
}

/**
 * The Standard Webhooks signature: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with
 * the secret's bytes (the base64 after `whsec_`).
 */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.slice(WEBHOOK_SECRET_PREFIX.length), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** An attempt's headers: `webhook-id` (the delivery's, the same on every attempt), timestamp, signature. */
export function webhookHeaders(secret: string, id: string, body: string, now = Date.now()) {
  const timestamp = Math.floor(now / 1000);
  return {
    'content-type': 'application/json',
    'user-agent': 'tasker-webhooks',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secret, id, timestamp, body),
  };
}

export interface PostOptions {
  timeoutMs: number;
  allowPrivate: boolean;
}

/**
 * POSTs one signed body, once: to the address checked (no loopback, private or link-local one
 * unless allowed), following no redirect, within `timeoutMs`. The answer's body is read and
 * dropped. Never throws: what happened is the attempt.
 */
export async function postWebhook(
  url: string,
  headers: Record<string, string>,
  body: string,
  { timeoutMs, allowPrivate }: PostOptions,
): Promise<WebhookAttempt> {
  const at = new Date();
  const started = performance.now();
  const done = (status: number | null, error: string | null): WebhookAttempt => ({
    at: at.toISOString(),
    status,
    error,
    durationMs: Math.round(performance.now() - started),
  });
  const refusal = checkUrlShape(url, allowPrivate);
  if (refusal !== undefined) return done(null, `refused: ${refusal}`);
  const target = new URL(url);
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<WebhookAttempt>((resolve) => {
    const req = request(
      target,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup: guardedLookup(allowPrivate),
        signal: AbortSignal.timeout(timeoutMs),
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        res.on('error', () => {});
        res.on('end', () => {
          if (status >= 200 && status < 300) resolve(done(status, null));
          else if (status >= 300 && status < 400)
            resolve(done(status, `redirect to ${res.headers.location ?? '(no location)'} not followed`));
          else resolve(done(status, `HTTP ${status}`));
        });
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      const timedOut = error.name === 'AbortError' || error.name === 'TimeoutError';
      resolve(
        done(null, timedOut ? `no answer within ${timeoutMs} ms` : error.message || String(error.code)),
      );
    });
    req.end(body);
  });
}

export interface DelivererOptions extends PostOptions {
  /** The waits between attempts, in ms (WEBHOOK_RETRY_SCHEDULE): after the last, failed for good. */
  retrySchedule: readonly number[];
  /** Deliveries taken per pass. */
  batchSize?: number;
}

/**
 * Sends the due webhook deliveries (at least once): takes them under a lease (store.take), fixes
 * each one's body at its first attempt from the task's record, signs and POSTs it, and records the
 * attempt: delivered (2xx), or again after the schedule's next wait, or failed once the schedule
 * is spent. Every worker runs one (apps/worker/src/webhook-sender.ts); they skip each other's rows.
 */
export class WebhookDeliverer {
  private readonly leaseMs: number;
  /** Deliveries taken per pass. */
  readonly batchSize: number;

  constructor(
    private readonly webhooks: WebhookStore,
    private readonly tasks: Pick<TaskStore, 'get'>,
    private readonly options: DelivererOptions,
    private readonly log: Logger,
  ) {
    // Longer than any attempt: a sender killed mid-send leaves its delivery due again after this.
    this.leaseMs = options.timeoutMs + 30_000;
    this.batchSize = options.batchSize ?? 50;
  }

  /** One pass: sends what is due (up to a batch), concurrently. The number of attempts made. */
  async deliverDue(): Promise<number> {
    const taken = await this.webhooks.take(this.batchSize, this.leaseMs);
    await Promise.all(taken.map((t) => this.attempt(t)));
    return taken.length;
  }

  private async attempt({ delivery, secret }: TakenDelivery): Promise<void> {
    const failAttempt = (error: string): WebhookAttempt => ({
      at: new Date().toISOString(),
      status: null,
      error,
      durationMs: 0,
    });
    let attempt: WebhookAttempt;
    if (secret === null) {
      attempt = failAttempt(
        'no signing secret: the tenant has none for its tasks’ webhook_url (POST /webhooks/task-secret)',
      );
    } else {
      const body = delivery.body ?? (await this.firstBody(delivery.id, delivery.taskId, delivery.event));
      attempt =
        body === undefined
          ? failAttempt('the task no longer exists')
          : await postWebhook(delivery.url, webhookHeaders(secret, delivery.id, body), body, this.options);
    }
    const delivered = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
    const wait = this.options.retrySchedule[delivery.attempts];
    const recorded = await this.webhooks.record(
      delivery.id,
      attempt,
      delivered ? { delivered } : { delivered, retryInMs: wait ?? null },
    );
    if (recorded?.status === 'failed')
      this.log.warn(
        {
          deliveryId: delivery.id,
          taskId: delivery.taskId,
          attempts: recorded.attempts,
          error: attempt.error,
        },
        'webhook delivery failed for good (redeliver it by hand)',
      );
  }

  /** The body of a delivery's first attempt, stored before it is sent; undefined: the task is gone. */
  private async firstBody(id: string, taskId: string, event: WebhookEvent): Promise<string | undefined> {
    const row = await this.tasks.get(taskId);
    if (!row) return undefined;
    const payload: WebhookPayload = { event, task: toTaskView(row) };
    return this.webhooks.fixBody(id, JSON.stringify(payload));
  }
}
