import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import {
  Batcher,
  type TakenDelivery,
  type TaskStore,
  WEBHOOK_SECRET_PREFIX,
  type WebhookAttempt,
  type WebhookDeliveryRow,
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
 * The HMAC keys of the secrets used lately. Making a key from a secret's bytes was most of a
 * signature's cost (about 70 of 85 µs per delivery in the worker's profile under bench:webhooks); a
 * sender signs with the same few secrets again and again. Emptied when it holds 1,000.
 */
const signingKeys = new Map<string, KeyObject>();

function signingKey(secret: string): KeyObject {
  let key = signingKeys.get(secret);
  if (key === undefined) {
    if (signingKeys.size >= 1000) signingKeys.clear();
    key = createSecretKey(Buffer.from(secret.slice(WEBHOOK_SECRET_PREFIX.length), 'base64'));
    signingKeys.set(secret, key);
  }
  return key;
}

/**
 * The Standard Webhooks signature: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with
 * the secret's bytes (the base64 after `whsec_`).
 */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', signingKey(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
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
  /** Connections to keep alive (the sender's); default: a connection of its own, closed after. */
  agent?: HttpAgent;
}

/** An attempt that sent nothing, and why. */
const failedAttempt = (error: string): WebhookAttempt => ({
  at: new Date().toISOString(),
  status: null,
  error,
  durationMs: 0,
});

/**
 * POSTs one signed body, once: to the address checked (no loopback, private or link-local one
 * unless allowed), following no redirect, within `timeoutMs`. The answer's body is read and
 * dropped. Never throws: what happened is the attempt.
 */
export async function postWebhook(
  url: string,
  headers: Record<string, string>,
  body: string,
  { timeoutMs, allowPrivate, agent }: PostOptions,
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
        agent: agent ?? false,
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
  /** Attempts under way at most (default 200). */
  maxInFlight?: number;
}

type RecordedAttempt = Parameters<WebhookStore['record']>[0][number];

/**
 * Sends the due webhook deliveries (at least once): takes them under a lease (store.take), fixes
 * each one's body at its first attempt from the task's record, signs and POSTs it, and records the
 * attempt: delivered (2xx), or again after the schedule's next wait, or failed once the schedule
 * is spent. Every worker runs one (apps/worker/src/webhook-sender.ts); they skip each other's rows.
 */
export class WebhookDeliverer {
  private readonly leaseMs: number;
  /**
   * Connections kept alive, as many per host as attempts may be under way: an attempt waiting in
   * an agent's queue for a connection would spend its WEBHOOK_TIMEOUT_MS there (the timeout starts
   * with the request), and a receiver that answers in time would be failed for the sender's queue.
   */
  private readonly agents: { http: HttpAgent; https: HttpsAgent };
  /** Deliveries taken per pass. */
  readonly batchSize: number;
  /** Attempts under way at most (each holds a connection until its answer or its timeout). */
  readonly maxInFlight: number;
  private readonly inFlight = new Set<Promise<void>>();
  /** Attempts that end together are recorded by one statement (group commit). */
  private readonly records: Batcher<RecordedAttempt, WebhookDeliveryRow | undefined>;

  constructor(
    private readonly webhooks: WebhookStore,
    private readonly tasks: Pick<TaskStore, 'getMany'>,
    private readonly options: DelivererOptions,
    private readonly log: Logger,
  ) {
    // Longer than any attempt: a sender killed mid-send leaves its delivery due again after this.
    this.leaseMs = options.timeoutMs + 30_000;
    this.batchSize = options.batchSize ?? 50;
    this.maxInFlight = options.maxInFlight ?? 200;
    this.agents = {
      http: new HttpAgent({ keepAlive: true, maxSockets: this.maxInFlight }),
      https: new HttpsAgent({ keepAlive: true, maxSockets: this.maxInFlight }),
    };
    this.records = new Batcher(
      async (items) => {
        const rows = new Map((await webhooks.record(items)).map((row) => [row.id, row]));
        return items.map((item) => rows.get(item.id));
      },
      (item) => item.id,
      { maxSize: 200 },
    );
  }

  /**
   * One pass: takes what is due, up to a batch and to the room left under `maxInFlight`, fixes the
   * bodies of first attempts from the tasks' records (one read, one write), and starts sending
   * them. It does not wait for the answers: each attempt is recorded when it ends (attempts ending
   * together share one UPDATE), so a slow or silent receiver holds only its own deliveries, never
   * the others'. The number taken.
   */
  async deliverDue(): Promise<number> {
    const room = this.maxInFlight - this.inFlight.size;
    if (room <= 0) return 0;
    const taken = await this.webhooks.take(Math.min(room, this.batchSize), this.leaseMs);
    if (taken.length === 0) return 0;
    const bodies = await this.bodiesOf(taken);
    for (const one of taken) {
      const sending: Promise<void> = this.send(one, bodies.get(one.delivery.id))
        .catch((error: unknown) =>
          // Unrecorded: the lease ends and the delivery is due again.
          this.log.warn(
            { err: error, deliveryId: one.delivery.id },
            'webhook attempt not recorded; will retry',
          ),
        )
        .finally(() => this.inFlight.delete(sending));
      this.inFlight.add(sending);
    }
    return taken.length;
  }

  /** Resolves when every attempt under way has been recorded. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** One attempt of one delivery, then its record. */
  private async send({ delivery, secret }: TakenDelivery, body: string | undefined): Promise<void> {
    const attempt =
      secret === null
        ? failedAttempt(
            'no signing secret: the tenant has none for its tasks’ webhook_url (POST /webhooks/task-secret)',
          )
        : body === undefined
          ? failedAttempt('the task no longer exists')
          : await postWebhook(delivery.url, webhookHeaders(secret, delivery.id, body), body, {
              ...this.options,
              agent: this.agentOf(delivery.url),
            });
    const delivered = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
    const wait = this.options.retrySchedule[delivery.attempts];
    const row = await this.records.add({
      id: delivery.id,
      attempt,
      outcome: delivered ? { delivered } : { delivered, retryInMs: wait ?? null },
    });
    if (row?.status === 'failed')
      this.log.warn(
        { deliveryId: row.id, taskId: row.taskId, attempts: row.attempts, error: row.lastError },
        'webhook delivery failed for good (redeliver it by hand)',
      );
  }

  /** Connections kept alive between passes, per scheme; each still made to an address checked. */
  private agentOf(url: string): HttpAgent {
    return url.startsWith('https:') ? this.agents.https : this.agents.http;
  }

  /** Closes the connections kept alive. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  /**
   * Each delivery's body: the one stored, or for a first attempt the task's record as GET
   * /tasks/{id} answers it, stored before it is sent (a task gone meanwhile has none).
   */
  private async bodiesOf(taken: readonly TakenDelivery[]): Promise<Map<string, string>> {
    const bodies = new Map<string, string>();
    const first: TakenDelivery['delivery'][] = [];
    for (const { delivery } of taken) {
      if (delivery.body === null) first.push(delivery);
      else bodies.set(delivery.id, delivery.body);
    }
    if (first.length === 0) return bodies;
    const rows = new Map((await this.tasks.getMany(first.map((d) => d.taskId))).map((row) => [row.id, row]));
    const fresh = first.flatMap((delivery) => {
      const row = rows.get(delivery.taskId);
      if (!row) return [];
      const payload: WebhookPayload = { event: delivery.event, task: toTaskView(row) };
      return [{ id: delivery.id, body: JSON.stringify(payload) }];
    });
    for (const [id, body] of await this.webhooks.fixBodies(fresh)) bodies.set(id, body);
    return bodies;
  }
}
