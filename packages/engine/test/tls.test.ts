import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createDb } from '@tasker/db';
import {
  freePort,
  hasRedisClusterTools,
  onRedis,
  type RedisCluster,
  startRedisCluster,
} from '@tasker/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  createEngine,
  createLogger,
  createRedis,
  createTaskWorker,
  type EngineRole,
  type Env,
  loadEnv,
  UnreachableError,
} from '../src/index.ts';

/**
 * TLS to PostgreSQL and Redis (issue 24), against a PostgreSQL and a redis-server of the test's own
 * on loopback, with certificates made here: a CA, and a server certificate it signed for localhost
 * and 127.0.0.1. Both servers also listen on 127.0.0.2, a loopback address the certificate does
 * not name: the wrong host. PostgreSQL accepts TLS connections only (hostssl), so every connection
 * that works went over TLS. The machine's own PostgreSQL and Redis are not touched.
 */

const run = promisify(execFile);
const PG_BIN = '/usr/lib/postgresql/15/bin';

let dir: string;
let pgProcess: ChildProcess | undefined;
let redisProcess: ChildProcess | undefined;
let pgPort: number;
let redisPort: number;
/** The CA that signed both servers' certificate, and one that signed nothing here. */
let caFile: string;
let otherCaFile: string;

async function openssl(...args: string[]) {
  await run('openssl', args, { cwd: dir });
}

/** A CA (key and self-signed certificate, PEM) named `name` in `dir`. */
async function makeCa(name: string) {
  await openssl(
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
    ...['-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`],
  );
  return path.join(dir, `${name}.pem`);
}

/** Starts `command` and waits until its output says `ready`; its output is in the error otherwise. */
async function startProcess(
  command: string,
  args: string[],
  ready: RegExp,
  user?: { uid: number; gid: number },
): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...user });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} not ready after 20 s:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code}:\n${output}`));
    });
  });
  return child;
}

async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const late = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(late);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tasker-tls-'));
  caFile = await makeCa('ca');
  otherCaFile = await makeCa('other-ca');
  await openssl(
    ...['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
    ...['-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'],
  );
  await writeFile(path.join(dir, 'server.ext'), 'subjectAltName = DNS:localhost, IP:127.0.0.1\n');
  await openssl(
    ...['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'],
    ...['-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'],
  );
  await chmod(path.join(dir, 'server.key'), 0o600);

  // PostgreSQL refuses to run as root: as root, it runs as the OS user postgres (Debian's package
  // creates it), which then owns the folder.
  let pgUser: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    pgUser = { uid: Number(uid.stdout), gid: Number(gid.stdout) };
    await run('chown', ['-R', `${pgUser.uid}:${pgUser.gid}`, dir]);
  }
  const data = path.join(dir, 'pg');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      path.join(PG_BIN, 'initdb'),
      ['-D', data, '-U', 'root', '--auth=trust', '-E', 'UTF8', '--no-sync'],
      { stdio: ['ignore', 'pipe', 'pipe'], ...pgUser },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`initdb exited ${code}:\n${output}`)),
    );
  });
  // TLS connections only, from any loopback address (none over the socket: no line for it).
  await writeFile(path.join(data, 'pg_hba.conf'), 'hostssl all all 127.0.0.0/8 trust\n');
  pgPort = await freePort();
  pgProcess = await startProcess(
    path.join(PG_BIN, 'postgres'),
    [
      ...['-D', data, '-p', String(pgPort), '-k', dir],
      ...['-c', 'listen_addresses=127.0.0.1,127.0.0.2', '-c', 'ssl=on', '-c', 'fsync=off'],
      ...[
        '-c',
        `ssl_cert_file=${path.join(dir, 'server.pem')}`,
        '-c',
        `ssl_key_file=${path.join(dir, 'server.key')}`,
      ],
    ],
    /ready to accept connections/,
    pgUser,
  );

  redisPort = await freePort();
  redisProcess = await startProcess(
    'redis-server',
    [
      ...['--port', '0', '--tls-port', String(redisPort), '--bind', '127.0.0.1', '127.0.0.2'],
      ...['--tls-cert-file', path.join(dir, 'server.pem'), '--tls-key-file', path.join(dir, 'server.key')],
      ...['--tls-ca-cert-file', caFile, '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no'],
    ],
    /Ready to accept connections/,
  );
}, 60_000);

afterAll(async () => {
  // SIGINT: PostgreSQL's fast shutdown (it ends the sessions instead of waiting for them).
  await stopProcess(pgProcess, 'SIGINT');
  await stopProcess(redisProcess, 'SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

const pgUrl = (host: string, query: string) => `postgres://root@${host}:${pgPort}/postgres?${query}`;

