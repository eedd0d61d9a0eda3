/**
 * Builds a running registry from a configuration: opens storage and metadata, assembles the
 * domain and the HTTP app. Used by main.ts and by tests that need the real thing.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { Config } from './config/schema.js';
import { ensureInitialAdmin, type PasswordAnnouncer } from './auth/bootstrap.js';
import { isLoopbackAddress, OPEN_REGISTRY_WARNING } from './auth/exposure.js';
import { AuthService, createTokenService } from './auth/service.js';
import { createApp } from './http/app.js';
import { createHttpAuth } from './http/auth-middleware.js';
import { checkSharedSigner, databaseSigningKey } from './auth/shared-keys.js';
import { openMetadataBackend, type MetadataBackend } from './metadata/backend.js';
import { writableDirectoryCheck, type ReadinessCheck } from './observability/health.js';
import { startHttpServer, type ServingState } from './serving.js';
import { BrowseService } from './registry/browse.js';
import { gcSummary } from './registry/gc.js';
import { createLifecycle, type Lifecycle } from './registry/lifecycle.js';
import type { BlobStore, MetadataStore } from './registry/ports.js';
import { createRegistry, type Registry } from './registry/registry.js';
import { needsResumableHashes, openBlobStore } from './storage/open.js';
import type { LifecycleStore } from './registry/lifecycle-store.js';
import { ImageExporter } from './transfer/export.js';
import { ImageImporter } from './transfer/import.js';
import { VERSION } from './version.js';
import { withChangeNotifications } from './webhooks/notify.js';
import { createWebhooks, type WebhookService } from './webhooks/service.js';
import type { DeliveryStats } from './webhooks/store.js';
import { serveApp } from './http/listener.js';
import { startGarbagePacer } from './runtime/garbage-pacer.js';
import { exposedRootWarning, preparePrivateRoot, PRIVATE_DIRECTORY_MODE } from './runtime/private-files.js';

export interface RunningRegistry {
  registry: Registry;
  server: http.Server | https.Server;
  /** Base URL the server listens on, e.g. http://127.0.0.1:5000 (https:// with TLS) */
  url: string;
  /**
   * Graceful shutdown: stops accepting connections, lets requests in flight finish (at most
   * `deadlineMs`, default http.shutdownTimeoutSeconds, then cuts them), stops the collection
   * schedule and the webhook dispatcher after their current work, and closes the database.
   */
  close(options?: { deadlineMs?: number }): Promise<void>;
  /** Re-reads the TLS certificate and key (SIGHUP); connections open meanwhile are kept. False without TLS. */
  reloadTls(): Promise<boolean>;
}

export interface AssembledRegistry {
  registry: Registry;
  app: ReturnType<typeof createApp>;
  logger: Logger;
  /** The auth service when `auth.mode` is `token`. */
  auth?: AuthService;
  /** Webhook subscriptions and the dispatcher (started by startRegistry). */
  webhooks: WebhookService;
  /** Garbage collection, usage and fsck (the collection schedule is started by startRegistry). */
  lifecycle: Lifecycle;
  /** Shared with the app: set when a graceful shutdown begins. */
  serving: ServingState;
  /** The metadata stores (tests reach the lifecycle store and the database through it). */
  backend: MetadataBackend;
  close(): Promise<void>;
}

export interface AssembleOptions {
  /** Clock for tokens, throttling and expiries (tests). */
  now?: () => number;
  /** Where a generated first-admin password is shown (default: stderr, never the log). */
  announcePassword?: PasswordAnnouncer;
}

/** Paths never written to the log even if some code hands them to the logger. */
const REDACTED = ['password', 'secret', 'token', 'authorization', 'headers.authorization', 'req.headers.authorization', 'req.headers.cookie'];

/**
 * JSON lines on stdout, written asynchronously (pino flushes what is buffered when the process
 * exits), so logging never blocks a request.
 */
export function createLogger(config: Config): Logger {
  return pino(
    { level: config.log.level, base: { service: 'registry' }, redact: { paths: REDACTED, censor: '[redacted]' } },
    pino.destination({ dest: 1, sync: false }),
  );
}

