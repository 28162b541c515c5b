import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';

/**
 * What the proxy does instead of forwarding a request:
 * - `'trpc-503'`: the server's own answer when a dependency is down (a tRPC error, SERVICE_UNAVAILABLE);
 * - `502`, `503`, `504`: a load balancer's page (HTML, not tRPC);
 * - `'reset'`: closes the connection without an answer (a network error);
 * - `'lost-answer'`: forwards the request, lets the server act on it, then closes the connection
 *   before the answer reaches the client.
 */
export type Fault = 'trpc-503' | 502 | 503 | 504 | 'reset' | 'lost-answer';

export interface HttpProxy {
  url: string;
  /** How many requests called this procedure (a batch counts for each procedure in it). */
  count(procedure: string): number;
  /** The requests that called this procedure: their input (from the URL) and Last-Event-ID header. */
  requests(procedure: string): { input: unknown; lastEventIdHeader: string | undefined }[];
  /** The next `times` requests calling `procedure` get `fault` instead of the server's answer. */
  fail(procedure: string, fault: Fault, times?: number): void;
  /** Cuts the event streams open now (the clients see a dropped connection). */
  cutStreams(): void;
  /** How many event streams are open. */
  openStreams(): number;
  /** Forgets the faults not used yet. */
  clearFaults(): void;
  close(): Promise<void>;
}

/** The procedures a tRPC request calls: `/trpc/getTask,listTasks?batch=1` → getTask, listTasks. */
function proceduresOf(url: string): string[] {
  const path = url.split('?')[0] ?? '';
  if (!path.startsWith('/trpc/')) return [];
  return decodeURIComponent(path.slice('/trpc/'.length)).split(',');
}

/** An HTTP proxy in front of a real server that injects faults at the HTTP boundary, per procedure. */
export async function startHttpProxy(target: string): Promise<HttpProxy> {
  const upstream = new URL(target);
  const counts = new Map<string, number>();
  const seen: { procedures: string[]; input: unknown; lastEventIdHeader: string | undefined }[] = [];
  let faults: { procedure: string; fault: Fault; left: number }[] = [];
  const streams = new Set<Socket>();

  const forward = (req: http.IncomingMessage, onResponse: (res: http.IncomingMessage) => void) => {
    const out = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      onResponse,
    );
    out.on('error', () => req.socket.destroy());
    req.pipe(out);
    return out;
  };

  const server = http.createServer((req, res) => {
    const procedures = proceduresOf(req.url ?? '');
    for (const p of procedures) counts.set(p, (counts.get(p) ?? 0) + 1);
    const input = new URL(req.url ?? '/', 'http://proxy').searchParams.get('input');
    seen.push({
      procedures,
      input: input === null ? undefined : JSON.parse(input),
      lastEventIdHeader: req.headers['last-event-id'] as string | undefined,
    });
    const rule = faults.find((f) => f.left > 0 && procedures.includes(f.procedure));
    if (rule) rule.left--;
    const fault = rule?.fault;

    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault === 'trpc-503') {
      const error = (path: string) => ({
        error: {
          message: 'Redis is unavailable',
          code: TRPC_ERROR_CODES_BY_KEY.SERVICE_UNAVAILABLE,
          data: { code: 'SERVICE_UNAVAILABLE', httpStatus: 503, path },
        },
      });
      const batch = (req.url ?? '').includes('batch=1');
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(batch ? procedures.map(error) : error(procedures[0] ?? '')));
      return;
    }
    if (typeof fault === 'number') {
      res.writeHead(fault, { 'content-type': 'text/html' });
      res.end(`<html><body><h1>${fault} ${http.STATUS_CODES[fault]}</h1></body></html>`);
      return;
    }
    if (fault === 'lost-answer') {
      forward(req, (answer) => {
        answer.resume();
        answer.on('end', () => req.socket.destroy());
      });
      return;
    }
    forward(req, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (String(answer.headers['content-type']).startsWith('text/event-stream')) {
        const socket = req.socket;
        streams.add(socket);
        socket.once('close', () => streams.delete(socket));
        res.flushHeaders();
      }
      answer.pipe(res);
      res.on('close', () => answer.destroy());
    });
  });
  server.keepAliveTimeout = 1000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    count: (procedure) => counts.get(procedure) ?? 0,
    requests: (procedure) =>
      seen
        .filter((r) => r.procedures.includes(procedure))
        .map(({ input, lastEventIdHeader }) => ({ input, lastEventIdHeader })),
    fail: (procedure, fault, times = 1) => {
      faults.push({ procedure, fault, left: times });
    },
    cutStreams: () => {
      for (const socket of streams) socket.destroy();
    },
    openStreams: () => streams.size,
    clearFaults: () => {
      faults = [];
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
