/**
 * Builds a running registry from a configuration: opens storage and metadata, assembles the
 * domain and the HTTP app. Used by main.ts and by tests that need the real thing.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { Config } from './config/schema.js';
import { createApp } from './http/app.js';
import { SqliteMetadataStore } from './metadata/sqlite.js';
import { createRegistry, type Registry } from './registry/registry.js';
import { FilesystemBlobStore } from './storage/filesystem.js';

export interface RunningRegistry {
  registry: Registry;
  server: http.Server;
  /** Base URL the server listens on, e.g. http://127.0.0.1:5000 */
  url: string;
  close(): Promise<void>;
}

export interface AssembledRegistry {
  registry: Registry;
  app: ReturnType<typeof createApp>;
  logger: Logger;
  close(): Promise<void>;
}

export function createLogger(config: Config): Logger {
  return pino({ level: config.log.level, base: { service: 'registry' } });
}

/** Opens the stores under `storage.root` and builds the app, without listening. */
export async function assemble(config: Config, logger: Logger = createLogger(config)): Promise<AssembledRegistry> {
  const root = path.resolve(config.storage.root);
  const store = await FilesystemBlobStore.open(root);
  const metadata = new SqliteMetadataStore(path.join(root, 'registry.db'));
  const registry = createRegistry(store, metadata, {
    linkKnownBlobsOnHead: config.api.linkKnownBlobsOnHead,
    maxManifestBytes: config.api.maxManifestBytes,
    defaultCatalogPageSize: config.api.catalogPageSize,
    maxPageSize: config.api.maxPageSize,
    deleteEnabled: config.storage.deleteEnabled,
  });
  const app = createApp({ registry, logger });
  return { registry, app, logger, close: () => metadata.close() };
}

export function parseListenAddress(addr: string): { host: string; port: number } {
  const index = addr.lastIndexOf(':');
  const host = addr.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(addr.slice(index + 1)) };
}

/** Assembles the registry and listens on `http.addr`. */
export async function startRegistry(config: Config, logger: Logger = createLogger(config)): Promise<RunningRegistry> {
  const assembled = await assemble(config, logger);
  const server = http.createServer({ keepAliveTimeout: 65_000 }, assembled.app);
  // Layers take long to upload; never cut a slow client off mid-request.
  server.requestTimeout = 0;
  const { host, port } = parseListenAddress(config.http.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    registry: assembled.registry,
    server,
    url: `http://${urlHost}:${address.port}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await assembled.close();
    },
  };
}
