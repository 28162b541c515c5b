import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { authorize } from './auth.ts';
import { drainedEnd, reconnectDelayMs, retryField } from './drain.ts';
import { errorBody } from './errors.ts';
import { resumeAfter, type TaskWatcher } from './live.ts';
import { DRAINED, STREAM_BUFFER_BYTES, type StreamGate } from './streams.ts';

const KEEP_ALIVE_MS = 15_000;
const params = z.object({ id: z.uuid() });

/**
 * `GET /tasks/{id}/events`: a task's states as Server-Sent Events, for curl (`curl -N`) and
 * browsers. One `data:` JSON line per state with `id:` = the task version; the stream closes after
 * the terminal state. `Last-Event-ID` (header, or `?lastEventId=`) resumes after that version.
 * A durable task's steps come as named events (`event: step`, a TaskStepEvent, no id): those
 * recorded so far first, then each as it is written; EventSource's `onmessage` does not see them.
 * The stream starts with a `retry:` field (the client's reconnection delay); a server that shuts
 * down ends it with a comment saying so (drain.ts; `onDrained` counts it), and the client resumes
 * elsewhere.
 */
export function registerEventStream(
  app: FastifyInstance,
  live: TaskWatcher,
  streams: StreamGate,
  onDrained: () => void = () => {},
  keepAliveMs = KEEP_ALIVE_MS,
): void {
  app.get('/tasks/:id/events', async (request, reply) => {
    // The same rule as the procedures': a key with tasks:read, and only its tenant's tasks.
    const decision = authorize(request.auth, 'tasks:read');
    if ('refusal' in decision) {
      const { status, message } = decision.refusal;
      if (status === 401) reply.header('www-authenticate', 'Bearer');
      return reply.code(status).send(errorBody(status, message));
    }
    const { identity } = decision;
    const parsed = params.safeParse(request.params);
    if (!parsed.success) {
      return reply
        .code(400)
        .send(errorBody(400, 'id: Invalid UUID', [{ path: 'id', message: 'Invalid UUID' }]));
    }
    // The server is closing (its streams are being ended): a new stream gets the reconnect hint at
    // once, without reading its task from PostgreSQL (it would end right after the read anyway),
    // and resumes on another server, which answers a task that does not exist with its 404. The
    // key was checked above: a refusal would be the same on any server.
    if (streams.draining) {
      reply
        .code(200)
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache, no-transform')
        .send(drainedEnd(reconnectDelayMs()));
      onDrained();
      return reply;
    }
    const header = request.headers['last-event-id'];
    const query = (request.query as { lastEventId?: unknown }).lastEventId;
    const lastEventId = typeof header === 'string' ? header : typeof query === 'string' ? query : undefined;
    const closed = new AbortController();
    // The connection's own 'close': the client went away. Removed when the stream ends, since a
    // keep-alive connection may carry many requests.
    const socket = request.raw.socket;
    const onClose = () => closed.abort();
    socket.once('close', onClose);
    // A slot among the caller's streams (429 past MAX_STREAMS_PER_KEY); it ends with its key.
    const lease = streams.open({ identity, ip: request.ip, drop: () => socket.destroy() }, closed.signal);
    if ('refusal' in lease) {
      socket.off('close', onClose);
      return reply.code(lease.refusal.status).send(errorBody(lease.refusal.status, lease.refusal.message));
    }
    let hijacked = false;
    try {
      const updates = await live.activity(identity.tenantId, parsed.data.id, resumeAfter(lastEventId), {
        signal: lease.signal,
        onOverflow: lease.overflow,
      });
      if (!updates) return reply.code(404).send(errorBody(404, 'Task not found'));

      reply.hijack();
      hijacked = true;
      const res = reply.raw;
      res.writeHead(200, {
        // What hooks set on the reply (x-request-id, CORS, rate-limit headers) goes out too.
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      /**
       * Writes, then waits until the socket takes more (backpressure): the next event stays in the
       * feed's bounded inbox meanwhile, and a client that stops reading overflows it and is dropped.
       */
      const send = async (chunk: string) => {
        if (res.write(chunk) || res.destroyed) return;
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            lease.signal.removeEventListener('abort', done);
            resolve();
          };
          res.once('drain', done);
          lease.signal.addEventListener('abort', done, { once: true });
        });
      };
      const retryMs = reconnectDelayMs();
      await send(`${retryField(retryMs)}: tasker task events\n\n`);
      // Every keepAliveMs, from a random point of the first interval: streams opened together (a
      // fleet reconnecting, a benchmark's 10,000 watchers) would otherwise write their keep-alives
      // together, 10,000 writes in one burst every interval, delaying the events queued behind it.
      // Then one interval timer (not a new timeout per beat: 10,000 streams made 667 a second).
      const beat = () => {
        if (res.writableLength > STREAM_BUFFER_BYTES) lease.overflow();
        else res.write(': keep-alive\n\n');
      };
      let keepAlive = setTimeout(() => {
        beat();
        keepAlive = setInterval(beat, keepAliveMs);
      }, Math.random() * keepAliveMs);
      try {
        for await (const event of updates)
          await send(
            event.type === 'state'
              ? `id: ${event.task.version}\ndata: ${JSON.stringify(event.task)}\n\n`
              : `event: step\ndata: ${JSON.stringify(event.step)}\n\n`,
          );
        // Ended by the server: it shuts down (the client resumes elsewhere), or a revoked or
        // expired key (401), in the one error shape.
        const ended = lease.ended();
        if (ended === DRAINED && !res.destroyed) {
          res.write(drainedEnd(retryMs));
          onDrained();
        } else if (ended && !res.destroyed)
          res.write(`event: error\ndata: ${JSON.stringify(errorBody(ended.status, ended.message))}\n\n`);
      } catch (error) {
        request.log.warn({ err: error }, 'task event stream failed');
        res.write(
          `event: error\ndata: ${JSON.stringify(errorBody(503, 'the event stream was interrupted; reconnect'))}\n\n`,
        );
      } finally {
        clearInterval(keepAlive);
        res.end();
      }
    } finally {
      socket.off('close', onClose);
      lease.release();
      if (!hijacked) closed.abort();
    }
  });
}
