# One image for every Gitspaces part: docker-compose.yml picks the part with the command
# (node dist/api/main.js, dist/workers/runner-main.js, dist/gateway/main.js or dist/codec/main.js).
# It runs the compiled JavaScript with production dependencies only (no TypeScript, tsx or dev tools), as the
# unprivileged `node` user; the code under /app belongs to root and cannot be changed by the parts.
ARG NODE_IMAGE=node:22-bookworm-slim

# --- the toolchain the native modules (node-pty) compile with ------------------------------------------------------
FROM ${NODE_IMAGE} AS toolchain
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# --- build: every dependency, then the compiled parts (npm run build -> dist/) ---------------------------------------
FROM toolchain AS build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# --- production dependencies only, installed from the same lock file -------------------------------------------------
FROM toolchain AS prod-deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime --------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# git and ssh: the agents of `local` gitspaces clone repositories; tini: PID 1 that reaps the runner's agents and
# forwards signals. util-linux (setpriv, prlimit), which the local sandbox uses, is part of the base image.
RUN apt-get update \
  && apt-get install -y --no-install-recommends git openssh-client ca-certificates tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
  GITSPACES_DATA_DIR=/data
WORKDIR /app
COPY package.json ./
COPY --from=prod-deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY deploy/compose/healthcheck.mjs ./healthcheck.mjs
# The data dir belongs to the user the parts run as; a new named volume mounted there takes its owner from here.
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME ["/data"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/api/main.js"]
