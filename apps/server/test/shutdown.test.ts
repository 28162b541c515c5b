/**
 * A server's shutdown is bounded: SIGTERM ends live streams at once (with a reconnect hint), lets
 * other requests finish for at most SHUTDOWN_TIMEOUT_MS, then closes their connections, says which
 * they were, and exits. A teardown (a test's, a deploy's) never waits on a client. Before that,
 * SHUTDOWN_DELAY_MS of draining: /readyz says 503, everything else is served. All of it holds with
 * API keys on (AUTH_MODE=required), and is counted on /metrics.
 */
import { connect, type Socket } from 'node:net';
import { ApiKeyStore, createDb } from '@tasker/db';
import { createTestEnv, spawnApp, waitFor } from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMetrics, sampleValue, scrape } from './prometheus.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A raw client that sends the head of a request and only part of its body, then waits. */
async function halfRequest(url: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.on('error', () => {});
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"task_na`,
  );
  return socket;
}

/** Reads a response's body as text while it comes; `done` resolves with all of it once it ends. */
function collect(response: Response) {
  let text = '';
  const reader = response.body?.getReader();
  const decoder = new TextDecoder();
  const done = (async () => {
    for (;;) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) return text;
      text += decoder.decode(chunk.value, { stream: true });
    }
  })();
  // Awaited by the test; one that fails before leaves the stream to the teardown, which cuts it.
  done.catch(() => {});
  return { text: () => text, done };
}

/** An HTTP/1.1 answer read off a raw socket, its body without the chunked framing. */
interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

function parseAnswer(raw: string): RawAnswer {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split);
  let body = raw.slice(split + 4);
  if (/\r\ntransfer-encoding: chunked\r\n/i.test(`${head}\r\n`)) {
    let plain = '';
    for (let at = 0; ; ) {
      const eol = body.indexOf('\r\n', at);
      const size = Number.parseInt(body.slice(at, eol), 16);
      if (!size) break;
      plain += body.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    body = plain;
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]), head, body };
}

/**
 * A request whose first bytes (`start`) have reached the server, the rest held back: the server
 * counts it as in flight (its connection is not idle) and answers it once `finish` sends the rest,
 * even after its listener has closed. `finish` resolves with the answer once the server closes the
 * connection, which a draining server does right after its answer (else it would hold its exit).
 */
async function heldRequest(url: string, start: string) {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString();
  });
  let closed = false;
  socket.once('close', () => {
    closed = true;
  });
  socket.write(start);
  return {
    socket,
    finish: async (rest: string): Promise<RawAnswer> => {
      socket.write(rest);
      await waitFor(() => closed, {
        timeoutMs: 5000,
        what: `the answer to ${start.split(' ', 2).join(' ')}, and its connection closed`,
      });
      return parseAnswer(received);
    },
  };
}

/** Resolves with the error code of a new TCP connection to `url` once one is refused. */
function refusedConnection(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return waitFor(
    () =>
      new Promise<string | undefined>((resolve) => {
        const probe = connect(Number(port), hostname);
        probe.once('connect', () => {
          probe.destroy();
          resolve(undefined);
        });
        // A probe that lands in the accept queue as the listener closes is reset, not refused:
        // the listener was still there, so that is a "not yet", and the next probe decides.
        probe.once('error', (error: NodeJS.ErrnoException) =>
          resolve(error.code === 'ECONNRESET' ? undefined : (error.code ?? 'error')),
        );
      }),
    { what: 'the server to stop accepting connections' },
  );
}

/**
 * Submits a task with no worker running (it stays PENDING) and follows it on the plain SSE route
 * and the tRPC subscription, until both have sent its current state.
 */
