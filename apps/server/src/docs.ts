import swagger, { type StaticDocumentSpec } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import type { OpenApiDocument } from './openapi.ts';

/**
 * `/docs`: the OpenAPI document rendered by Swagger UI, every route with its examples, and a
 * "Try it out" that sends the key given under "Authorize". Every asset is served from this server
 * (swagger-ui-dist, inside @fastify/swagger-ui): the page loads nothing from another host, so it
 * works offline. Scalar's reference was the other candidate; its bundle loads fonts from
 * fonts.scalar.com, sends telemetry and routes "try it" requests through proxy.scalar.com unless
 * each is switched off, which a new release can add to.
 *
 * The page and its assets are open in every mode (auth.ts lists /docs among the open routes).
 */
export async function registerDocs(app: FastifyInstance, doc: OpenApiDocument): Promise<void> {
  // Static mode: the document is the one /openapi.json serves, not built from Fastify's routes.
  await app.register(swagger, {
    mode: 'static',
    // Its type (openapi-types) says less than ours of the same OpenAPI 3.1 object.
    specification: { document: doc as unknown as StaticDocumentSpec['document'] },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    logLevel: 'warn',
    theme: { title: 'Tasker API' },
    // No badge from validator.swagger.io: nothing leaves this server.
    validatorUrl: false,
    // The server's Content-Security-Policy (app.ts), but for one thing: Swagger UI's bundle adds a
    // <style> element at run time, so its pages allow inline styles (never inline scripts).
    transformStaticCSP: (header) =>
      header.replace(/style-src 'self'(?=;|$)/, "style-src 'self' 'unsafe-inline'"),
    uiConfig: {
      docExpansion: 'list',
      deepLinking: true,
      displayOperationId: true,
      defaultModelsExpandDepth: 1,
      defaultModelExpandDepth: 3,
      showExtensions: false,
      tryItOutEnabled: false,
      persistAuthorization: false,
    },
  });
}