/** Whether a pooled connection of createDb on `url` runs over TLS (PostgreSQL says so itself). */
async function sslOf(url: string): Promise<boolean> {
  const client = createDb(url, { max: 1 });
  try {
    const [row] = await client.sql<
      { ssl: boolean }[]
    >`select ssl from pg_stat_ssl where pid = pg_backend_pid()`;
    return row?.ssl ?? false;
  } finally {
    await client.close();
  }
}

describe('PostgreSQL over TLS (sslmode, sslrootcert in DATABASE_URL)', () => {
  it('verify-full with the CA connects, by name and by address', async () => {
    expect(await sslOf(pgUrl('127.0.0.1', `sslmode=verify-full&sslrootcert=${caFile}`))).toBe(true);
    expect(await sslOf(pgUrl('localhost', `sslmode=verify-full&sslrootcert=${caFile}`))).toBe(true);
    // sslrootcert alone means verify-full.
    expect(await sslOf(pgUrl('127.0.0.1', `sslrootcert=${caFile}`))).toBe(true);
    // require: encrypted, the certificate not checked.
    expect(await sslOf(pgUrl('127.0.0.1', 'sslmode=require'))).toBe(true);
  });

  it('verify-full refuses a server whose certificate no trusted CA signed: without the CA, or with another', async () => {
    await expect(sslOf(pgUrl('127.0.0.1', 'sslmode=verify-full'))).rejects.toThrow(
      /unable to verify the first certificate/,
    );
    await expect(sslOf(pgUrl('127.0.0.1', `sslmode=verify-full&sslrootcert=${otherCaFile}`))).rejects.toThrow(
      /unable to verify the first certificate/,
    );
    await expect(sslOf(pgUrl('127.0.0.1', `sslmode=verify-ca&sslrootcert=${otherCaFile}`))).rejects.toThrow(
      /unable to verify the first certificate/,
    );
  });

  it('verify-full checks the host name; verify-ca does not', async () => {
    await expect(sslOf(pgUrl('127.0.0.2', `sslmode=verify-full&sslrootcert=${caFile}`))).rejects.toThrow(
      /IP: 127\.0\.0\.2 is not in the cert's list/,
    );
    expect(await sslOf(pgUrl('127.0.0.2', `sslmode=verify-ca&sslrootcert=${caFile}`))).toBe(true);
    // require with a CA is verify-ca, as in libpq.
    expect(await sslOf(pgUrl('127.0.0.2', `sslmode=require&sslrootcert=${caFile}`))).toBe(true);
  });

  it('a plain connection is refused by this server (so the ones above did use TLS)', async () => {
    await expect(sslOf(pgUrl('127.0.0.1', 'sslmode=disable'))).rejects.toThrow(/no encryption/);
  });
});

describe('Redis over TLS (rediss://, REDIS_CA_FILE)', () => {
  /** PING on a command connection of createRedis, or the connection's first error. */
  async function ping(url: string, ca?: string): Promise<string> {
    const redis = createRedis(url, 'command', 'tls-test', { ca });
    try {
      await new Promise((resolve, reject) => {
        redis.once('ready', resolve);
        redis.once('error', reject);
      });
      return await redis.ping();
    } finally {
      redis.disconnect();
    }
  }
  // redis-server sends its CA along with its certificate: Node then says so.
  const UNTRUSTED = /self-signed certificate in certificate chain/;
  const ca = () =>
    loadEnv({ DATABASE_URL: 'postgres://h/db', REDIS_URL: 'rediss://h:1', REDIS_CA_FILE: caFile })
      .REDIS_CA_FILE;

  it('with the CA, PING answers, by name and by address', async () => {
    expect(await ping(`rediss://127.0.0.1:${redisPort}`, ca())).toBe('PONG');
    expect(await ping(`rediss://localhost:${redisPort}/3`, ca())).toBe('PONG');
  });

  it('refuses the server without the CA, with another CA, and under a host name its certificate does not name', async () => {
    await expect(ping(`rediss://127.0.0.1:${redisPort}`)).rejects.toThrow(UNTRUSTED);
    const other = loadEnv({
      DATABASE_URL: 'postgres://h/db',
      REDIS_URL: 'rediss://h:1',
      REDIS_CA_FILE: otherCaFile,
    });
    await expect(ping(`rediss://127.0.0.1:${redisPort}`, other.REDIS_CA_FILE)).rejects.toThrow(UNTRUSTED);
    await expect(ping(`rediss://127.0.0.2:${redisPort}`, ca())).rejects.toThrow(
      /IP: 127\.0\.0\.2 is not in the cert's list/,
    );
  });
});