async function followPendingTask(url: string, headers: Record<string, string> = {}) {
  const submitted = await fetch(`${url}/tasks`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'sum_two_numbers', input: { a: 1, b: 2 } }),
  });
  expect(submitted.status).toBe(201);
  const { id } = (await submitted.json()) as { id: string };
  const sseOpen = await fetch(`${url}/tasks/${id}/events`, { headers });
  const input = encodeURIComponent(JSON.stringify({ id }));
  const trpcOpen = await fetch(`${url}/trpc/onTaskUpdate?input=${input}`, { headers });
  expect([sseOpen.status, trpcOpen.status]).toEqual([200, 200]);
  const sse = collect(sseOpen);
  const trpc = collect(trpcOpen);
  await waitFor(() => sse.text().includes('"PENDING"') && trpc.text().includes('"PENDING"'), {
    what: 'both streams to send the current state',
  });
  return { sse, trpc };
}

/** Sends SIGTERM and waits for /readyz to say the server is draining. */
async function sigterm(server: { child: { kill(signal: NodeJS.Signals): boolean } }, url: string) {
  server.child.kill('SIGTERM');
  const ready = await waitFor(
    async () => {
      const res = await fetch(`${url}/readyz`);
      return res.status === 503 ? res : undefined;
    },
    { what: '/readyz to answer 503' },
  );
  expect(await ready.json()).toMatchObject({ status: 503, draining: true });
}

describe('server shutdown', () => {
  it('drains on SIGTERM: /readyz 503 at once, requests still served, then streams end with a reconnect hint', async () => {
    const env = createTestEnv({ AUTH_MODE: 'disabled', SHUTDOWN_DELAY_MS: '1500' });
    cleanups.push(() => env.cleanup());
    const server = await spawnApp('server', env.vars);
    cleanups.push(() => server.stop('SIGKILL'));
    const url = server.url ?? '';
    // No worker: the task stays PENDING, its streams stay open until the server ends them.
    const { sse, trpc } = await followPendingTask(url);
    // Each starts with its reconnection delay.
    expect(sse.text()).toMatch(/^retry: \d+\n: tasker task events\n\n/);
    expect(trpc.text()).toMatch(/^retry: \d+\n\n/);
    expect(trpc.text()).toMatch(/\nid: 0\n/);

    await sigterm(server, url);
    // Still served while draining, each answer closing its connection.
    const during = await fetch(`${url}/run-task`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: { a: 2, b: 3 } }),
    });
    expect(during.status).toBe(200);
    expect(during.headers.get('connection')).toBe('close');
    expect(sse.text()).not.toContain('shutting down'); // streams go on until the delay is over

    const [sseText, trpcText] = await Promise.all([sse.done, trpc.done]);
    for (const text of [sseText, trpcText]) {
      expect(text).toMatch(/retry: \d+\n: server shutting down; reconnect with Last-Event-ID\n\n$/);
    }
    // tRPC's client must not take the end for the subscription's: no `return` event, no error.
    expect(trpcText).not.toMatch(/event: (return|serialized-error)/);
    expect(await server.exited).toBe(0);
  });

  it('finishes a request in flight at SIGTERM, after it stopped accepting connections', async () => {
    const env = createTestEnv({ AUTH_MODE: 'disabled' });
    cleanups.push(() => env.cleanup());
    const server = await spawnApp('server', env.vars);
    cleanups.push(() => server.stop('SIGKILL'));
    const url = server.url ?? '';
    // A submission in flight: its head has reached the server, its body not yet.
    const socket = await halfRequest(url, '/run-task');
    cleanups.push(async () => socket.destroy());
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    await new Promise((resolve) => setTimeout(resolve, 300));

    server.child.kill('SIGTERM');
    const { hostname, port } = new URL(url);
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const probe = connect(Number(port), hostname);
          probe.once('connect', () => {
            probe.destroy();
            resolve(false);
          });
          probe.once('error', () => resolve(true));
        }),
      { what: 'the server to stop accepting connections' },
    );
    // The rest of the body (padded to its Content-Length): the submission is accepted.
    socket.write('me":"sum_two_numbers","task_parameters":{"a":1,"b":2}}'.padEnd(100 - 9, ' '));
    await waitFor(() => /\r\n\r\n\{.*\}$/.test(received), { what: 'the answer' });
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received).toMatch(/\r\nconnection: close\r\n/i);
    expect(received).toMatch(/"task_uuid":"[0-9a-f-]{36}"/);
    expect(await server.exited).toBe(0);
  });

  it('exits within SHUTDOWN_TIMEOUT_MS of SIGTERM while a client holds a request open, naming it', async () => {
    const env = createTestEnv({ AUTH_MODE: 'disabled', SHUTDOWN_TIMEOUT_MS: '1500' });
    cleanups.push(() => env.cleanup());
    const server = await spawnApp('server', env.vars);
    cleanups.push(() => server.stop('SIGKILL'));
    const stream = await fetch(`${server.url}/tasks/00000000-0000-4000-8000-000000000000/events`);
    expect(stream.status).toBe(404); // streams are cut at once anyway; this one is refused
    const socket = await halfRequest(server.url ?? '', '/run-task');
    cleanups.push(async () => socket.destroy());
    let closed = false;
    socket.once('close', () => {
      closed = true;
    });
    // The request has reached the server (its head is read) before the signal.
    await new Promise((resolve) => setTimeout(resolve, 300));

    const started = performance.now();
    const code = await server.stop('SIGTERM', { graceMs: 10_000 });
    const ms = performance.now() - started;
    expect(code).toBe(0);
    expect(ms).toBeGreaterThan(1400); // it did wait for the request, up to the bound
    expect(ms).toBeLessThan(6000);
    await waitFor(() => closed, { timeoutMs: 2000, what: 'the held connection closed' });
    expect(server.output()).toMatch(/requests still open 1500 ms after shutdown began/);
    expect(server.output()).toContain('POST /run-task');
  });
});

