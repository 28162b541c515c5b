import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A load balancer in front of several servers, for the rolling-restart tests, doing what HAProxy
 * or Envoy are set up to do in front of Tasker:
 * - it sends each request to the next backend whose `GET /readyz` answered 200 at its last check
 *   (every `checkMs`; a server that drains answers 503 and is taken out);
 * - a request that got no answer at all (connection refused, or closed before any byte of an
 *   answer: the server had stopped, or closed the idle kept-alive connection it came on) is sent
 *   again to another backend (HAProxy's `retry-on conn-failure empty-response` with
 *   `option redispatch`). A server that took a request answers it, so a repeat is never a
 *   second submission (the test checks that by counting the tasks);
 * - an answer is passed on as it comes (event streams included), never retried once begun.
 */
export interface Balancer {
  url: string;
  /** Requests sent again to another backend after getting no answer, by the error's code. */
  readonly retried: Map<string, number>;
  /** Event-stream requests that carried a Last-Event-ID header: resumptions. */
  readonly resumed: number;
  /** Requests given up on (no backend answered): the client got a 502. */
  readonly failed: number;
  /** The backends (as given) holding event streams open now, one entry per stream. */
  streams(): string[];
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

export async function startBalancer(
  backends: string[],
  { checkMs = 100, giveUpMs = 10_000 } = {},
): Promise<Balancer> {
  const targets = backends.map((url) => ({
    url: new URL(url),
    ready: true,
    agent: new http.Agent({ keepAlive: true, maxSockets: 64 }),
  }));
  const retried = new Map<string, number>();
  let resumed = 0;
  const openStreams = new Map<http.ServerResponse, string>();
  let failed = 0;
  let next = 0;
  let closed = false;

  // Readiness, as a balancer's health check: 200 within a second, else out.
  const check = async () => {
    await Promise.all(
      targets.map(async (target) => {
        try {
          const res = await fetch(new URL('/readyz', target.url), { signal: AbortSignal.timeout(1000) });
          await res.arrayBuffer();
          target.ready = res.status === 200;
        } catch {
          target.ready = false;
        }
      }),
    );
  };
  const checking = (async () => {
    while (!closed) {
      await check();
      await new Promise((resolve) => setTimeout(resolve, checkMs));
    }
  })();

  /** The next backend in turn, among the ready ones (all of them when none is). */
  const pick = (avoid?: (typeof targets)[number]) => {
    const ready = targets.filter((t) => t.ready && t !== avoid);
    const pool = ready.length > 0 ? ready : targets.filter((t) => t !== avoid);
    const choice = pool[next % pool.length] ?? targets[0];
    next++;
    return choice as (typeof targets)[number];
  };

  const server = http.createServer(async (req, res) => {
    // Bodies are small here: read whole, so that a request can be sent again.
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
    ) as http.OutgoingHttpHeaders;
    if (req.headers['last-event-id'] !== undefined) resumed++;
    const deadline = Date.now() + giveUpMs;
    let target: (typeof targets)[number] | undefined;
    // The client went away before its answer ended: so does the request to the backend.
    let current: http.ClientRequest | undefined;
    res.once('close', () => {
      if (!res.writableFinished) current?.destroy();
    });
    for (;;) {
      target = pick(target);
      const outcome = await new Promise<http.IncomingMessage | NodeJS.ErrnoException>((resolve) => {
        const out = http.request(
          {
            host: target?.url.hostname,
            port: target?.url.port,
            method: req.method,
            path: req.url,
            headers: { ...headers, host: target?.url.host ?? '' },
            agent: target?.agent,
          },
          resolve,
        );
        current = out;
        out.on('error', resolve);
        out.end(body);
      });
      if (outcome instanceof http.IncomingMessage) {
        const upstream = outcome;
        const answer = Object.fromEntries(
          Object.entries(upstream.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
        ) as http.OutgoingHttpHeaders;
        if (String(upstream.headers['content-type']).startsWith('text/event-stream')) {
          openStreams.set(res, backends[targets.indexOf(target as (typeof targets)[number])] ?? '');
          res.once('close', () => openStreams.delete(res));
        }
        res.writeHead(upstream.statusCode ?? 502, answer);
        res.flushHeaders();
        // A stream cut by the server (not ended) is cut here too, as a balancer does.
        upstream.on('close', () => {
          if (!upstream.complete) res.destroy();
        });
        upstream.on('error', () => res.destroy());
        upstream.pipe(res);
        return;
      }
      const code = outcome.code ?? outcome.message;
      if (res.destroyed) return; // the client went away
      if (Date.now() > deadline) {
        failed++;
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`no backend answered (${code})`);
        return;
      }
      retried.set(code, (retried.get(code) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    retried,
    get resumed() {
      return resumed;
    },
    get failed() {
      return failed;
    },
    streams: () => [...openStreams.values()],
    close: async () => {
      closed = true;
      await checking;
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const target of targets) target.agent.destroy();
      await done;
    },
  };
}
