/**
 * /docs: the OpenAPI document rendered by Swagger UI, from assets this server serves, open to anyone
 * even with AUTH_MODE=required, and pointing at no other host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ AUTH_MODE: 'required' }, { worker: false });
});
afterAll(async () => {
  await stack?.close();
});

/** Every `src`/`href` of a page, and every `url(...)` of a stylesheet, except data: URIs and fragments. */
function references(text: string): string[] {
  const found = [
    ...[...text.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1] ?? ''),
    ...[...text.matchAll(/url\(\s*["']?([^"')]+)["']?\s*\)/g)].map((m) => m[1] ?? ''),
  ];
  return [...new Set(found)].filter((ref) => ref && !ref.startsWith('data:') && !ref.startsWith('#'));
}

/** http(s) URLs in a text whose host is not `host`. */
function foreignUrls(text: string, host: string): string[] {
  return [...text.matchAll(/https?:\/\/[^\s"'<>`)]+/g)]
    .map((m) => m[0])
    .filter((u) => new URL(u).host !== host);
}

describe('/docs', () => {
  it('answers HTML without a key, and every asset it references is served here (200)', async () => {
    const page = await fetch(`${stack.url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('swagger-ui');
    const host = new URL(stack.url).host;
    expect(foreignUrls(html, host)).toEqual([]);

    const assets = references(html);
    expect(assets.length).toBeGreaterThanOrEqual(4);
    const fetched = new Set<string>();
    const queue = assets.map((ref) => new URL(ref, page.url).href);
    while (queue.length > 0) {
      const href = queue.shift() as string;
      if (fetched.has(href)) continue;
      fetched.add(href);
      expect(new URL(href).host, href).toBe(host);
      const res = await fetch(href);
      expect(res.status, href).toBe(200);
      const type = res.headers.get('content-type') ?? '';
      // Stylesheets can reference fonts and images in turn: those must be here too.
      if (type.startsWith('text/css')) {
        const css = await res.text();
        for (const ref of references(css)) queue.push(new URL(ref, href).href);
      } else await res.arrayBuffer();
    }
    expect([...fetched].some((u) => u.endsWith('/swagger-ui-bundle.js'))).toBe(true);
  });

  it('loads the document from this server: the same as /openapi.json, with no validator badge', async () => {
    const init = await fetch(`${stack.url}/docs/static/swagger-initializer.js`);
    expect(init.status).toBe(200);
    const script = await init.text();
    // Its one URL elsewhere is in a comment (a Stack Overflow answer): none in the code.
    const code = script.replace(/^\s*\/\/.*$/gm, '');
    expect(foreignUrls(code, new URL(stack.url).host)).toEqual([]);
    expect(script).toMatch(/url: resolveUrl\('\.\/json'\)/);
    expect(script).toMatch(/validatorUrl: null/);
    const served = await (await fetch(`${stack.url}/docs/json`)).json();
    const document = await (await fetch(`${stack.url}/openapi.json`)).json();
    expect(served).toEqual(document);
  });

  it('keeps the API itself closed: the page is open, a route still needs a key', async () => {
    expect((await fetch(`${stack.url}/queue`)).status).toBe(401);
    expect((await fetch(`${stack.url}/docs/`)).status).toBe(200);
  });
});