describe('the configuration', () => {
  const base = { DATABASE_URL: 'postgres://h/db' };
  const message = (vars: Record<string, string>) => {
    try {
      loadEnv(vars);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('loadEnv accepted it');
  };

  it('names the variable of a CA file that cannot be read or holds no certificate', () => {
    expect(
      message({ DATABASE_URL: 'postgres://h/db?sslmode=verify-full&sslrootcert=/nowhere/ca.pem' }),
    ).toMatch(/DATABASE_URL: sslrootcert=\/nowhere\/ca\.pem: cannot read it \(ENOENT/);
    expect(message({ ...base, REDIS_URL: 'rediss://h:6380', REDIS_CA_FILE: '/nowhere/ca.pem' })).toMatch(
      /REDIS_CA_FILE: \/nowhere\/ca\.pem: cannot read it \(ENOENT/,
    );
    expect(
      message({ ...base, REDIS_URL: 'rediss://h:6380', REDIS_CA_FILE: path.join(dir, 'server.key') }),
    ).toMatch(/REDIS_CA_FILE: .*server\.key: holds no PEM certificate/);
  });

  it('refuses what would not be what it says: a CA for a plain Redis, a mode that falls back to plain text', () => {
    expect(message({ ...base, REDIS_URL: 'redis://h:6379', REDIS_CA_FILE: caFile })).toMatch(
      /REDIS_CA_FILE: set, but REDIS_URL is not a rediss:\/\/ URL/,
    );
    expect(message({ DATABASE_URL: 'postgres://h/db?sslmode=prefer' })).toMatch(
      /DATABASE_URL: sslmode=prefer is not supported.*falls back to an unencrypted connection/,
    );
    expect(message({ DATABASE_URL: 'postgres://h/db?sslmode=verify-ca' })).toMatch(
      /DATABASE_URL: sslmode=verify-ca needs sslrootcert/,
    );
    expect(message({ DATABASE_URL: 'postgres://h/db?sslmode=require&sslcert=/c.pem' })).toMatch(
      /DATABASE_URL: sslcert is not supported/,
    );
  });
});

/** A server's and a worker's engine on `env`: a task submitted, taken from the queue and completed. */
async function submitTakeComplete(env: Env): Promise<void> {
  const start = (role: EngineRole) => createEngine(env, createLogger(env, 'tls-test'), role);
  const server = await start('server');
  const worker = await start('worker');
  const connection = worker.queueConnection();
  const consumer = createTaskWorker(
    connection,
    async (job) => {
      const { lifecycle } = worker;
      const claim = await lifecycle.claim(job.id ?? '', 'tls-test', job.attemptsMade + 1);
      if (claim.row) await lifecycle.complete(claim.row, 3);
    },
    { concurrency: 1, lockDuration: 30_000, stalledInterval: 30_000, maxStalledCount: 1 },
  );
  try {
    const { lifecycle } = server;
    const { row } = await lifecycle.submit({ name: 'sum_two_numbers', input: { a: 1, b: 2 } });
    // What the dispatcher does (it runs in the worker process, not in this test).
    await lifecycle.resources.store.dispatch.dispatch([row.id]);
    await lifecycle.resources.queue.handedOut([row]);
    await expect
      .poll(async () => (await lifecycle.resources.store.get(row.id))?.status, { timeout: 15_000 })
      .toBe('COMPLETED');
    expect((await lifecycle.resources.store.get(row.id))?.output).toBe(3);
  } finally {
    await consumer.close();
    if (connection.kind === 'redis') connection.redis.disconnect();
    await worker.close();
    await server.close();
  }
}

describe('the engine over TLS to both', () => {
  const vars = (overrides: Record<string, string> = {}) =>
    loadEnv({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      DATABASE_URL: pgUrl('localhost', `sslmode=verify-full&sslrootcert=${caFile}`).replace(
        '/postgres?',
        '/tasker?',
      ),
      REDIS_URL: `rediss://localhost:${redisPort}/0`,
      REDIS_CA_FILE: caFile,
      REDIS_PREFIX: 'tasker-tls',
      STARTUP_TIMEOUT_MS: '2000',
      ...overrides,
    });
  const start = (env: ReturnType<typeof vars>, role: EngineRole) =>
    createEngine(env, createLogger(env, 'tls-test'), role);

  it.each([
    ['Redis', {}],
    ['PostgreSQL only', { REDIS_URL: '', REDIS_CA_FILE: '' }],
  ])(
    'mode %s: a task is submitted, taken from the queue and completed',
    async (_mode, overrides) => submitTakeComplete(vars(overrides)),
    30_000,
  );

  it('a Redis certificate it cannot trust is named in the "cannot reach Redis" line (it starts anyway, as with Redis down)', async () => {
    const env = vars({ REDIS_CA_FILE: otherCaFile });
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const server = await createEngine(env, log, 'server');
    await server.close();
    expect(lines.join('')).toMatch(
      /cannot reach Redis at rediss:\/\/localhost:\d+\/0 \(REDIS_URL\): self-signed certificate in certificate chain; starting anyway/,
    );
  }, 20_000);

  it('a PostgreSQL certificate it cannot trust stops the start in one line, naming the variable', async () => {
    const env = vars({
      DATABASE_URL: pgUrl('localhost', `sslmode=verify-full&sslrootcert=${otherCaFile}`),
    });
    const attempt = start(env, 'server');
    await expect(attempt).rejects.toThrow(UnreachableError);
    await expect(attempt).rejects.toThrow(
      /^cannot connect to PostgreSQL at postgres:\/\/root@localhost:\d+\/postgres\?.* \(DATABASE_URL\) over TLS: unable to verify the first certificate/,
    );
  });
});

describe.runIf(onRedis && (hasRedisClusterTools() || Boolean(process.env.CI)))(
  'a Redis Cluster over TLS (rediss:// REDIS_CLUSTER_NODES, REDIS_CA_FILE)',
  () => {
    // Three masters that speak TLS only, to clients and to each other, with the certificate above.
    let cluster: RedisCluster;
    beforeAll(async () => {
      cluster = await startRedisCluster({
        tls: { certFile: path.join(dir, 'server.pem'), keyFile: path.join(dir, 'server.key'), caFile },
      });
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    });
    const vars = (ca: string) =>
      loadEnv({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        DATABASE_URL: pgUrl('localhost', `sslmode=verify-full&sslrootcert=${caFile}`).replace(
          '/postgres?',
          '/tasker?',
        ),
        REDIS_CLUSTER_NODES: cluster.nodes,
        REDIS_CA_FILE: ca,
        REDIS_PREFIX: 'tasker-tls-cluster',
        STARTUP_TIMEOUT_MS: '2000',
      });

    it('with the CA: a task is submitted, taken from the queue and completed', async () => {
      expect(cluster.nodes).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+,rediss:/);
      await submitTakeComplete(vars(caFile));
    }, 30_000);

    it('a certificate it cannot trust is named in the "cannot reach Redis Cluster" line', async () => {
      const lines: string[] = [];
      const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
      const server = await createEngine(vars(otherCaFile), log, 'server');
      await server.close();
      expect(lines.join('')).toMatch(
        /cannot reach Redis Cluster at rediss:\/\/127\.0\.0\.1:\d+,.* \(REDIS_CLUSTER_NODES\): self-signed certificate in certificate chain; starting anyway/,
      );
    }, 20_000);
  },
);
