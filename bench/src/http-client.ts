import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';

export interface HttpAnswer {
  status: number;
  text: string;
}

/** POSTs a JSON body and reads the whole answer. */
export type PostJson = (url: string, body: string) => Promise<HttpAnswer>;

/** Node's fetch (undici, keep-alive): what the benchmark uses unless told otherwise. */
export const fetchClient: PostJson = async (url, body) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return { status: response.status, text: await response.text() };
};

/** Bytes a client's sockets wrote and read so far, HTTP headers included (closed sockets too). */
export interface WireBytes {
  sent: number;
  received: number;
}

/**
 * node:http with a keep-alive agent: a lighter client, to see how much of the machine the client
 * itself takes (BENCH_CLIENT=http). `wireBytes()` counts what went over its sockets.
 */
export function nodeHttpClient(maxSockets: number): PostJson & { wireBytes(): WireBytes } {
  const agent = new Agent({ keepAlive: true, maxSockets });
  // Every socket the agent ever gave a request; a few dozen at most with keep-alive.
  const sockets = new Set<Socket>();
  const post: PostJson = (url, body) =>
    new Promise<HttpAnswer>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('socket', (socket) => sockets.add(socket));
      req.on('error', reject);
      req.end(body);
    });
  const wireBytes = (): WireBytes => {
    let sent = 0;
    let received = 0;
    for (const socket of sockets) {
      sent += socket.bytesWritten;
      received += socket.bytesRead;
    }
    return { sent, received };
  };
  return Object.assign(post, { wireBytes });
}
