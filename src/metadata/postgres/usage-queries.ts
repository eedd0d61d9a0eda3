/**
 * How storage use is counted, as on SQLite (see sqlite/usage-queries.ts for the definitions),
 * in PostgreSQL's dialect: each takes the SQL of the repository id (a `$n` placeholder).
 */

/** Distinct blobs the manifests of repository `id` reference. */
export function repositoryBlobsSql(id: string): string {
  return `SELECT DISTINCT mr.target_digest AS digest
    FROM repository_manifests rm
    JOIN manifest_references mr ON mr.manifest_digest = rm.digest AND mr.kind = 'blob'
    WHERE rm.repository_id = ${id}`;
}

function manifestBytesSql(id: string): string {
  return `COALESCE((SELECT SUM(m.size) FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
                    WHERE rm.repository_id = ${id}), 0)`;
}

/** The stored bytes of repository `id`: its manifests plus the distinct blobs they reference. */
export function storedBytesSql(id: string): string {
  return `SELECT COALESCE((SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (${repositoryBlobsSql(id)})), 0) + ${manifestBytesSql(id)}`;
}

/** What repository `id` holds as quotas count it: its manifests plus every distinct blob linked into it or referenced by them. */
export function heldBytesSql(id: string): string {
  return `SELECT COALESCE((SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (
      SELECT l.digest FROM repository_blobs l WHERE l.repository_id = ${id}
      UNION ${repositoryBlobsSql(id)})), 0) + ${manifestBytesSql(id)}`;
}
