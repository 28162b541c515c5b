/**
 * Live streams are bounded and end with their key: at most MAX_STREAMS_PER_KEY open streams (SSE and
 * tRPC subscriptions together) per key, per client IP without one (429 past it); a revoked key's
 * streams end within 5 s, on every server; a client that stops reading is dropped instead of growing
 * the server's memory; and an event of one tenant costs nothing in another tenant's streams.
 */
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { ApiKeyStore, createDb, type DbClient, type TaskChange, type TaskStore } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { createTestEnv, type TestEnv, waitFor } from '@tasker/testing';
import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  type TRPCClientError,
} from '@trpc/client';
import { EventSource } from 'eventsource';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { TaskFeed } from '../src/live.ts';
import { startServer, type TaskerServer } from '../src/server.ts';
import { STREAM_BUFFER_BYTES } from '../src/streams.ts';
import { feedRow } from './feed-rows.ts';

const MAX = 3;
let env: TestEnv;
let one: TaskerServer;
let two: TaskerServer;
let db: DbClient;
let keys: ApiKeyStore;

const key = async (tenantId: string, scopes: ('tasks:read' | 'tasks:write' | 'operator')[]) =>
  keys.create({ tenantId, name: 'streams', scopes });

beforeAll(async () => {
  env = createTestEnv({
    AUTH_MODE: 'required',
    RATE_LIMIT_PER_MINUTE: '0',
    MAX_STREAMS_PER_KEY: String(MAX),
  });
  const parsed = loadEnv(env.vars);
  one = await startServer(parsed, createLogger(parsed, 'streams-1'));
  two = await startServer(parsed, createLogger(parsed, 'streams-2'));
  db = createDb(env.databaseUrl, { max: 2 });
  keys = new ApiKeyStore(db.db);
}, 60_000);
afterAll(async () => {
  await two?.close();
  await one?.close();
  await db?.close();
  await env?.cleanup();
});

/** A task that stays PENDING for an hour: its stream stays open. */
async function heldTask(base: string, bearer?: string): Promise<string> {
  const res = await fetch(`${base}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify({ name: 'sum_two_numbers', input: { a: 1, b: 2 }, delay_ms: 3_600_000 }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/** An open SSE stream: its status, then its text as it comes, until it ends. */
async function openSse(base: string, id: string, bearer?: string) {
  const controller = new AbortController();
  const res = await fetch(`${base}/tasks/${id}/events`, {
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
    signal: controller.signal,
  });
  let text = '';
  let ended = false;
  const done =
    res.status === 200
      ? (async () => {
          const decoder = new TextDecoder();
          try {
            for await (const chunk of res.body ?? []) text += decoder.decode(chunk as Uint8Array);
          } catch {}
          ended = true;
        })()
      : res.text().then((t) => {
          text = t;
          ended = true;
        });
  return {
    status: res.status,
    text: () => text,
    ended: () => ended,
    done,
    close: () => controller.abort(),
  };
}

function trpcFor(base: string, bearer: string) {
  const withKey: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${bearer}`);
    return fetch(input, { ...init, headers });
  };
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url: `${base}/trpc`,
          EventSource,
          eventSourceOptions: () => ({ fetch: withKey }) as EventSourceInit,
        }),
        false: httpBatchLink({ url: `${base}/trpc`, fetch: withKey }),
      }),
    ],
  });
}

/** A subscription's events and how it ended (its error's code), as they come. */
function subscribe(base: string, bearer: string, id: string) {
  const seen = { events: 0, error: undefined as string | undefined, ended: false };
  const sub = trpcFor(base, bearer).onTaskUpdate.subscribe(
    { id },
    {
      onData: () => {
        seen.events++;
      },
      onError: (error) => {
        seen.error = ((error as TRPCClientError<AppRouter>).data as { code?: string } | undefined)?.code;
        seen.ended = true;
      },
      onComplete: () => {
        seen.ended = true;
      },
    },
  );
  return { seen, unsubscribe: () => sub.unsubscribe() };
}

