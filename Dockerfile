# One image for both processes. Default command: the HTTP server.
# The worker runs the same image with: node apps/worker/dist/main.js
# The `tasker` CLI is on the PATH: `docker compose exec server tasker keys create ...` (DATABASE_URL is
# the container's), `docker compose exec server tasker run sum_two_numbers -p a=1 -p b=2 --wait`.
#
# The apps bundle the workspace packages (tsup) but keep npm packages external, and @tasker/db
# finds its SQL migrations through require.resolve('@tasker/db/package.json'): the runtime stage
# therefore keeps the built workspace with its (production) node_modules, as pnpm linked them.

FROM node:24-bookworm-slim AS base
# CI=true: pnpm never prompts (e.g. before it re-links node_modules for --prod).
ENV CI=true
RUN npm i -g pnpm@12.4.2
WORKDIR /app

FROM base AS build
# Download every package the lockfile names first: this layer survives source-only changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
# The patches the workspace applies to dependencies (patchedDependencies): postgres.js's write scheduler.
COPY patches ./patches
RUN pnpm fetch
COPY . .
RUN pnpm install --frozen-lockfile --offline
# The dashboard is built to static files (apps/dashboard/dist) that the server serves at /ui; its
# build tools are dropped below with the rest, its dist/ stays.
RUN pnpm turbo run build --filter=@tasker/server --filter=@tasker/worker --filter=@tasker/cli --filter=@tasker/dashboard
# Re-link node_modules from scratch with the production dependencies of the server, the worker, the
# CLI and the workspace packages they use, nothing else: no build or test tools, no embedded
# PostgreSQL (60 MB), no SDK. Measured here: 458 MB with everything, 218 MB with --prod alone, 136 MB
# so. dist/ stays. The CLI bundles what it needs of the SDK, tRPC's client and @tasker/embedded-pg
# (devDependencies; --filter-prod does not follow them) and adds only commander (0.2 MB).
RUN find . -name node_modules -type d -prune -exec rm -rf {} + \
 && pnpm install --frozen-lockfile --offline --prod --filter "@tasker/server..." --filter "@tasker/worker..." --filter-prod "@tasker/cli..."

FROM node:24-bookworm-slim AS runtime
# Production, said explicitly: API keys required on every API route (AUTH_MODE would default to it
# with NODE_ENV=production; it is written out so that nobody wonders), on every interface of the
# container. A server with AUTH_MODE=disabled refuses a HOST other than loopback.
ENV NODE_ENV=production AUTH_MODE=required HOST=0.0.0.0
# V8's young generation at 16 MB a semi-space (Node's default before it sized them by the machine's
# memory: on a 24 GB machine Node 24 lets them grow to 64 MB, and a server's RSS was 330 MB at rest
# instead of about 230). The same flag as scripts/start.mjs and the tests' processes.
ENV NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
COPY --from=build /app /app
# `tasker` on the PATH (dist/main.js starts with #!/usr/bin/env node; Node follows the link to find
# the CLI's node_modules).
RUN ln -s /app/packages/cli/dist/main.js /usr/local/bin/tasker && chmod +x /app/packages/cli/dist/main.js
USER node
EXPOSE 5000
CMD ["node", "apps/server/dist/main.js"]
