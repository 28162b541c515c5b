import {
  type AppProcess,
  createTestEnv,
  type FakeOpenAI,
  freePort,
  spawnApp,
  startFakeOpenAI,
  type TestEnv,
} from '@tasker/testing';

export interface LiveStack {
  url: string;
  env: TestEnv;
  fake: FakeOpenAI;
  server: AppProcess;
  worker: AppProcess;
  /** Stops the server and starts a new one on the same port. */
  restartServer(): Promise<void>;
  close(): Promise<void>;
}

/** A real server and worker process, and a fake OpenAI that streams its reply word by word. */
export async function startLiveStack(vars: Record<string, string> = {}): Promise<LiveStack> {
  const fake = await startFakeOpenAI({
    reply: () => 'one two three four five six seven eight',
    chunkDelayMs: 150,
  });
  const port = await freePort();
  const env = createTestEnv({
    PORT: String(port),
    OPENAI_API_KEY: 'sk-test',
    OPENAI_BASE_URL: fake.baseURL,
    ...vars,
  });
  const stack: LiveStack = {
    url: `http://127.0.0.1:${port}`,
    env,
    fake,
    server: await spawnApp('server', env.vars),
    worker: await spawnApp('worker', env.vars),
    restartServer: async () => {
      await stack.server.stop('SIGTERM');
      stack.server = await spawnApp('server', env.vars);
    },
    close: async () => {
      await Promise.all([stack.server.stop(), stack.worker.stop()]);
      await env.cleanup();
      await fake.close();
    },
  };
  return stack;
}
