/**
 * The rule for index migrations (packages/db/README.md), read from the SQL files themselves: an
 * index on a table the migration did not create is built CONCURRENTLY, in a migration that runs
 * outside a transaction (its first line NO_TRANSACTION_MARKER), with IF NOT EXISTS so that a run
 * that stopped half-way converges. A plain CREATE INDEX on an existing table holds a SHARE lock for
 * the whole build: every write to that table waits (on tasks, every submission and state change).
 * Pure parsing: no database.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  concurrentIndexName,
  isNoTransaction,
  migrationsFolder,
  NO_TRANSACTION_MARKER,
  withoutLeadingComments,
} from '../src/migrate.ts';

/**
 * The migrations allowed to build an index on an existing table inside their transaction, and why.
 * All of them had shipped (and run on every existing database) before migrations could run outside
 * a transaction; each mixes the index with DDL that has to commit with it, so it could only go
 * concurrent by being split in two migrations, which would change nothing for the databases that
 * applied it. An entry that no longer builds such an index fails the test: remove it then.
 */
const ALLOWED_IN_TRANSACTION: Record<string, string> = {
  '0011_expiry_and_state_machine.sql':
    'adds EXPIRED, ttl_ms and expires_at with the NOT VALID finished check; tasks_finished_idx is dropped and rebuilt under its name keyed on finished_at (the old one named a status list), and tasks_expiry_idx is on a column added here',
  '0012_limits_and_keys.sql':
    'the unique singleton and debounce indexes are on columns added here, and enforce their keys from the first row that sets one: they commit with the columns',
  '0013_dispatch.sql':
    'adds queued_at, its two indexes, the trigger swap and the UPDATE that fills queued_at: one change of the dispatcher, all or nothing',
  '0017_task_tags_and_batches.sql': 'the GIN indexes are on tags and metadata, columns added here',
  '0018_schedules.sql':
    'tasks_schedule_tick_idx (unique) is on schedule_id and scheduled_for, added here: it is what makes a tick fire once, from the first scheduled task',
  '0021_task_handouts.sql':
    'DROP COLUMN queued_at needs its indexes gone and tasks_ready_idx rebuilt without it, in the transaction that creates task_handouts, fills it from queued_at and swaps the dispatcher trigger',
  '0024_durable_steps.sql':
    'swaps the unique singleton index (DROP then CREATE under its name) in the transaction that adds WAITING, waiting_for and the new finished check; tasks_waiting_idx is on waiting_for, added here',
  '0027_child_tasks.sql':
    'tasks_parent_idx is on parent_id, added here, which the finishing trigger replaced in the same migration reads',
};

/** Statements a no-transaction migration may hold: each can run again after a run that stopped. */
const REPEATABLE = [
  /^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s/i,
  /^DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s/i,
  /^ALTER\s+TABLE\s+(?:ONLY\s+)?\S+\s+VALIDATE\s+CONSTRAINT\s/i,
];

