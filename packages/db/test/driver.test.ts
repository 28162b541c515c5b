/**
 * The database driver as patched (patches/postgres@3.4.9.patch). A new connection first reads the
 * array types (fetch_types); postgres.js discarded that query's promise, so a connection lost or
 * refused while it ran (a database restart, a pooler going away) crashed the process with an
 * unhandled rejection: a worker died in CI's fault test 4b when PostgreSQL was cut as a new
 * connection opened (porsager/postgres#1192). The failure is the connection's: the query waiting
 * for it gets the error, and nothing else.
 */
import { createTestEnv, type TestEnv } from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDatabase } from '../src/index.ts';

let env: TestEnv;
beforeAll(async () => {
  env = createTestEnv();
  await ensureDatabase(env.databaseUrl);
});
afterAll(() => env?.cleanup());

describe('postgres.js, patched', () => {
  it("a new connection's types query that fails is no unhandled rejection: the waiting query gets the error", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    // A 1 ms statement_timeout, set at the handshake, cancels the types query (the first statement
    // of a connection) before it ends. Five new connections, one after the other.
    const failed: unknown[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const sql = postgres(env.databaseUrl, {
          max: 1,
          connection: { statement_timeout: 1 },
          onnotice: () => {},
        });
        await sql`select pg_sleep(0.01)`.catch((error: unknown) => failed.push(error));
        await sql.end({ timeout: 1 }).catch(() => {});
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    // The queries themselves failed, each with PostgreSQL's cancellation (statement timeout).
    expect(failed.map((e) => (e as { code?: string }).code)).toEqual(Array(5).fill('57014'));
  });
});
