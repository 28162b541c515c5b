import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bounded } from './teardown.ts';

export interface FakeOpenAIOptions {
  /** The reply text; by default it echoes the prompt. */
  reply?: (prompt: string) => string;
  /** When set, `stream: true` requests get one chunk per word with this delay between chunks. */
  chunkDelayMs?: number;
  /** Answer every request with this HTTP status and an OpenAI-style error body. */
  failWith?: number;
  /**
   * Decides, per request (`index` counts from 0 over every request this server got), whether it
   * fails: a status (429, 500, 400, ...), optional headers (`retry-after`) and message; undefined:
   * it is answered. Checked before `failWith`.
   */
  fail?: (request: RecordedRequest, index: number) => FakeFailure | undefined;
  /**
   * Whether answers report usage (default true): a plain answer's `usage`, and a streamed one's last
   * chunk when the request asks for it (`stream_options.include_usage`), as OpenAI does. Prompt
   * tokens: the words of every message; completion tokens: the words of the reply.
   */
  reportUsage?: boolean;
  /** Wait this long before answering a plain (non-streamed) request. */
  responseDelayMs?: number;
  /** Awaited before answering each request: lets a test or benchmark decide when each one completes. */
  hold?: () => Promise<void>;
}

export interface FakeFailure {
  status: number;
  headers?: Record<string, string>;
  message?: string;
}

export interface RecordedRequest {
  body: {
    model?: string;
    stream?: boolean;
    stream_options?: { include_usage?: boolean };
    max_tokens?: number;
    messages?: { role: string; content: string }[];
  };
  /** When it arrived (Date.now()). */
  at: number;
  /** The status it was answered with. */
  status?: number;
  authorization: string | undefined;
  /** True when the client went away before the answer was complete. */
  aborted: boolean;
  /** When the answer was complete, or the client went away (Date.now()); undefined while it lasts. */
  endedAt?: number;
}

export interface FakeOpenAI {
  /** Use as OPENAI_BASE_URL. */
  baseURL: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

async function readJson(req: IncomingMessage): Promise<RecordedRequest['body']> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** A local server that speaks the chat-completions protocol (plain and streamed), for tests. */
export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const requests: RecordedRequest[] = [];
  const server = createServer(async (req, res) => {
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { message: 'not found' } }));
      return;
    }
    const body = await readJson(req);
    const record: RecordedRequest = {
      body,
      at: Date.now(),
      authorization: req.headers.authorization,
      aborted: false,
    };
    requests.push(record);
    res.on('close', () => {
      record.endedAt = Date.now();
      if (!res.writableFinished) record.aborted = true;
    });
    const failure =
      options.fail?.(record, requests.length - 1) ??
      (options.failWith ? { status: options.failWith } : undefined);
    if (failure) {
      record.status = failure.status;
      res.writeHead(failure.status, { 'content-type': 'application/json', ...failure.headers }).end(
        JSON.stringify({
          error: { message: failure.message ?? `fake failure ${failure.status}`, type: 'test', code: null },
        }),
      );
      return;
    }
    record.status = 200;
    if (options.hold) await options.hold();
    const prompt = body.messages?.at(-1)?.content ?? '';
    const text = options.reply ? options.reply(prompt) : `echo: ${prompt}`;
    const id = `chatcmpl-${requests.length}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? 'fake';
    const words = (t: string) => t.split(/\s+/).filter(Boolean).length;
    const usage = {
      prompt_tokens: (body.messages ?? []).reduce((n, m) => n + words(m.content), 0),
      completion_tokens: words(text),
      total_tokens: 0,
    };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const reportUsage = options.reportUsage ?? true;
    if (!body.stream) {
      if (options.responseDelayMs)
        await new Promise((resolve) => setTimeout(resolve, options.responseDelayMs));
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: text },
              finish_reason: 'stop',
              logprobs: null,
            },
          ],
          ...(reportUsage ? { usage } : {}),
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (delta: object, finish: string | null) =>
      res.write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`,
      );
    send({ role: 'assistant', content: '' }, null);
    for (const word of text.split(/(?<= )/)) {
      if (res.destroyed) return;
      if (options.chunkDelayMs) await new Promise((resolve) => setTimeout(resolve, options.chunkDelayMs));
      if (res.destroyed) return;
      send({ content: word }, null);
    }
    send({}, 'stop');
    if (reportUsage && body.stream_options?.include_usage) {
      // OpenAI's last chunk of a stream that asked for usage: no choices, the usage.
      res.write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`,
      );
    }
    res.end('data: [DONE]\n\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    close: async () => {
      // Streams still being written hold their sockets: cut every connection, then stop listening.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await bounded('closing the fake OpenAI server', 5000, () => closed);
    },
  };
}
