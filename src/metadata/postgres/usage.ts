/** Usage reports on PostgreSQL: per repository and for the whole registry, counted as usage-queries.ts defines. */
import type { RegistryUsage, RepositoryUsage } from '../../registry/lifecycle-store.js';
import { REGISTRY_COUNTS_SQL } from '../rows.js';
import type { Queryable } from './pool.js';
import { heldBytesSql, repositoryBlobsSql, storedBytesSql } from './usage-queries.js';

const USAGE_SQL = `
  WITH mine AS (${repositoryBlobsSql('$1')}),
  shared AS (
    SELECT DISTINCT mr.target_digest AS digest FROM manifest_references mr
    JOIN repository_manifests rm ON rm.digest = mr.manifest_digest
    WHERE mr.kind = 'blob' AND rm.repository_id <> $1 AND mr.target_digest IN (SELECT digest FROM mine))
  SELECT
    (SELECT COUNT(*) FROM tags WHERE repository_id = $1) AS tags,
    (SELECT COUNT(*) FROM repository_manifests WHERE repository_id = $1) AS manifests,
    (SELECT COUNT(*) FROM mine JOIN blobs b ON b.digest = mine.digest) AS blobs,
    (${storedBytesSql('$1')}) AS logical_bytes,
    (${heldBytesSql('$1')}) AS held_bytes,
    COALESCE((SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (SELECT digest FROM mine)
              AND b.digest NOT IN (SELECT digest FROM shared)), 0)
    + COALESCE((SELECT SUM(m.size) FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
                WHERE rm.repository_id = $1 AND NOT EXISTS (
                  SELECT 1 FROM repository_manifests o WHERE o.digest = rm.digest AND o.repository_id <> $1)), 0) AS unique_bytes`;

export async function repositoryUsage(db: Queryable, id: number, repository: string): Promise<RepositoryUsage> {
  const row = (
    await db.query<{ tags: number; manifests: number; blobs: number; logical_bytes: number; held_bytes: number; unique_bytes: number }>(USAGE_SQL, [id])
  ).rows[0]!;
  return {
    repository,
    tags: row.tags,
    manifests: row.manifests,
    blobs: row.blobs,
    logicalBytes: row.logical_bytes,
    uniqueBytes: row.unique_bytes,
    heldBytes: row.held_bytes,
  };
}

export async function registryUsage(db: Queryable): Promise<RegistryUsage> {
  const totals = (
    await db.query<{
      repositories: number;
      manifests: number;
      manifest_bytes: number;
      blobs: number;
      blob_bytes: number;
      unreferenced_blobs: number;
      unreferenced_bytes: number;
      logical_bytes: number;
    }>(
      `SELECT ${REGISTRY_COUNTS_SQL},
              (SELECT COALESCE(SUM(x.bytes), 0) FROM repositories r
                 CROSS JOIN LATERAL (${storedBytesSql('r.id')} AS bytes) x) AS logical_bytes`,
    )
  ).rows[0]!;
  return {
    repositories: totals.repositories,
    manifests: totals.manifests,
    blobs: totals.blobs,
    storedBytes: totals.blob_bytes + totals.manifest_bytes,
    logicalBytes: totals.logical_bytes,
    unreferencedBlobs: totals.unreferenced_blobs,
    unreferencedBytes: totals.unreferenced_bytes,
  };
}
