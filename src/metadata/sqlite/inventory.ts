/**
 * Counts of what the registry holds, for metrics: repositories, distinct blobs and manifests
 * with their bytes, tags, and open upload sessions. One read-only query, run at scrape time.
 */
import type Database from 'better-sqlite3';
import type { Inventory } from '../backend.js';

export function createInventoryReader(db: Database.Database): () => Promise<Inventory> {
  const statement = db.prepare(`
    SELECT
      (SELECT COUNT(*) FROM repositories) AS repositories,
      (SELECT COUNT(*) FROM blobs WHERE deleting_since IS NULL) AS blobs,
      (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE deleting_since IS NULL) AS blobBytes,
      (SELECT COUNT(*) FROM manifests) AS manifests,
      (SELECT COALESCE(SUM(size), 0) FROM manifests) AS manifestBytes,
      (SELECT COUNT(*) FROM tags) AS tags,
      (SELECT COUNT(*) FROM uploads) AS uploadSessions`);
  return async () => statement.get() as Inventory;
}
