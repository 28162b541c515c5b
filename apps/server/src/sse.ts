import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { authorize } from './auth.ts';
import { errorBody } from './errors.ts';
import { resumeAfter, type TaskWatcher } from './live.ts';

const KEEP_ALIVE_MS = 15_000;
const params = z.object({ id: z.uuid() });

/**
 * `GET /tasks/{id}/events`: a task's states as Server-Sent Events, for curl (`curl -N`) and
 * browsers. One `data:` JSON line per state with `id:` = the task version; the stream closes after
 * the terminal state. `Last-Event-ID` (header, or `?lastEventId=`) resumes after that version.
 */
export function registerEventStream(
  app: FastifyInstance,
  live: TaskWatcher,
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
    const header = request.headers['last-event-id'];
    const query = (request.query as { lastEventId?: unknown }).lastEventId;
    const lastEventId = typeof header === 'string' ? header : typeof query === 'string' ? query : undefined;
    const closed = new AbortController();
    // The connection's own 'close': the client went away. Removed when the stream ends, since a
    // keep-alive connection may carry many requests.
    const socket = request.raw.socket;
    const onClose = () => closed.abort();
    socket.once('close', onClose);
    const updates = await live
      .watch(identity.tenantId, parsed.data.id, resumeAfter(lastEventId), closed.signal)
      .catch((error: unknown) => {
        socket.off('close', onClose);
        throw error;
      });
    if (!updates) {
      socket.off('close', onClose);
      return reply.code(404).send(errorBody(404, 'Task not found'));
    }

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      // What hooks set on the reply (x-request-id, CORS, rate-limit headers) goes out too.
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': tasker task events\n\n');
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), keepAliveMs);
    try {
      for await (const event of updates)
        res.write(`id: ${event.version}\ndata: ${JSON.stringify(event)}\n\n`);
    } catch (error) {
      request.log.warn({ err: error }, 'task event stream failed');
      res.write(
        `event: error\ndata: ${JSON.stringify(errorBody(503, 'the event stream was interrupted; reconnect'))}\n\n`,
      );
    } finally {
      clearInterval(keepAlive);
      socket.off('close', onClose);
      res.end();
    }
  });
}