describe('draining with API keys on (AUTH_MODE=required)', () => {
  it('ends authenticated streams with the reconnect hint, answers new ones unread, finishes a POST /tasks in flight, counts it all on /metrics, then refuses connections', async () => {
    const METRICS_TOKEN = 'drain-metrics-token';
    const env = createTestEnv({
      AUTH_MODE: 'required',
      METRICS_TOKEN,
      SHUTDOWN_DELAY_MS: '1500',
      // Room for a loaded machine: the held requests below must not time out meanwhile.
      SHUTDOWN_TIMEOUT_MS: '20000',
      HTTP_HEADERS_TIMEOUT_MS: '20000',
    });
    cleanups.push(() => env.cleanup());
    const server = await spawnApp('server', env.vars);
    cleanups.push(() => server.stop('SIGKILL'));
    const url = server.url ?? '';
    const db = createDb(env.databaseUrl, { max: 1 });
    cleanups.push(() => db.close());
    const { key } = await new ApiKeyStore(db.db).create({
      tenantId: 'drain',
      name: 'drain test',
      scopes: ['tasks:read', 'tasks:write'],
      expiresAt: null,
    });
    const authorization = `Bearer ${key}`;

    // No worker: the task stays PENDING, its streams stay open until the server ends them.
    const { sse, trpc } = await followPendingTask(url, { authorization });
    const before = await scrape(url, METRICS_TOKEN);
    expect(sampleValue(before, 'tasker_server_draining')).toBe(0);
    expect(sampleValue(before, 'tasker_server_streams_drained_total')).toBe(0);

    // Requests in flight at SIGTERM, each held back before its end: a submission (its body half
    // sent), and, for after the listener has closed, two new streams and a scrape (their heads but
    // the blank line that ends them). The streams name a task that does not exist: a server that
    // read it would answer 404 (or tRPC's NOT_FOUND), not the reconnect hint.
    const missing = '00000000-0000-4000-8000-000000000000';
    const body = JSON.stringify({ name: 'sum_two_numbers', input: { a: 2, b: 3 } });
    const post = await heldRequest(
      url,
      `POST /tasks HTTP/1.1\r\nHost: tasker\r\nAuthorization: ${authorization}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    const getHead = (path: string, credentials: string) =>
      heldRequest(url, `GET ${path} HTTP/1.1\r\nHost: tasker\r\nAuthorization: ${credentials}\r\n`);
    const lateSse = await getHead(`/tasks/${missing}/events`, authorization);
    const lateTrpc = await getHead(
      `/trpc/onTaskUpdate?input=${encodeURIComponent(JSON.stringify({ id: missing }))}`,
      authorization,
    );
    const lateMetrics = await getHead('/metrics', `Bearer ${METRICS_TOKEN}`);
    for (const held of [post, lateSse, lateTrpc, lateMetrics])
      cleanups.push(async () => held.socket.destroy());
    await new Promise((resolve) => setTimeout(resolve, 300));

    await sigterm(server, url);
    const draining = await scrape(url, METRICS_TOKEN);
    expect(sampleValue(draining, 'tasker_server_draining')).toBe(1);
    expect(sampleValue(draining, 'tasker_server_streams_drained_total')).toBe(0); // served on, for now

    // SHUTDOWN_DELAY_MS later: both streams end with the reconnect hint, no error (no 401/403, no 5xx).
    const [sseText, trpcText] = await Promise.all([sse.done, trpc.done]);
    for (const text of [sseText, trpcText]) {
      expect(text).toContain('"PENDING"');
      expect(text).toMatch(/retry: \d+\n: server shutting down; reconnect with Last-Event-ID\n\n$/);
      expect(text).not.toMatch(/event: (error|return|serialized-error)/);
    }

    // The listener closes: a new connection is refused by TCP, not answered.
    expect(await refusedConnection(url)).toBe('ECONNREFUSED');

    // The submission in flight since before SIGTERM completes, stored.
    const created = await post.finish(body.slice(10));
    expect(created.status, created.body).toBe(201);
    expect(created.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
    expect(JSON.parse(created.body)).toMatchObject({ status: 'PENDING', name: 'sum_two_numbers' });

    // New streams reaching the closing server on connections opened before: the reconnect hint at
    // once, without reading their task (it does not exist, and neither is a 404).
    const sseLate = await lateSse.finish('\r\n');
    expect(sseLate.status).toBe(200);
    expect(sseLate.head).toMatch(/\r\ncontent-type: text\/event-stream/i);
    expect(sseLate.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
    expect(sseLate.body).toMatch(/^retry: \d+\n: server shutting down; reconnect with Last-Event-ID\n\n$/);
    const trpcLate = await lateTrpc.finish('\r\n');
    expect(trpcLate.status).toBe(200);
    // Not tRPC's keep-alive: a connection left open would hold the exit until SHUTDOWN_TIMEOUT_MS.
    expect(trpcLate.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
    expect(trpcLate.body).toMatch(/^retry: \d+\n\n/);
    expect(trpcLate.body).toMatch(/retry: \d+\n: server shutting down; reconnect with Last-Event-ID\n\n$/);
    expect(trpcLate.body).not.toMatch(/event: (error|return|serialized-error)|NOT_FOUND/);

    // The last scrape: still draining, and the four streams ended by the drain counted.
    const metrics = await lateMetrics.finish('\r\n');
    expect(metrics.status).toBe(200);
    const last = parseMetrics(metrics.body);
    expect(last.families.find((f) => f.name === 'tasker_server_draining')?.type).toBe('GAUGE');
    expect(last.families.find((f) => f.name === 'tasker_server_streams_drained_total')?.type).toBe('COUNTER');
    expect(sampleValue(last, 'tasker_server_draining')).toBe(1);
    expect(sampleValue(last, 'tasker_server_streams_drained_total')).toBe(4);

    // Nothing left open: the server exits at once, far within SHUTDOWN_TIMEOUT_MS.
    const answered = performance.now();
    expect(await server.exited).toBe(0);
    expect(performance.now() - answered).toBeLessThan(5000);
    // Both submissions stored: the one before SIGTERM, the one in flight.
    const rows = await db.sql<{ count: number }[]>`select count(*)::int as count from tasks`;
    expect(rows[0]?.count).toBe(2);
  }, 60_000);
});
