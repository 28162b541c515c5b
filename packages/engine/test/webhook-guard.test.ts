/**
 * The webhooks' guard against server-side request forgery (address-guard.ts) and one attempt's
 * POST (postWebhook): forbidden addresses in every form, a host name checked on every address it
 * resolves to, the connection made to the address checked (a lookup that would answer otherwise
 * the second time is never asked again), and no redirect followed.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkWebhookUrl, isForbiddenAddress, postWebhook, type Resolve, signWebhook } from '../src/index.ts';
import { taskWebhookCheck } from '../src/webhooks/task-url.ts';

describe('isForbiddenAddress', () => {
  it.each([
    '127.0.0.1',
    '127.255.255.254',
    '0.0.0.0',
    '10.0.0.1',
    '100.64.1.1',
    '169.254.169.254',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '198.18.0.1',
    '224.0.0.251',
    '255.255.255.255',
    '::',
    '::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::127.0.0.1',
    '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd00:ec2::254',
    'ff02::1',
    '2001:db8::1',
    'not an address',
  ])('refuses %s', (address) => {
    expect(isForbiddenAddress(address)).toBe(true);
  });

  it.each([
    '93.184.215.14',
    '8.8.8.8',
    '172.32.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '2002:808:808::',
  ])('allows %s', (address) => {
    expect(isForbiddenAddress(address)).toBe(false);
  });
});

describe('checkWebhookUrl', () => {
  const resolving =
    (...addresses: string[]): Resolve =>
    async () =>
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

  it('refuses a name when any of its addresses is private', async () => {
    expect(
      await checkWebhookUrl('https://hooks.example.com/x', false, resolving('93.184.215.14')),
    ).toBeUndefined();
    expect(
      await checkWebhookUrl('https://hooks.example.com/x', false, resolving('93.184.215.14', '10.0.0.5')),
    ).toContain('10.0.0.5');
    expect(
      await checkWebhookUrl('https://rebind.example.com/', false, resolving('::ffff:169.254.169.254')),
    ).toContain('169.254.169.254');
    expect(await checkWebhookUrl('https://nothing.example.com/', false, resolving())).toContain(
      'does not resolve',
    );
  });

  it('refuses other schemes and credentials; allows private addresses only when told', async () => {
    expect(await checkWebhookUrl('file:///etc/passwd', true)).toContain('http');
    expect(await checkWebhookUrl('gopher://127.0.0.1/', true)).toContain('http');
    expect(await checkWebhookUrl('http://a:b@127.0.0.1/', true)).toContain('password');
    expect(await checkWebhookUrl('http://127.0.0.1:9/', true)).toBeUndefined();
    expect(await checkWebhookUrl('http://[::1]:9/', false)).toContain('::1');
  });
});

describe('postWebhook', () => {
  let target: Server;
  let redirecting: Server;
  let targetCalls = 0;
  let port = 0;
  let redirectPort = 0;
  const listen = async (server: Server) => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const bound = server.address();
    return typeof bound === 'object' && bound ? bound.port : 0;
  };

  beforeAll(async () => {
    target = createServer((req, res) => {
      targetCalls++;
      req.resume();
      res.writeHead(200).end();
    });
    port = await listen(target);
    redirecting = createServer((req, res) => {
      req.resume();
      res.writeHead(302, { location: `http://127.0.0.1:${port}/` }).end();
    });
    redirectPort = await listen(redirecting);
  });
  afterAll(async () => {
    await new Promise((resolve) => target.close(resolve));
    await new Promise((resolve) => redirecting.close(resolve));
  });

  const options = { timeoutMs: 2000, allowPrivate: false };

  it('never connects to a literal private address, nor to a name that resolves to one', async () => {
    targetCalls = 0;
    const literal = await postWebhook(`http://127.0.0.1:${port}/`, {}, '{}', options);
    expect(literal.status).toBeNull();
    expect(literal.error).toContain('refused');
    // localhost resolves to loopback: refused at the connection's own lookup.
    const named = await postWebhook(`http://localhost:${port}/`, {}, '{}', options);
    expect(named.status).toBeNull();
    expect(named.error).toMatch(/loopback|private/);
    expect(targetCalls).toBe(0);
  });

  it('follows no redirect', async () => {
    targetCalls = 0;
    const attempt = await postWebhook(`http://127.0.0.1:${redirectPort}/`, {}, '{}', {
      ...options,
      allowPrivate: true,
    });
    expect(attempt.status).toBe(302);
    expect(attempt.error).toContain('not followed');
    expect(targetCalls).toBe(0);
  });

  it('gives up on a receiver that does not answer in time', async () => {
    const silent = createServer(() => {});
    const silentPort = await listen(silent);
    try {
      const attempt = await postWebhook(`http://127.0.0.1:${silentPort}/`, {}, '{}', {
        timeoutMs: 300,
        allowPrivate: true,
      });
      expect(attempt.status).toBeNull();
      expect(attempt.error).toContain('no answer within 300 ms');
      expect(attempt.durationMs).toBeGreaterThanOrEqual(250);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('signWebhook', () => {
  // The test vector of the Standard Webhooks specification (and of its reference libraries).
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const signed = () =>
    signWebhook(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');

  it('signs as Standard Webhooks says, the first time and with the key it keeps', () => {
    expect(signed()).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(signed()).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(
      signWebhook('whsec_AAAA', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'),
    ).not.toBe(signed());
  });
});

describe("taskWebhookCheck (a submission's own webhook_url)", () => {
  it("reads a tenant's secret until it is found, then never again", async () => {
    const reads: string[] = [];
    const has = new Set(['with']);
    const check = taskWebhookCheck(
      {
        hasTaskSecret: async (tenantId: string) => {
          reads.push(tenantId);
          return has.has(tenantId);
        },
      },
      true,
    );
    for (let i = 0; i < 3; i++) expect(await check('with', `http://127.0.0.1/${i}`)).toBeUndefined();
    expect(await check('without', 'http://127.0.0.1/')).toContain('/webhooks/task-secret');
    has.add('without');
    expect(await check('without', 'http://127.0.0.1/')).toBeUndefined();
    expect(await check('without', 'http://127.0.0.1/')).toBeUndefined();
    expect(reads).toEqual(['with', 'without', 'without']);
    // The address is still checked on every call.
    expect(
      await taskWebhookCheck({ hasTaskSecret: async () => true }, false)('with', 'http://10.0.0.1/'),
    ).toContain('10.0.0.1');
  });
});
