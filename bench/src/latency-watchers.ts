/**
 * One of bench:latency's watcher processes: opens an SSE stream (`GET /tasks/{id}/events`) for
 * each task id it is sent, and reports to its parent (IPC) when every stream has its first event,
 * then each COMPLETED event's delay (receipt − the row's updated_at). Watchers are spread over
 * several such processes so that 10,000 connections' garbage collection in one client process is
 * not measured as the server's delay. Messages: in `{ url, ids }`; out `{ connected }`,
 * `{ delays, at, ids, wrong, loop }` (batched; `at`: each delay's receipt time, `ids` its task; `loop`: this process's own event-loop delay since every
 * stream connected, p99 and max in ms, so that a delay of the measuring side shows), `{ done }`.
 */
import { Agent, request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { TaskEvent } from '@tasker/engine';
import { z } from 'zod';

/** Wall-clock now with sub-millisecond resolution (comparable with PostgreSQL's now() on this machine). */
const wallNow = () => performance.timeOrigin + performance.now();

const start = z.object({ url: z.string(), ids: z.array(z.string()) });

process.once('message', (message: unknown) => {
  const { url, ids } = start.parse(message);
  // Alive until the parent ends it, also once every stream has ended: its CPU time is read then.
  process.channel?.ref();
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const send = (payload: object) => process.send?.(payload);
  let connected = 0;
  let completed = 0;
  let delays: number[] = [];
  /** When each delay's event was received (wall clock, ms): the slow ones' times show their cause. */
  let at: number[] = [];
  /** Each delay's task (bench:latency with BENCH_COMMIT_TIMES=1 reads its commit time). */
  let taskIds: string[] = [];
  let wrong: string[] = [];
  // This process's event-loop delay, from the moment every stream is connected (reset then).
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  // Delays go to the parent in batches, off the receiving path.
  const flush = setInterval(() => {
    if (delays.length === 0 && wrong.length === 0) return;
    send({ delays, at, ids: taskIds, wrong, loop: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 } });
    delays = [];
    at = [];
    taskIds = [];
    wrong = [];
    if (completed >= ids.length) {
      clearInterval(flush);
      loop.disable();
      send({ done: true });
      agent.destroy();
    }
  }, 200);
  // At most OPENING streams being opened at a time (the next when one has its first event), and a
  // stream whose connection failed before its first event is opened again: 10,000 connections at
  // once overflowed the server's accept backlog, and the resets left watchers that never came.
  const OPENING = 64;
  const queue = [...ids];
  const openNext = () => {
    const id = queue.shift();
    if (id) open(id);
  };
  function open(id: string) {
    let first = true;
    const req = request(`${url}/tasks/${id}/events`, { agent }, (res) => {
      if (res.statusCode !== 200) wrong.push(`task ${id}: HTTP ${res.statusCode}`);
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
            openNext();
            if (++connected === ids.length) {
              loop.reset();
              send({ connected });
            }
          }
          if (event.status === 'COMPLETED') {
            completed++;
            delays.push(receivedAt - Date.parse(event.updatedAt));
            at.push(receivedAt);
            taskIds.push(id);
            if (event.output !== 'ok') wrong.push(`task ${id} completed with ${String(event.output)}`);
          }
        }
      });
    });
    req.on('error', (error) => {
      if (first) setTimeout(() => open(id), 100);
      else wrong.push(String(error));
    });
    req.end();
  }
  for (let i = 0; i < OPENING; i++) openNext();
});
