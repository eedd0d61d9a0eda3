/**
 * The metadata backend: every store the registry keeps in its database, opened together over
 * one connection. The composition root (server.ts, the CLI) opens one through
 * {@link openMetadataBackend} and hands each store to the service that needs it; nothing else
 * knows which database sits behind them.
 */
import type { AccountStore } from '../auth/accounts.js';
import type { LoginThrottle, ThrottleLimits } from '../auth/throttle.js';
import type { Config } from '../config/schema.js';
import type { BrowseStore } from '../registry/browse-store.js';
import type { LifecycleStore } from '../registry/lifecycle-store.js';
import type { MetadataStore } from '../registry/ports.js';
import type { WebhookStore } from '../webhooks/store.js';

/** Counts of what the registry holds, for metrics, read at scrape time. */
export interface Inventory {
  repositories: number;
  /** Distinct blobs (content-addressed: each stored once); as in usage reports, not those a collection is deleting. */
  blobs: number;
  blobBytes: number;
  manifests: number;
  manifestBytes: number;
  tags: number;
  /** Upload sessions started and neither completed nor cancelled. */
  uploadSessions: number;
}

export interface MetadataBackend {
  /** Repositories, blob links, manifests, tags, upload sessions and the event outbox. */
  readonly metadata: MetadataStore;
  /** What garbage collection, retention, usage and fsck read and change. */
  readonly lifecycle: LifecycleStore;
  /** Users, robots, grants, refresh tokens. */
  readonly accounts: AccountStore;
  /** Webhook subscriptions, deliveries, attempts and the outbox cursor. */
  readonly webhooks: WebhookStore;
  /** The reads of the web interface and the browsing API (repository summaries, tag pages). */
  readonly browse: BrowseStore;
  inventory(): Promise<Inventory>;
  /**
   * What several replicas must share beyond the stores, present when the backend serves more
   * than one process (PostgreSQL); absent for the embedded one, whose process keeps it.
   */
  readonly shared?: SharedState;
  close(): Promise<void>;
}

/** State that lives in one process on the embedded backend and in the database with replicas. */
export interface SharedState {
  /** Login throttling counted in the database, across replicas. */
  loginThrottle(limits: ThrottleLimits): LoginThrottle;
  /** The token signing key (PEM) the database holds, generated with `generate` by the first replica that asks. */
  signingKey(algorithm: string, generate: () => string): Promise<{ pem: string; algorithm: string; created: boolean }>;
  /** Records the kid this replica signs with; returns the one replicas signed with before (null: none yet). */
  announceSigner(kid: string): Promise<string | null>;
  /** Calls `listener` whenever any replica commits outbox events (the webhook dispatcher's wake-up; its poll is the fallback). */
  onOutboxChange(listener: () => void): void;
}

export interface BackendOptions {
  /** Clock for account expiries (tests). */
  now?: () => number;
  /** PostgreSQL only: run the schema migrations on open (default true; `registry migrate` runs them on their own). */
  migrate?: boolean;
}

/**
 * Opens the metadata backend `metadata.driver` names: SQLite under `storage.root` (the
 * default), or PostgreSQL at `metadata.postgres.url` (its driver loaded only then).
 */
export async function openMetadataBackend(config: Pick<Config, 'storage' | 'metadata'>, options: BackendOptions = {}): Promise<MetadataBackend> {
  if (config.metadata.driver === 'postgres') {
    const { openPostgresBackend } = await import('./postgres/index.js');
    return openPostgresBackend({ ...config.metadata.postgres, url: config.metadata.postgres.url! }, options);
  }
  const { openSqliteBackend } = await import('./sqlite/index.js');
  return openSqliteBackend(config.storage.root, options);
}

/** Applies the configured backend's schema migrations and says which ran (`registry migrate`). */
export async function migrateMetadata(config: Pick<Config, 'storage' | 'metadata'>): Promise<{ applied: string[]; alreadyApplied: string[] }> {
  if (config.metadata.driver === 'postgres') {
    const { migratePostgres } = await import('./postgres/index.js');
    return migratePostgres({ ...config.metadata.postgres, url: config.metadata.postgres.url! });
  }
  const { migrateSqlite } = await import('./sqlite/index.js');
  return migrateSqlite(config.storage.root);
}
