/** Counts of what the registry holds, for metrics: one read-only query, run at scrape time. */
import type { Inventory } from '../backend.js';
import type { Queryable } from './pool.js';

export async function readInventory(db: Queryable): Promise<Inventory> {
  const { rows } = await db.query<Inventory>(`
    SELECT
      (SELECT COUNT(*) FROM repositories) AS "repositories",
      (SELECT COUNT(*) FROM blobs WHERE deleting_since IS NULL) AS "blobs",
      (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE deleting_since IS NULL) AS "blobBytes",
      (SELECT COUNT(*) FROM manifests) AS "manifests",
      (SELECT COALESCE(SUM(size), 0) FROM manifests) AS "manifestBytes",
      (SELECT COUNT(*) FROM tags) AS "tags",
      (SELECT COUNT(*) FROM uploads) AS "uploadSessions"`);
  return rows[0]!;
}
