import type { ApiKeyScope, ApiKeyStore } from '@tasker/db';
import { authModeOf } from '@tasker/engine/config';
import { type Command, InvalidArgumentError } from 'commander';
import { parseDuration } from './duration.ts';
import { CliError, EXIT } from './errors.ts';
import { asOption } from './params.ts';

/**
 * @tasker/db's API_KEY_SCOPES, copied so that the CLI loads drizzle (a second of start-up) only for
 * `keys`; the checks below make a scope added there and missing here a compile error.
 */
const API_KEY_SCOPES = [
  'tasks:write',
  'tasks:read',
  'admin',
  'operator',
] as const satisfies readonly ApiKeyScope[];
const everyScope: Exclude<ApiKeyScope, (typeof API_KEY_SCOPES)[number]> extends never ? true : false = true;
void everyScope;

function scopesOption(value: string): ApiKeyScope[] {
  const scopes = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = scopes.filter((s) => !(API_KEY_SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(`scopes are ${API_KEY_SCOPES.join(', ')} (got "${value}")`);
  }
  return scopes as ApiKeyScope[];
}

/**
 * Opens the database of DATABASE_URL, or DATABASE_DIRECT_URL behind a pooler (migrating it, so the
 * first key can be made before any server ran).
 */
async function withKeys<T>(databaseUrl: string, work: (keys: ApiKeyStore) => Promise<T>): Promise<T> {
  const { ApiKeyStore, createDb, migrateDatabase } = await import('@tasker/db');
  await migrateDatabase(databaseUrl);
  const db = createDb(databaseUrl, { max: 1, name: 'tasker-cli' });
  try {
    return await work(new ApiKeyStore(db.db));
  } finally {
    await db.close();
  }
}

/**
 * `tasker keys ...`: API keys, straight in PostgreSQL (DATABASE_URL), so that the first key can be
 * made before any server runs. `create` prints the key, and nothing else, on stdout. Whoever can
 * write to the database is trusted with every tenant: this is where the first operator key is made.
 */
export function keysCommand(program: Command, databaseUrl: () => Promise<string>): void {
  const keys = program
    .command('keys')
    .description('Create, list and revoke API keys (talks to PostgreSQL directly)');

  keys
    .command('create')
    .description('Make a key; prints it (once, and nothing else) on stdout')
    .requiredOption('--tenant <tenant>', 'the tenant whose tasks the key reaches')
    .requiredOption('--name <name>', 'what the key is for, e.g. "ci"')
    .requiredOption(
      '--scopes <scopes>',
      `comma-separated: ${API_KEY_SCOPES.join(', ')} (admin: its tenant's keys; operator: the shared queue and every tenant's keys)`,
      scopesOption,
    )
    .option(
      '--expires-in <duration>',
      'the key stops working after this long: 90s, 15m, 12h, 30d, 2w',
      asOption(parseDuration),
    )
    .action(async (options: { tenant: string; name: string; scopes: ApiKeyScope[]; expiresIn?: number }) => {
      if (!/^[\w.-]{1,100}$/.test(options.tenant)) {
        throw new Error('--tenant: letters, digits, "_", "." or "-" only');
      }
      // The same rule as the server's POST /api-keys: a key for a server that asks for none would
      // protect nothing. Decided by the variables that decide the server's mode (NODE_ENV, AUTH_MODE).
      if (authModeOf(process.env) === 'disabled') {
        throw new CliError(
          'API keys are not made while AUTH_MODE=disabled (AUTH_MODE is not "required" here, and NODE_ENV is not "production"): ' +
            'a server run so asks nobody for a key. Set AUTH_MODE=required, here and on the server, then make keys',
          EXIT.auth,
        );
      }
      const { key, info } = await withKeys(await databaseUrl(), (store) =>
        store.create({
          tenantId: options.tenant,
          name: options.name,
          scopes: options.scopes,
          expiresAt: options.expiresIn === undefined ? null : new Date(Date.now() + options.expiresIn * 1000),
        }),
      );
      process.stdout.write(`${key}\n`);
      process.stderr.write(
        `created key ${info.id} (${info.prefix}…) for tenant ${info.tenantId}, scopes ${info.scopes.join(',')}` +
          `${info.expiresAt ? `, expires ${info.expiresAt.toISOString()}` : ''}. It is shown only this once.\n`,
      );
    });

  keys
    .command('list')
    .description('List keys (never the keys themselves)')
    .option('--tenant <tenant>', 'only this tenant’s keys')
    .option('--json', 'one JSON array')
    .action(async (options: { tenant?: string; json?: boolean }) => {
      const rows = await withKeys(await databaseUrl(), (store) => store.list(options.tenant));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      const when = (d: Date | null) => (d ? d.toISOString().slice(0, 19).replace('T', ' ') : '-');
      const table = [
        [
          'ID',
          'TENANT',
          'NAME',
          'PREFIX',
          'SCOPES',
          'CREATED',
          'CREATED BY',
          'LAST USED',
          'EXPIRES',
          'STATE',
        ],
        ...rows.map((k) => [
          k.id,
          k.tenantId,
          k.name,
          k.prefix,
          k.scopes.join(','),
          when(k.createdAt),
          // The key that made it over the API; `cli` when made here, against the database.
          k.createdBy ?? 'cli',
          when(k.lastUsedAt),
          when(k.expiresAt),
          k.revokedAt ? 'revoked' : k.expiresAt && k.expiresAt <= new Date() ? 'expired' : 'active',
        ]),
      ];
      const widths = table[0]?.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length))) ?? [];
      for (const row of table)
        process.stdout.write(
          `${row
            .map((c, i) => c.padEnd(widths[i] ?? 0))
            .join('  ')
            .trimEnd()}\n`,
        );
    });

  keys
    .command('revoke')
    .description('Revoke a key by its id; every server refuses it within 2 s')
    .argument('<id>', 'the key id (from `keys list`), not the key')
    .action(async (id: string) => {
      if (!/^[0-9a-f-]{36}$/i.test(id)) throw new Error(`"${id}" is not a key id (see \`tasker keys list\`)`);
      const revoked = await withKeys(await databaseUrl(), (store) => store.revoke(id));
      if (!revoked) throw new Error(`no active key has id ${id}`);
      process.stderr.write(`revoked key ${revoked.id} (${revoked.prefix}…) of tenant ${revoked.tenantId}\n`);
    });
}
