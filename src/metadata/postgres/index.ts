/**
 * Every metadata store on one PostgreSQL database, shared by any number of replicas: one
 * connection pool per process, the schema migrated on open (under the migration lock), and the
 * state replicas must share (login throttling, the token signing key) kept in the database.
 * Outbox writes are announced to every replica (LISTEN/NOTIFY, notifications.ts), and so are
 * changes to what the per-process read caches hold (read-cache.ts).
 */
import type { ThrottleLimits } from '../../auth/throttle.js';
import { hideUrlPassword, type PostgresSettings } from '../../config/metadata.js';
import type { BackendOptions, MetadataBackend } from '../backend.js';
import { PostgresAccountStore } from './account-store.js';
import { PostgresBrowseStore } from './browse-store.js';
import { readInventory } from './inventory.js';
import { PostgresLifecycleStore, type LifecycleHooks } from './lifecycle-store.js';
import { PostgresLoginThrottle } from './login-throttle.js';
import { PostgresMetadataStore, type MetadataHooks } from './metadata-store.js';
import { migrate, type MigrationResult } from './migrations.js';
import { createPool, type Pool } from './pool.js';
import { announceSigner, sharedSigningKey } from './signing-key.js';
import { listenForChanges, type ChangeFeed } from './notifications.js';
import { READ_CACHE_DEFAULTS, ReadCache, type ReadCacheOptions } from './read-cache.js';
import { PostgresWebhookStore } from './webhook-store.js';

export interface PostgresBackendOptions extends BackendOptions {
  /** Points where tests hold transactions open to force interleavings. */
  hooks?: MetadataHooks & LifecycleHooks;
  /** The read caches' expiry and size (tests lengthen the expiry to see notices at work). */
  readCache?: ReadCacheOptions;
}

export interface PostgresBackend extends MetadataBackend {
  readonly metadata: PostgresMetadataStore;
  readonly lifecycle: PostgresLifecycleStore;
  readonly pool: Pool;
}

export async function openPostgresBackend(settings: PostgresSettings, options: PostgresBackendOptions = {}): Promise<PostgresBackend> {
  const pool = createPool(settings);
  try {
    if (options.migrate ?? true) await migrate(pool);
    else await pool.query('SELECT 1');
  } catch (error) {
    await pool.end();
    throw new Error(`metadata.postgres.url: cannot use the database at ${hideUrlPassword(settings.url)}: ${(error as Error).message}`);
  }
  const hooks = options.hooks ?? {};
  // One listening connection per process, opened when something first needs it.
  let changes: ChangeFeed | undefined;
  const feed = () => (changes ??= listenForChanges(settings));
  const cacheOptions = options.readCache ?? READ_CACHE_DEFAULTS;
  const blobLinks = new ReadCache(feed, 'blobLinks', cacheOptions);
  return {
    pool,
    metadata: new PostgresMetadataStore(pool, blobLinks, hooks),
    lifecycle: new PostgresLifecycleStore(pool, blobLinks, hooks),
    accounts: new PostgresAccountStore(pool, new ReadCache(feed, 'accounts', cacheOptions), options.now),
    webhooks: new PostgresWebhookStore(pool),
    browse: new PostgresBrowseStore(pool),
    inventory: () => readInventory(pool),
    shared: {
      loginThrottle: (limits: ThrottleLimits) => new PostgresLoginThrottle(pool, limits),
      signingKey: (algorithm, generate) => sharedSigningKey(pool, algorithm, generate),
      announceSigner: (kid) => announceSigner(pool, kid),
      onOutboxChange: (listener) => feed().onChange('outbox', listener),
    },
    async close() {
      await changes?.close();
      await pool.end();
    },
  };
}

/** `registry migrate`: the migrations alone, on a pool of its own. */
export async function migratePostgres(settings: PostgresSettings): Promise<MigrationResult> {
  const pool = createPool(settings);
  try {
    return await migrate(pool);
  } finally {
    await pool.end();
  }
}