describe('MAX_STREAMS_PER_KEY', () => {
  it('a key holds at most MAX_STREAMS_PER_KEY streams, SSE and subscriptions together: past it, 429 in the one error shape', async () => {
    const k = (await key('cap', ['tasks:read', 'tasks:write'])).key;
    const other = (await key('cap', ['tasks:read'])).key;
    const id = await heldTask(one.url, k);
    const open = [await openSse(one.url, id, k), await openSse(one.url, id, k)];
    const sub = subscribe(one.url, k, id);
    await waitFor(() => sub.seen.events > 0);
    expect(open.map((s) => s.status)).toEqual([200, 200]);
    // The fourth: refused, on the SSE route and as a subscription.
    const refused = await openSse(one.url, id, k);
    expect(refused.status).toBe(429);
    await refused.done;
    expect(JSON.parse(refused.text())).toEqual({
      status: 429,
      code: 'TOO_MANY_REQUESTS',
      error: expect.stringMatching(
        /^Too many open streams for this API key: at most 3 \(MAX_STREAMS_PER_KEY\)/,
      ),
    });
    const refusedSub = subscribe(one.url, k, id);
    await waitFor(() => refusedSub.seen.ended);
    expect(refusedSub.seen).toMatchObject({ events: 0, error: 'TOO_MANY_REQUESTS' });
    // Another key has its own; another server counts its own.
    const theirs = await openSse(one.url, id, other);
    expect(theirs.status).toBe(200);
    const elsewhere = await openSse(two.url, id, k);
    expect(elsewhere.status).toBe(200);
    // One closed: a slot is free again.
    open[0]?.close();
    await waitFor(async () => {
      const again = await openSse(one.url, id, k);
      if (again.status === 200) {
        again.close();
        return true;
      }
      await again.done;
      return false;
    });
    for (const s of [...open, theirs, elsewhere]) s.close();
    sub.unsubscribe();
  });

  it('AUTH_MODE=disabled: counted per client address', async () => {
    const open = createTestEnv({ AUTH_MODE: 'disabled', MAX_STREAMS_PER_KEY: '2' });
    const parsed = loadEnv(open.vars);
    const server = await startServer(parsed, createLogger(parsed, 'streams-open'));
    try {
      const id = await heldTask(server.url);
      const streams = [await openSse(server.url, id), await openSse(server.url, id)];
      expect(streams.map((s) => s.status)).toEqual([200, 200]);
      const third = await openSse(server.url, id);
      expect(third.status).toBe(429);
      await third.done;
      expect(JSON.parse(third.text())).toMatchObject({
        status: 429,
        error: expect.stringContaining('this client address'),
      });
      for (const s of streams) s.close();
    } finally {
      await server.close();
      await open.cleanup();
    }
  });
});

describe('a revoked key', () => {
  it('its SSE stream and its subscription end within 5 s, revoked through another server', async () => {
    const { key: k, info } = await key('revoked', ['tasks:read', 'tasks:write']);
    const operator = (await key('ops', ['operator'])).key;
    const id = await heldTask(one.url, k);
    const sse = await openSse(one.url, id, k);
    expect(sse.status).toBe(200);
    const sub = subscribe(one.url, k, id);
    await waitFor(() => sub.seen.events > 0 && sse.text().includes('data:'));
    const revoked = await fetch(`${two.url}/api-keys/${info.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${operator}` },
    });
    expect(revoked.status).toBe(200);
    const at = Date.now();
    await waitFor(() => sse.ended() && sub.seen.ended, { timeoutMs: 10_000, what: 'both streams to end' });
    expect(Date.now() - at).toBeLessThan(5000);
    // The SSE stream says why, in the one error shape; the subscription ends with UNAUTHORIZED.
    expect(sse.text()).toMatch(
      /event: error\ndata: \{"error":"This API key was revoked","code":"UNAUTHORIZED","status":401\}/,
    );
    expect(sub.seen.error).toBe('UNAUTHORIZED');
  });
});

/** Sockets the server accepted, by the client's port: to watch what it buffers for each. */
function serverSockets(server: TaskerServer): Map<number, Socket> {
  const byPort = new Map<number, Socket>();
  server.app.server.on('connection', (socket: Socket) => {
    if (socket.remotePort) byPort.set(socket.remotePort, socket);
  });
  return byPort;
}

