/**
 * The metadata backend: every store the registry keeps in its database, opened together over
 * one connection. The composition root (server.ts, the CLI) opens one through
 * {@link openMetadataBackend} and hands each store to the service that needs it; nothing else
 * knows which database sits behind them.
 */
import type { AccountStore } from '../auth/accounts.js';
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
  close(): Promise<void>;
}

export interface BackendOptions {
  /** Clock for account expiries (tests). */
  now?: () => number;
}

/** Opens the metadata backend the configuration names (today: SQLite under `storage.root`). */
export async function openMetadataBackend(config: Pick<Config, 'storage'>, options: BackendOptions = {}): Promise<MetadataBackend> {
  const { openSqliteBackend } = await import('./sqlite/index.js');
  return openSqliteBackend(config.storage.root, options);
}