const NAME = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))?`;
const CREATE_TABLE = new RegExp(
  String.raw`\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(${NAME})`,
  'gi',
);
const CREATE_INDEX = new RegExp(
  String.raw`\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(IF\s+NOT\s+EXISTS\s+)?(${NAME})\s+ON\s+(?:ONLY\s+)?(${NAME})`,
  'gi',
);
// A unique or primary key constraint added to a table builds its index under ACCESS EXCLUSIVE,
// unless it adopts one built before (USING INDEX).
const ADD_KEY = new RegExp(
  String.raw`\bALTER\s+TABLE\s+(?:ONLY\s+)?(${NAME})\s+ADD\s+(?:CONSTRAINT\s+${NAME}\s+)?(?:UNIQUE|PRIMARY\s+KEY)\b(?![^;]*\bUSING\s+INDEX\b)`,
  'gi',
);

/** `"public"."tasks"`, `public.tasks` and `"tasks"` are all `tasks`. */
function tableName(written: string): string {
  const parts = written.split('.').map((p) => p.replace(/^"|"$/g, '').replaceAll('""', '"'));
  return (parts.length > 1 && parts[0] === 'public' ? parts.slice(1) : parts).join('.');
}

/** What breaks the rule in one migration's text, one line each. */
function indexViolations(text: string): string[] {
  const statements = text.split('--> statement-breakpoint');
  const noTransaction = isNoTransaction({ sql: statements });
  // Comments and function bodies may name anything: the statements are read without them.
  const code = statements.map((s) =>
    withoutLeadingComments(s)
      .replace(/\$\$[\s\S]*?\$\$/g, '$$$$')
      .replace(/--[^\n]*/g, '')
      .trim(),
  );
  const created = new Set(
    code.flatMap((s) => [...s.matchAll(CREATE_TABLE)].map((m) => tableName(m[1] ?? ''))),
  );
  const problems: string[] = [];
  for (const statement of code) {
    for (const m of statement.matchAll(CREATE_INDEX)) {
      const [, concurrently, ifNotExists, index, table = ''] = m;
      if (concurrently) {
        if (!noTransaction)
          problems.push(
            `${index}: CONCURRENTLY in a migration without the first line ${NO_TRANSACTION_MARKER}`,
          );
        else if (!ifNotExists) problems.push(`${index}: CONCURRENTLY without IF NOT EXISTS`);
      } else if (!created.has(tableName(table))) {
        problems.push(
          `${index}: on ${tableName(table)}, which the migration did not create, without CONCURRENTLY`,
        );
      }
    }
    for (const m of statement.matchAll(ADD_KEY)) {
      if (!created.has(tableName(m[1] ?? '')))
        problems.push(
          `a unique or primary key added to ${tableName(m[1] ?? '')}: its index builds under ACCESS EXCLUSIVE`,
        );
    }
    if (noTransaction && statement !== '' && !REPEATABLE.some((r) => r.test(statement)))
      problems.push(
        `outside a transaction, a statement that cannot simply run again: ${statement.split('\n')[0]}`,
      );
  }
  return problems;
}

const files = readdirSync(migrationsFolder)
  .filter((f) => f.endsWith('.sql'))
  .sort();

describe('index migrations', () => {
  it('build an index on an existing table CONCURRENTLY, outside a transaction, unless listed', () => {
    expect(files.length).toBeGreaterThan(30);
    const found: Record<string, string[]> = {};
    for (const file of files) {
      const problems = indexViolations(readFileSync(path.join(migrationsFolder, file), 'utf8'));
      if (problems.length > 0) found[file] = problems;
    }
    const unexpected = Object.fromEntries(
      Object.entries(found).filter(([file]) => !(file in ALLOWED_IN_TRANSACTION)),
    );
    expect(unexpected).toEqual({});
    // Every exception still is one (a listed file that no longer breaks the rule is dropped from the list).
    expect(Object.keys(ALLOWED_IN_TRANSACTION).filter((file) => !(file in found))).toEqual([]);
  });

  it('0009 builds the payload indexes concurrently, outside a transaction', () => {
    const text = readFileSync(path.join(migrationsFolder, '0009_payload_search.sql'), 'utf8');
    const statements = text.split('--> statement-breakpoint');
    expect(isNoTransaction({ sql: statements })).toBe(true);
    expect(statements.map(concurrentIndexName)).toEqual(['"tasks_input_idx"', '"tasks_output_idx"']);
  });

  it('the check itself: what it refuses and what it lets through', () => {
    const marker = `${NO_TRANSACTION_MARKER}\n-- why\n`;
    // A plain index on an existing table: refused, whatever the spelling.
    expect(indexViolations('CREATE INDEX "tasks_x_idx" ON "tasks" USING btree ("name");')).toHaveLength(1);
    expect(
      indexViolations('-- a comment\ncreate unique index tasks_x_idx on public.tasks (name);'),
    ).toHaveLength(1);
    expect(indexViolations('ALTER TABLE "tasks" ADD CONSTRAINT "tasks_x_key" UNIQUE ("name");')).toHaveLength(
      1,
    );
    // On a table the migration creates: allowed in its transaction.
    expect(
      indexViolations(
        'CREATE TABLE "things" ("id" uuid PRIMARY KEY NOT NULL);--> statement-breakpoint\nCREATE INDEX "things_idx" ON "things" ("id");',
      ),
    ).toEqual([]);
    // CONCURRENTLY needs the marker line (first line, not later) and IF NOT EXISTS.
    expect(indexViolations('CREATE INDEX CONCURRENTLY IF NOT EXISTS "x" ON "tasks" ("name");')).toHaveLength(
      1,
    );
    expect(
      indexViolations(`-- first\n${marker}CREATE INDEX CONCURRENTLY IF NOT EXISTS "x" ON "tasks" ("name");`),
    ).toHaveLength(1);
    expect(indexViolations(`${marker}CREATE INDEX CONCURRENTLY "x" ON "tasks" ("name");`)).toContain(
      '"x": CONCURRENTLY without IF NOT EXISTS',
    );
    expect(
      indexViolations(
        `${marker}DROP INDEX CONCURRENTLY IF EXISTS "x";--> statement-breakpoint\nCREATE INDEX CONCURRENTLY IF NOT EXISTS "x" ON "tasks" ("name");--> statement-breakpoint\nALTER TABLE "tasks" VALIDATE CONSTRAINT "c";`,
      ),
    ).toEqual([]);
    // Outside a transaction, nothing that a second run would trip on.
    expect(
      indexViolations(`${marker}ALTER TABLE "tasks" ADD COLUMN "x" text;--> statement-breakpoint\nSELECT 1;`),
    ).toHaveLength(2);
    // A function body that mentions an index is no index.
    expect(
      indexViolations(
        `CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ CREATE INDEX "y" ON "tasks" ("name") $$;`,
      ),
    ).toEqual([]);
  });

  it('the migrator finds the index of a concurrent build after its comments', () => {
    expect(
      concurrentIndexName('-- a\n-- b\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "a""b" ON t (x)'),
    ).toBe('"a""b"');
    expect(concurrentIndexName('create index concurrently public.x_idx on public.t (x)')).toBe(
      'public.x_idx',
    );
    expect(concurrentIndexName('CREATE INDEX "x" ON "tasks" ("name")')).toBeUndefined();
    expect(concurrentIndexName('SELECT 1 -- CREATE INDEX CONCURRENTLY "x" ON t (x)')).toBeUndefined();
  });
});
