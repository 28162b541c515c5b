import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from './errors.ts';

/**
 * Where `pnpm build` puts the dashboard (apps/dashboard/dist), seen from this file: from
 * apps/server/src (tests, tsx) and from apps/server/dist (the bundle, `pnpm start`, the Docker image)
 * alike, two levels up then dashboard/dist.
 */
export const DEFAULT_DASHBOARD_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../dashboard/dist',
);

/**
 * The dashboard at /ui: its built files (hashed assets cached for a year), and index.html for every
 * other path under /ui (the dashboard's own pages, e.g. /ui/tasks/<id>). Not built: a 503 saying
 * how to build it. The dashboard calls the API like any client, with the user's key; /ui/config.json
 * tells it whether a key is needed.
 */
export function registerDashboard(
  app: FastifyInstance,
  { root = DEFAULT_DASHBOARD_DIR, authMode }: { root?: string; authMode: 'required' | 'disabled' },
): void {
  const index = path.join(root, 'index.html');
  // Encapsulated: the `sendFile` decoration stays in here (another plugin may register its own).
  app.register(async (scope) => {
    await scope.register(fastifyStatic, { root, serve: false });
    const page = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      if (!existsSync(index)) {
        return reply
          .code(503)
          .send(
            errorBody(
              503,
              'The dashboard is not built: run `pnpm build` (or `pnpm --filter @tasker/dashboard build`) and reload',
            ),
          );
      }
      const file = (request.params as { '*'?: string })['*'] ?? '';
      // A file (it has an extension): served if it exists, else 404. Anything else is a page of the app.
      if (/\.[a-z0-9]+$/i.test(file)) {
        const hashed = file.startsWith('assets/');
        return reply.sendFile(file, {
          maxAge: hashed ? 365 * 24 * 3600 * 1000 : 0,
          immutable: hashed,
        });
      }
      return reply.header('cache-control', 'no-cache').sendFile('index.html', { cacheControl: false });
    };
    // How this server is set up, so that the dashboard asks for a key only when one is needed
    // (rather than learning it from a 401). Nothing else: the data goes through the API, with the key.
    scope.get('/ui/config.json', { logLevel: 'warn' }, async (_request, reply) =>
      reply.header('cache-control', 'no-cache').send({ authMode }),
    );
    scope.get('/ui', { logLevel: 'warn' }, page);
    scope.get('/ui/*', { logLevel: 'warn' }, page);
  });
}
