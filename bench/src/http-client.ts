import { Agent, request } from 'node:http';

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

/**
 * node:http with a keep-alive agent: a lighter client, to see how much of the machine the client
 * itself takes (BENCH_CLIENT=http).
 */
export function nodeHttpClient(maxSockets: number): PostJson {
  const agent = new Agent({ keepAlive: true, maxSockets });
  return (url, body) =>
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
      req.on('error', reject);
      req.end(body);
    });
}
