/**
 * How storage use is counted, in SQL, shared by the metadata store (quota checks inside a
 * manifest push) and the lifecycle store (usage reports), so both always agree.
 *
 * A repository's stored bytes are its manifests plus the distinct blobs they reference: what
 * pulling every image of the repository downloads, each blob once. Blobs linked into the
 * repository but referenced by none of its manifests (an upload awaiting its manifest) do not
 * count; garbage collection reclaims them.
 */

/** Distinct blobs (configs, layers) the manifests of repository `@repositoryId` reference. */
export const REPOSITORY_BLOBS_SQL = `
  SELECT DISTINCT mr.target_digest AS digest
  FROM repository_manifests rm
  JOIN manifest_references mr ON mr.manifest_digest = rm.digest AND mr.kind = 'blob'
  WHERE rm.repository_id = @repositoryId`;

/** The stored bytes of repository `@repositoryId` (one row, one column). */
export const REPOSITORY_STORED_BYTES_SQL = `
  SELECT
    COALESCE((SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (${REPOSITORY_BLOBS_SQL})), 0)
    + COALESCE((SELECT SUM(m.size) FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
                WHERE rm.repository_id = @repositoryId), 0)`;

/**
 * What repository `@repositoryId` holds, as quotas count it: its manifests plus every distinct
 * blob linked into it or referenced by its manifests. A blob counts from the moment its upload
 * (or mount) links it, before any manifest names it, so uploads alone cannot exceed a quota.
 */
export const REPOSITORY_HELD_BYTES_SQL = `
  SELECT
    COALESCE((SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (
      SELECT l.digest FROM repository_blobs l WHERE l.repository_id = @repositoryId
      UNION ${REPOSITORY_BLOBS_SQL})), 0)
    + COALESCE((SELECT SUM(m.size) FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
                WHERE rm.repository_id = @repositoryId), 0)`;
