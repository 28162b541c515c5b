import { type Database, WebhookStore } from '@tasker/db';
import { type Env, type Logger, type TaskLifecycle, WebhookDeliverer } from '@tasker/engine';
import { Periodic } from './periodic.ts';

/**
 * Sends the due webhook deliveries every `WEBHOOK_INTERVAL_MS` (the engine's WebhookDeliverer:
 * signed, retried on the schedule, kept as failed after it). Every worker runs one, without a
 * lock: each takes due rows with FOR UPDATE SKIP LOCKED and a lease, so no two send one attempt,
 * and a killed sender's delivery is sent again when its lease ends.
 */
export class WebhookSender extends Periodic {
  private readonly deliverer: WebhookDeliverer;

  constructor(db: Database, lifecycle: TaskLifecycle, env: Env, log: Logger) {
    const deliverer = new WebhookDeliverer(
      new WebhookStore(db),
      lifecycle.resources.store,
      {
        retrySchedule: env.WEBHOOK_RETRY_SCHEDULE,
        timeoutMs: env.WEBHOOK_TIMEOUT_MS,
        allowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
      },
      log,
    );
    super(
      env.WEBHOOK_INTERVAL_MS,
      async () => {
        // A full batch: there may be more due at once, so pass again without waiting.
        let taken: number;
        do taken = await deliverer.deliverDue();
        while (taken >= deliverer.batchSize);
      },
      (error) => log.warn({ err: error }, 'webhook delivery pass failed; will retry'),
    );
    this.deliverer = deliverer;
  }

  /**
   * No pass starts after this; the attempts under way end and are recorded (each within
   * WEBHOOK_TIMEOUT_MS), then the kept-alive connections close.
   */
  override async stop(): Promise<void> {
    await super.stop();
    await this.deliverer.drain();
    this.deliverer.close();
  }
}
