/**
 * A server's shutdown is bounded: SIGTERM ends live streams at once (with a reconnect hint), lets
 * other requests finish for at most SHUTDOWN_TIMEOUT_MS, then closes their connections, says which
 * they were, and exits. A teardown (a test's, a deploy's) never waits on a client. Before that,
 * SHUTDOWN_DELAY_MS of draining: /readyz says 503, everything else is served.
 */
import { connect, type Socket } from 'node:net';
import { createTestEnv, spawnApp, waitFor } from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';

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
  return { text: () => text, done };
}

describe('server shutdown', () => {
  it('drains on SIGTERM: /readyz 503 at once, requests still served, then streams end with a reconnect hint', async () => {
    const env = createTestEnv({ AUTH_MODE: 'disabled', SHUTDOWN_DELAY_MS: '1500' });
    cleanups.push(() => env.cleanup());
    const server = await spawnApp('server', env.vars);
    cleanups.push(() => server.stop('SIGKILL'));
    const url = server.url ?? '';
    // No worker: the task stays PENDING, its streams stay open until the server ends them.
    const submitted = await fetch(`${url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sum_two_numbers', input: { a: 1, b: 2 } }),
    });
    expect(submitted.status).toBe(201);
    const { id } = (await submitted.json()) as { id: string };
    const sse = collect(await fetch(`${url}/tasks/${id}/events`));
    const input = encodeURIComponent(JSON.stringify({ id }));
    const trpc = collect(await fetch(`${url}/trpc/onTaskUpdate?input=${input}`));
    await waitFor(() => sse.text().includes('"PENDING"') && trpc.text().includes('"PENDING"'), {
      what: 'both streams to send the current state',
    });
    // Each starts with its reconnection delay.
    expect(sse.text()).toMatch(/^retry: \d+\n: tasker task events\n\n/);
    expect(trpc.text()).toMatch(/^retry: \d+\n\n/);
    expect(trpc.text()).toMatch(/\nid: 0\n/);

    server.child.kill('SIGTERM');
    const ready = await waitFor(
      async () => {
        const res = await fetch(`${url}/readyz`);
        return res.status === 503 ? res : undefined;
      },
      { what: '/readyz to answer 503' },
    );
    expect(await ready.json()).toMatchObject({ status: 503, draining: true });
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
