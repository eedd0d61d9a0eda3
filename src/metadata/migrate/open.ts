/**
 * The two ends of a metadata migration, loaded on use like the backends themselves
 * (backend.ts): the SQLite database under storage.root as the source, a PostgreSQL database as
 * the target.
 */
import type { PostgresSettings } from '../../config/metadata.js';
import type { MetadataSnapshot, MetadataTarget } from './ports.js';

export async function openSqliteSource(root: string): Promise<MetadataSnapshot> {
  const { openSqliteSnapshot } = await import('../sqlite/export.js');
  return openSqliteSnapshot(root);
}

export async function openPostgresDestination(settings: PostgresSettings): Promise<MetadataTarget> {
  const { openPostgresTarget } = await import('../postgres/import.js');
  return openPostgresTarget(settings);
}