/** A client that sends one request and never reads a byte of the answer. */
async function neverReads(url: string, path: string, bearer: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.pause();
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${bearer}\r\nAccept: text/event-stream\r\n\r\n`,
  );
  return socket;
}

describe('a client that stops reading', () => {
  it.each(['sse', 'subscription'] as const)(
    '%s: is dropped once its events pass the bound; the server buffers at most that much for it',
    async (kind) => {
      const sockets = serverSockets(one);
      const { key: k } = await key(`slow-${kind}`, ['tasks:read', 'tasks:write']);
      const id = await heldTask(one.url, k);
      const path =
        kind === 'sse'
          ? `/tasks/${id}/events`
          : `/trpc/onTasksUpdate?input=${encodeURIComponent(JSON.stringify({}))}`;
      const client = await neverReads(one.url, path, k);
      const server = await waitFor(() => sockets.get(client.localPort ?? 0));
      let most = 0;
      const sample = setInterval(() => {
        most = Math.max(most, server.writableLength);
      }, 5);
      const sql = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        // Changes of 128 KB each (a growing reply, say): 20 MB in all, far past what the kernel holds.
        for (let i = 0; i < 160 && !server.destroyed; i++) {
          await sql`update tasks set progress = jsonb_build_object('partial', repeat(md5(${String(i)}), 4000)),
            version = version + 1, updated_at = now() where id = ${id}`;
        }
        await waitFor(() => server.destroyed, { timeoutMs: 15_000, what: 'the server to drop the client' });
      } finally {
        clearInterval(sample);
        await sql.end();
        client.destroy();
      }
      // At most the bound and one event (the feed's inbox holds the rest, and overflows).
      expect(most).toBeLessThan(STREAM_BUFFER_BYTES);
      // Its slot is free again.
      await waitFor(async () => {
        const again = await openSse(one.url, id, k);
        again.close();
        return again.status === 200;
      });
    },
    60_000,
  );
});

describe("one tenant's events and another tenant's streams", () => {
  it("an event for tenant A invokes none of tenant B's watchAll listeners", async () => {
    const log = createLogger(loadEnv(env.vars), 'feed');
    const feed = new TaskFeed(undefined as never, undefined as never, { resyncMs: 3_600_000 }, log);
    const controller = new AbortController();
    const streams = Array.from({ length: 100 }, () =>
      feed.watchAll('tenant-b', { signal: controller.signal }),
    );
    // An async generator runs (and listens) from its first next().
    const firsts = streams.map((s) => s.next());
    const change = (tenantId: string): TaskChange =>
      ({
        truncated: false,
        row: {
          id: randomUUID(),
          tenantId,
          name: 'sum_two_numbers',
          status: 'PENDING',
          output: null,
          error: null,
          attemptErrors: [],
          progress: null,
          version: 1,
          attempts: 0,
          maxAttempts: 3,
          priority: 0,
          runAfter: null,
          cancelRequestedAt: null,
          createdAt: new Date(),
          startedAt: null,
          finishedAt: null,
          updatedAt: new Date(),
        },
      }) as unknown as TaskChange;
    for (let i = 0; i < 50; i++) feed.receive(change('tenant-a'));
    expect(feed.deliveries).toBe(0);
    feed.receive(change('tenant-b'));
    expect(feed.deliveries).toBe(100);
    expect((await Promise.all(firsts)).every((r) => !r.done)).toBe(true);
    controller.abort();
  });
});

describe("a task's steps and states, in commit order", () => {
  it("a step (announced by its key) is read back before the task's next state goes out", async () => {
    const log = createLogger(loadEnv(env.vars), 'feed');
    const id = randomUUID();
    const row = (status: string, version: number) => feedRow(id, status, version, 'summarize_documents');
    const step = {
      taskId: id,
      stepId: 'big',
      seq: 0,
      status: 'completed',
      output: 'x'.repeat(10_000),
      error: null,
      startedAt: new Date(),
      finishedAt: new Date(),
    };
    // The step's row comes back slowly: the final state, heard meanwhile, waits behind it.
    const store = {
      get: async () => row('RUNNING', 2),
      steps: {
        list: async () => [],
        getMany: async () => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          return [step];
        },
      },
    } as unknown as TaskStore;
    const feed = new TaskFeed(undefined as never, store, { resyncMs: 3_600_000 }, log);
    const controller = new AbortController();
    const activity = await feed.activity('acme', id, -1, { signal: controller.signal });
    if (!activity) throw new Error('no activity');
    feed.receive({ kind: 'step', taskId: id, stepId: 'big' });
    // The same write heard again (announced, and read at the start or after a reconnection): once.
    feed.receive({ kind: 'step', taskId: id, stepId: 'big' });
    feed.receive({ truncated: false, row: row('COMPLETED', 3) } as unknown as TaskChange);
    const seen: string[] = [];
    for await (const event of activity)
      seen.push(
        event.type === 'step' ? `step ${event.step.id} ${event.step.preview?.length}` : event.task.status,
      );
    // Its preview: 253 bytes of the JSON text and an ellipsis.
    expect(seen).toEqual(['RUNNING', 'step big 254', 'COMPLETED']);
  });

  it("the insert's notification, heard while the stream reads the row, is its first state: not a live event", async () => {
    const log = createLogger(loadEnv(env.vars), 'feed');
    const id = randomUUID();
    const row = (status: string, version: number) => feedRow(id, status, version);
    let feed: TaskFeed | undefined;
    // The row comes back after the insert's own notification (PENDING, version 1) was heard.
    const store = {
      get: async () => {
        feed?.receive({ truncated: false, row: row('PENDING', 1) } as unknown as TaskChange);
        await new Promise((resolve) => setTimeout(resolve, 20));
        return row('PENDING', 1);
      },
      steps: { list: async () => [] },
    } as unknown as TaskStore;
    const live: string[] = [];
    feed = new TaskFeed(
      undefined as never,
      store,
      { resyncMs: 3_600_000, onLiveEvent: (event) => live.push(event.status) },
      log,
    );
    const events = await feed.watch('acme', id, -1, { signal: new AbortController().signal });
    if (!events) throw new Error('no stream');
    feed.receive({ truncated: false, row: row('RUNNING', 2) } as unknown as TaskChange);
    feed.receive({ truncated: false, row: row('COMPLETED', 3) } as unknown as TaskChange);
    const sent: string[] = [];
    for await (const event of events) sent.push(event.status);
    expect(sent).toEqual(['PENDING', 'RUNNING', 'COMPLETED']);
    // The two changes the stream waited for; the PENDING it opened on, whichever way it came, not.
    expect(live).toEqual(['RUNNING', 'COMPLETED']);
  });
});
