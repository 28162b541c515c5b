/**
 * One of bench:latency's watcher processes: opens an SSE stream (`GET /tasks/{id}/events`) for
 * each task id it is sent, and reports to its parent (IPC) when every stream has its first event,
 * then each COMPLETED event's delay (receipt − the row's updated_at). Watchers are spread over
 * several such processes so that 10,000 connections' garbage collection in one client process is
 * not measured as the server's delay. Messages: in `{ url, ids }`; out `{ connected }`,
 * `{ delays, wrong }` (batched), `{ done }`.
 */
import { Agent, request } from 'node:http';
import type { TaskEvent } from '@tasker/engine';
import { z } from 'zod';

/** Wall-clock now with sub-millisecond resolution (comparable with PostgreSQL's now() on this machine). */
const wallNow = () => performance.timeOrigin + performance.now();

const start = z.object({ url: z.string(), ids: z.array(z.string()) });

process.once('message', (message: unknown) => {
  const { url, ids } = start.parse(message);
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const send = (payload: object) => process.send?.(payload);
  let connected = 0;
  let completed = 0;
  let delays: number[] = [];
  let wrong: string[] = [];
  // Delays go to the parent in batches, off the receiving path.
  const flush = setInterval(() => {
    if (delays.length === 0 && wrong.length === 0) return;
    send({ delays, wrong });
    delays = [];
    wrong = [];
    if (completed >= ids.length) {
      clearInterval(flush);
      send({ done: true });
      agent.destroy();
    }
  }, 200);
  for (const id of ids) {
    let first = true;
    const req = request(`${url}/tasks/${id}/events`, { agent }, (res) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const receivedAt = wallNow();
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!data) continue;
          const event = JSON.parse(data) as TaskEvent;
          if (first) {
            first = false;
            if (++connected === ids.length) send({ connected });
          }
          if (event.status === 'COMPLETED') {
            completed++;
            delays.push(receivedAt - Date.parse(event.updatedAt));
            if (event.output !== 'ok') wrong.push(`task ${id} completed with ${String(event.output)}`);
          }
        }
      });
    });
    req.on('error', (error) => wrong.push(String(error)));
    req.end();
  }
});
