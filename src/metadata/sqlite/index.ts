/**
 * The embedded default: every metadata store on one SQLite database (WAL) at
 * `<storage.root>/registry.db`, migrated on open.
 */
import path from 'node:path';
import type { BackendOptions, MetadataBackend } from '../backend.js';
import { SqliteAccountStore } from './account-store.js';
import { SqliteBrowseStore } from './browse-store.js';
import { createInventoryReader } from './inventory.js';
import { SqliteLifecycleStore } from './lifecycle-store.js';
import { SqliteMetadataStore } from './metadata-store.js';
import { SqliteWebhookStore } from './webhook-store.js';
import { MIGRATIONS } from './migrations.js';

export interface SqliteBackend extends MetadataBackend {
  readonly metadata: SqliteMetadataStore;
  readonly lifecycle: SqliteLifecycleStore;
}

export function openSqliteBackend(root: string, options: BackendOptions = {}): SqliteBackend {
  const metadata = new SqliteMetadataStore(path.join(path.resolve(root), 'registry.db'));
  return {
    metadata,
    lifecycle: new SqliteLifecycleStore(metadata.db),
    accounts: new SqliteAccountStore(metadata.db, options.now),
    webhooks: new SqliteWebhookStore(metadata.db),
    browse: new SqliteBrowseStore(metadata.db),
    inventory: createInventoryReader(metadata.db),
    close: () => metadata.close(),
  };
}

/** `registry migrate` on the embedded database: opening it migrates it; says which migrations ran. */
export async function migrateSqlite(root: string): Promise<{ applied: string[]; alreadyApplied: string[] }> {
  const store = new SqliteMetadataStore(path.join(path.resolve(root), 'registry.db'));
  await store.close();
  const applied = store.migrationsApplied;
  return { applied, alreadyApplied: MIGRATIONS.map((migration) => migration.name).filter((name) => !applied.includes(name)) };
}
