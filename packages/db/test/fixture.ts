import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll } from 'vitest';
import { createDb, type DbClient, migrateDatabase, TaskStore } from '../src/index.ts';

/** A test file's own migrated database, a pool of `max` connections and a TaskStore on it. */
export interface StoreFixture {
  env: TestEnv;
  client: DbClient;
  store: TaskStore;
}

/**
 * Sets up (beforeAll) and tears down (afterAll) a StoreFixture for the calling test file; its
 * fields are there once the tests run.
 */
export function useStore(max = 3): StoreFixture {
  const fixture = {} as StoreFixture;
  beforeAll(async () => {
    fixture.env = createTestEnv();
    await migrateDatabase(fixture.env.databaseUrl);
    fixture.client = createDb(fixture.env.databaseUrl, { max });
    fixture.store = new TaskStore(fixture.client);
  });
  afterAll(async () => {
    await fixture.client?.close();
    await fixture.env?.cleanup();
  });
  return fixture;
}
