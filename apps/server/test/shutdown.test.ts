/**
 * A server's shutdown is bounded: SIGTERM cuts live streams at once, lets other requests finish for
 * at most SHUTDOWN_TIMEOUT_MS, then closes their connections, says which they were, and exits. A
 * teardown (a test's, a deploy's) never waits on a client.
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

describe('server shutdown', () => {
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
