/**
 * A server's way out of a rolling deploy (SIGTERM). Two phases:
 *
 * 1. Draining (`start`): `/readyz` answers 503 so that a load balancer takes the server out, every
 *    answer closes its connection (`Connection: close`: a kept-alive client opens a new one, which
 *    the balancer sends elsewhere), and everything else is served as before, for SHUTDOWN_DELAY_MS.
 * 2. Closing (`app.close()`): every live stream ends cleanly with a reconnect hint (below) and its
 *    client resumes, with its last event id, on another server (Fastify's preClose, for at most
 *    STREAM_END_MS: the listener still accepts meanwhile, and what arrives is served, a new stream
 *    ended at once, before any read of its task); then the listener closes and requests in flight
 *    finish (a new stream among them is ended at once too).
 *
 * On /metrics: `tasker_server_draining` (1 from `start` on) and `tasker_server_streams_drained_total`
 * (`streamDrained`), observability.ts.
 *
 * Every event stream (SSE and tRPC subscriptions alike) starts with a `retry:` line: a cut
 * connection, a crash as much as a shutdown, is reconnected after that long instead of
 * EventSource's default 3 s. Each stream draws its own delay in [RECONNECT_MIN_MS,
 * RECONNECT_MIN_MS + RECONNECT_SPREAD_MS), so that the streams of a stopping server do not all
 * come back at the same instant.
 */
export class Drain {
  private started = false;
  private ended = 0;

  /** True from SIGTERM on (`tasker_server_draining`). */
  get draining(): boolean {
    return this.started;
  }

  /** Streams ended by the shutdown with the reconnect hint so far (`tasker_server_streams_drained_total`). */
  get streamsDrained(): number {
    return this.ended;
  }

  start(): void {
    this.started = true;
  }

  /** One more stream ended with the reconnect hint: its last bytes (`drainedEnd`) are written. */
  streamDrained(): void {
    this.ended++;
  }
}

/** The comment that ends a drained stream, for clients (and tests) that look for it. */
export const DRAINED_COMMENT = ': server shutting down; reconnect with Last-Event-ID';

export const RECONNECT_MIN_MS = 500;
export const RECONNECT_SPREAD_MS = 1500;

/** The reconnection delay of one stream, in ms. */
export function reconnectDelayMs(): number {
  return RECONNECT_MIN_MS + Math.floor(Math.random() * RECONNECT_SPREAD_MS);
}

/** The first bytes of every event stream: its reconnection delay, as an SSE `retry:` field. */
export function retryField(ms: number): string {
  return `retry: ${ms}\n`;
}

/**
 * The last bytes of a stream the server ends because it shuts down: a comment (clients ignore
 * it; a person reading `curl -N` sees why), after the `retry:` field again. No event follows, and
 * the stream ends without tRPC's `return` event: EventSource reconnects by itself, with
 * `Last-Event-ID`, and tRPC's client does not take the end for the subscription's completion.
 */
export function drainedEnd(ms: number): string {
  return `${retryField(ms)}${DRAINED_COMMENT}\n\n`;
}

/**
 * A tRPC subscription's SSE body with the reconnect hints: the `retry:` field first, and, when the
 * stream ends because the server shuts down (`drained()`), the closing comment (then `onDrained`).
 * tRPC writes each event whole before the next (its last piece is the blank line), so the stream
 * ends at an event's boundary and the comment stands alone.
 */
export function withReconnectHints(
  body: ReadableStream<Uint8Array>,
  drained: () => boolean,
  onDrained: () => void = () => {},
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const ms = reconnectDelayMs();
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(`${retryField(ms)}\n`));
      },
      flush(controller) {
        if (!drained()) return;
        controller.enqueue(encoder.encode(drainedEnd(ms)));
        onDrained();
      },
    }),
  );
}
