# The registry image: docker build -t harbormaster-registry .
# (Both stages build on NODE_IMAGE: --build-arg NODE_IMAGE=<a Debian-based node image>.)
#
#   docker run -d -p 5000:5000 -v registry-data:/var/lib/registry \
#     -e REGISTRY_ADMIN_PASSWORD=change-me-please harbormaster-registry
#
# Settings come from REGISTRY_* variables (see config/registry.yaml, copied to /app/config);
# data (blobs, uploads, the SQLite database, the token signing key) lives in the volume.
# The admin CLI is on the PATH: docker exec <container> registry --help.
# More, and how to build without Docker Hub: docs/operations.md, "The container image".

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript, then keep production dependencies only
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# A mirror of better-sqlite3's prebuilt binaries, for builds that cannot reach GitHub
# (prebuild-install's own variable; e.g. http://127.0.0.1:8080, serving
# /v<version>/better-sqlite3-v<version>-node-v<abi>-linux-x64.tar.gz). Unset: GitHub.
ARG npm_config_better_sqlite3_binary_host
COPY package.json package-lock.json ./
# better-sqlite3 is the one native module: its install fetches a prebuilt binary for this node
# and platform; only where none can be had is the compiler toolchain installed to build it.
# (The other install script, esbuild's, belongs to a dev dependency the build does not run.)
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && if ! npm rebuild better-sqlite3; then \
      echo "no prebuilt better-sqlite3: installing a compiler to build it" \
      && apt-get update \
      && apt-get install -y --no-install-recommends python3 make g++ \
      && rm -rf /var/lib/apt/lists/* \
      && npm rebuild better-sqlite3; \
    fi
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: the compiled registry, production node_modules, no compiler, no sources
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    REGISTRY_HTTP_ADDR=0.0.0.0:5000 \
    REGISTRY_STORAGE_ROOT=/var/lib/registry \
    REGISTRY_CONFIG=/app/config/registry.yaml
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
COPY bin ./bin
# `registry` (admin CLI) and `registry-agent` on the PATH; without src/ they run dist/.
RUN chmod 0755 bin/registry.js bin/registry-agent.js \
 && ln -s /app/bin/registry.js /usr/local/bin/registry \
 && ln -s /app/bin/registry-agent.js /usr/local/bin/registry-agent \
 && mkdir -p /var/lib/registry /var/lib/registry-agent \
 && chown node:node /var/lib/registry /var/lib/registry-agent
# registry-agent keeps its state in /var/lib/registry-agent by default (the variable systemd's
# StateDirectory= sets); mount a volume there.
ENV STATE_DIRECTORY=/var/lib/registry-agent
# The image's own unprivileged user (uid 1000); the volume must be writable by it.
USER node
VOLUME ["/var/lib/registry"]
EXPOSE 5000
# SIGTERM: graceful shutdown (requests in flight finish within http.shutdownTimeoutSeconds,
# 30 s by default): give `docker stop` a longer timeout (docker stop -t 40, compose
# stop_grace_period). SIGHUP reloads the TLS certificate and key.
STOPSIGNAL SIGTERM
# Asks /healthz on the configured port and scheme (works with TLS too).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "dist/healthcheck.js"]
# The same command as `npm start`: a small young generation keeps memory flat while layers
# stream through (see src/runtime/garbage-pacer.ts).
CMD ["node", "--max-semi-space-size=1", "dist/main.js"]