/** Opens the stores under `storage.root` and builds the app, without listening. */
export async function assemble(config: Config, logger: Logger = createLogger(config), options: AssembleOptions = {}): Promise<AssembledRegistry> {
  const root = path.resolve(config.storage.root);
  const { exposedMode } = await preparePrivateRoot(root);
  if (exposedMode !== null) logger.warn({ root, mode: exposedMode.toString(8) }, exposedRootWarning(root, exposedMode));
  const store = await openBlobStore(config.storage);
  const backend = await openMetadataBackend(config, { now: options.now });
  const { metadata, lifecycle: lifecycleStore } = backend;
  const webhooks = createWebhooks(config, backend, logger);
  // Other replicas' changes wake this dispatcher too (this one's own wake it through the decorator below).
  backend.shared?.onOutboxChange(() => webhooks.notify());
  // The dispatcher wakes as soon as a change (and its outbox event) is committed.
  const registry = buildRegistry(config, store, withChangeNotifications(metadata, () => webhooks.notify()), lifecycleStore);
  const lifecycle = createLifecycle(registry, lifecycleStore, config.lifecycle.gc);
  let auth: AuthService | undefined;
  try {
    auth = config.auth.mode === 'token' ? await setUpAuth(config, root, backend, logger, options) : undefined;
  } catch (error) {
    await backend.close();
    throw error;
  }
  const serving: ServingState = { closing: false };
  const importsDir = path.join(root, 'imports');
  await fs.mkdir(importsDir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
  const readiness: ReadinessCheck[] = [
    { name: 'metadata', probe: async () => void (await metadata.listRepositories({ limit: 1 })) },
    writableDirectoryCheck('storage', root),
  ];
  if (store.check) readiness.push({ name: 'blob storage', probe: () => store.check!() });
  const inventory = () => backend.inventory();
  const app = createApp({
    registry,
    logger,
    auth: auth && createHttpAuth(auth, { publicUrl: config.http.publicUrl }),
    webhooks,
    lifecycle,
    browse: new BrowseService(registry.metadata, store, backend.browse, {
      defaultPageSize: config.api.catalogPageSize,
      maxPageSize: Math.min(config.api.maxPageSize, 1000),
      maxConfigBytes: config.api.maxManifestBytes,
    }),
    ui: config.ui.enabled ? { assetsDir: config.ui.assetsDir } : undefined,
    readOnly: config.storage.readOnly,
    operations: {
      metrics: {
        ...config.metrics,
        sources: { inventory, webhooks: () => webhooks.deliveryStats().then(orEmptyDeliveries), gc: () => lifecycle.gc.stats() },
      },
      readiness,
      trustProxy: config.http.trustProxy,
      transfer: { importer: new ImageImporter(registry), exporter: new ImageExporter(registry), tempDir: importsDir, maxBytes: config.import.maxBytes },
      closing: () => serving.closing,
    },
  });
  const close = async () => {
    await webhooks.stop();
    await backend.close();
  };
  return { registry, app, logger, auth, webhooks, lifecycle, serving, backend, close };
}

function orEmptyDeliveries(stats: DeliveryStats | null): DeliveryStats {
  return stats ?? { byState: { pending: 0, delivered: 0, failed: 0 }, deploys: { running: 0, succeeded: 0, failed: 0 }, oldestPendingSeconds: 0, outboxBacklog: 0 };
}

/** The registry domain as the configuration describes it (the server, and CLI commands that work on the storage root). */
export function buildRegistry(config: Config, store: BlobStore, metadata: MetadataStore, lifecycleStore: LifecycleStore): Registry {
  return createRegistry(
    store,
    metadata,
    {
      // Linking on HEAD writes a link: not while read-only.
      linkKnownBlobsOnHead: config.api.linkKnownBlobsOnHead && !config.storage.readOnly,
      maxManifestBytes: config.api.maxManifestBytes,
      defaultCatalogPageSize: config.api.catalogPageSize,
      maxPageSize: config.api.maxPageSize,
      deleteEnabled: config.storage.deleteEnabled,
      redirectSeconds: config.storage.redirect.enabled ? config.storage.redirect.expirySeconds : undefined,
    },
    // With replicas, an upload's next request may land on another process, whatever holds the bytes.
    { rules: config.lifecycle, usage: lifecycleStore, resumableHashes: needsResumableHashes(config.storage) || config.metadata.driver === 'postgres' },
  );
}

/**
 * Opens the registry of the configured storage root without serving it (CLI commands such as
 * import and export); safe beside a running server (SQLite WAL, atomic blob commits).
 */
export async function openRegistry(
  config: Config,
): Promise<{ registry: Registry; lifecycleStore: LifecycleStore; close(): Promise<void> }> {
  await preparePrivateRoot(path.resolve(config.storage.root));
  const store = await openBlobStore(config.storage);
  const backend = await openMetadataBackend(config);
  return { registry: buildRegistry(config, store, backend.metadata, backend.lifecycle), lifecycleStore: backend.lifecycle, close: () => backend.close() };
}

/** Token auth over the registry database: accounts, the token service, the first admin. */
async function setUpAuth(config: Config, root: string, backend: MetadataBackend, logger: Logger, options: AssembleOptions): Promise<AuthService> {
  const shared = backend.shared;
  // With replicas (shared state in the database) the key and the login counts are the database's, never this process's.
  const sharedKey = shared
    ? () => databaseSigningKey(shared, config.auth, (key) => logger.info({ kid: key.kid, algorithm: key.algorithm }, 'generated the token signing key the database holds'))
    : undefined;
  const tokens = await createTokenService({ config: config.auth, root, logger, now: options.now, sharedKey });
  if (shared && tokens.signingKey) await checkSharedSigner(shared, config.auth, tokens.signingKey);
  const throttle = shared?.loginThrottle(config.auth.throttle);
  const auth = new AuthService({ config: config.auth, store: backend.accounts, tokens, logger, now: options.now, throttle });
  await ensureInitialAdmin(backend.accounts, config.auth, logger, options.announcePassword);
  return auth;
}

/** Assembles the registry and listens on `http.addr` (HTTPS when http.tls is set). */
export async function startRegistry(config: Config, logger: Logger = createLogger(config)): Promise<RunningRegistry> {
  const assembled = await assemble(config, logger);
  // Archives of imports cut short by a crash.
  await emptyFolder(path.join(path.resolve(config.storage.root), 'imports'));
  let listening;
  try {
    listening = await startHttpServer(serveApp(assembled.app), {
      addr: config.http.addr,
      tls: config.http.tls.certificate && config.http.tls.key ? { certificate: config.http.tls.certificate, key: config.http.tls.key } : undefined,
      logger,
      state: assembled.serving,
      bodyIdleTimeoutMs: config.http.bodyIdleTimeoutSeconds * 1000,
    });
  } catch (error) {
    await assembled.close();
    throw error;
  }
  const { server, url, address } = listening;
  if (config.auth.mode === 'none' && !isLoopbackAddress(address.address)) logger.warn({ addr: config.http.addr }, OPEN_REGISTRY_WARNING);
  const gcSchedule = assembled.lifecycle.scheduler({
    onReport: (report) => logger.info({ gc: gcSummary(report) }, 'garbage collection finished'),
    onError: (error) => logger.warn({ err: error }, 'scheduled garbage collection failed'),
    // Another replica (or the CLI) is collecting: that is the schedule working, not a failure.
    onBusy: (holder) => logger.debug({ holder }, 'scheduled garbage collection left to the collection already running'),
  });
  // Blob bytes stream through short-lived Buffers; collecting them promptly keeps memory flat.
  const garbagePacer = startGarbagePacer();
  const close = async (options: { deadlineMs?: number } = {}) => {
    // Requests in flight finish while a collection in progress ends; then webhooks stop and the database closes.
    await Promise.all([listening.shutdown(options.deadlineMs ?? config.http.shutdownTimeoutSeconds * 1000), gcSchedule.stop()]);
    garbagePacer?.stop();
    await assembled.close();
  };
  assembled.webhooks.listening(url);
  try {
    // Read-only (maintenance, docs/migrate.md): nothing writes to the database, so deliveries and collections wait.
    if (config.storage.readOnly) logger.warn('read-only (storage.readOnly): changes are refused; webhook deliveries and scheduled collections are paused');
    else {
      await assembled.webhooks.start();
      await gcSchedule.start();
    }
  } catch (error) {
    await close({ deadlineMs: 0 });
    throw error;
  }
  logger.debug({ version: VERSION }, 'registry started');
  return { registry: assembled.registry, server, url, close, reloadTls: listening.reloadTls };
}

async function emptyFolder(dir: string): Promise<void> {
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) await fs.rm(path.join(dir, entry), { recursive: true, force: true });
}
