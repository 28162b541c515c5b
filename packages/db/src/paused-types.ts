import { asc, eq } from 'drizzle-orm';
import type { Database } from './client.ts';
import { pausedTaskTypes } from './schema.ts';

/** The paused task types as a PostgreSQL table (PostgreSQL-only mode). */
export class PausedTypeStore {
  constructor(private readonly db: Database) {}

  async list(): Promise<string[]> {
    const rows = await this.db
      .select({ name: pausedTaskTypes.name })
      .from(pausedTaskTypes)
      .orderBy(asc(pausedTaskTypes.name));
    return rows.map((row) => row.name);
  }

  async add(name: string): Promise<void> {
    await this.db.insert(pausedTaskTypes).values({ name }).onConflictDoNothing();
  }

  async remove(name: string): Promise<void> {
    await this.db.delete(pausedTaskTypes).where(eq(pausedTaskTypes.name, name));
  }
}
