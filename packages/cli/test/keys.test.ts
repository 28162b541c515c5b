import { createTestEnv } from '@tasker/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN, runProcess, tasker as runTasker } from './run.ts';

const env = createTestEnv();

/** Runs `tasker ...` as a process (AUTH_MODE=required unless `vars` say otherwise): its stdout, stderr and exit code. */
async function tasker(...args: string[]) {
  return taskerWith({}, ...args);
}

async function taskerWith(vars: Record<string, string>, ...args: string[]) {
  const { stdout, stderr, code } = await runTasker(args, {
    DATABASE_URL: env.databaseUrl,
    LOG_LEVEL: 'silent',
    AUTH_MODE: 'required',
    ...vars,
  });
  return { stdout, stderr, code };
}

afterAll(async () => {
  await env.cleanup();
});

describe('tasker keys', () => {
  it('create prints the key and nothing else on stdout; list shows it without the key; revoke ends it', async () => {
    const created = await tasker(
      'keys',
      'create',
      '--tenant',
      'acme',
      '--name',
      'ci',
      '--scopes',
      'tasks:write,tasks:read',
      '--expires-in',
      '30d',
    );
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^tsk_[A-Za-z0-9_-]{43}\n$/);
    expect(created.stderr).toMatch(/created key .* for tenant acme/);
    const key = created.stdout.trim();

    const listed = await tasker('keys', 'list', '--tenant', 'acme', '--json');
    const keys = JSON.parse(listed.stdout) as {
      id: string;
      tenantId: string;
      scopes: string[];
      expiresAt: string;
    }[];
    expect(keys).toHaveLength(1);
    // Made against the database: no key made it.
    expect(keys[0]).toMatchObject({
      tenantId: 'acme',
      scopes: ['tasks:write', 'tasks:read'],
      createdBy: null,
    });
    expect(Date.parse(keys[0]?.expiresAt ?? '') - Date.now()).toBeGreaterThan(29 * 24 * 3600 * 1000);
    expect(listed.stdout).not.toContain(key);
    const table = await tasker('keys', 'list');
    expect(table.stdout).toMatch(/^ID\s+TENANT\s+NAME\s+PREFIX\s+SCOPES\s+CREATED\s+CREATED BY\s+LAST USED/);
    expect(table.stdout).toMatch(/acme\s+ci\s+tsk_\S+\s+tasks:write,tasks:read\s+\S+ \S+\s+cli\s/);
    // The first operator key is made here, against the database.
    const operator = await tasker(
      'keys',
      'create',
      '--tenant',
      'ops',
      '--name',
      'op',
      '--scopes',
      'operator',
    );
    expect(operator.code, operator.stderr).toBe(0);
    expect(operator.stderr).toMatch(/scopes operator/);

    const id = keys[0]?.id ?? '';
    expect((await tasker('keys', 'revoke', id)).code).toBe(0);
    expect((await tasker('keys', 'list', '--json')).stdout).toContain('"revokedAt": "');
    const again = await tasker('keys', 'revoke', id);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`tasker: no active key has id ${id}\n`);
  });

  it('makes no key while AUTH_MODE=disabled (NODE_ENV not production, AUTH_MODE unset or disabled): exit 4, one line, nothing made', async () => {
    const args = ['keys', 'create', '--tenant', 'open', '--name', 'x', '--scopes', 'tasks:read'];
    for (const vars of [
      { AUTH_MODE: '', NODE_ENV: 'development' },
      { AUTH_MODE: 'disabled', NODE_ENV: 'production' },
      { AUTH_MODE: '', NODE_ENV: 'test' },
    ]) {
      const refused = await taskerWith(vars, ...args);
      expect(refused.code, JSON.stringify(vars)).toBe(4);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(
        /^tasker: API keys are not made while AUTH_MODE=disabled .*Set AUTH_MODE=required\b.*\n$/,
      );
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(JSON.parse((await tasker('keys', 'list', '--tenant', 'open', '--json')).stdout)).toEqual([]);
    // NODE_ENV=production alone implies it.
    const made = await taskerWith({ AUTH_MODE: '', NODE_ENV: 'production' }, ...args);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/^tsk_/);
  });

  it('refuses bad arguments with a non-zero exit and one line', async () => {
    for (const args of [
      ['keys', 'create', '--tenant', 'acme', '--name', 'x', '--scopes', 'root'],
      ['keys', 'create', '--tenant', 'acme', '--name', 'x', '--scopes', 'admin', '--expires-in', 'soon'],
      ['keys', 'create', '--tenant', 'a b', '--name', 'x', '--scopes', 'admin'],
      ['keys', 'revoke', 'not-an-id'],
    ]) {
      const result = await tasker(...args);
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });
});

describe('tasker without DATABASE_URL', () => {
  it('with no embedded PostgreSQL running either, says what to do in one line', async () => {
    const { DATABASE_URL: _, ...rest } = process.env;
    const result = await runProcess(process.execPath, [MAIN, 'keys', 'list'], {
      env: { ...rest, TASKER_DATA_DIR: '/nonexistent-tasker-dir', LOG_LEVEL: 'silent' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'tasker: DATABASE_URL is not set, and no embedded PostgreSQL runs in /nonexistent-tasker-dir/pg (start one with `pnpm start`, or set DATABASE_URL)\n',
    );
  });
});
