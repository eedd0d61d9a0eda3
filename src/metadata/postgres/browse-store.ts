/**
 * The BrowseStore on PostgreSQL: the reads of the web interface and the browsing API, each page
 * an index range scan as on SQLite (tags by (repository, name) or by tags_by_update, pushers
 * from events_by_tag, a repository's tag version from events_by_repository). Searches are
 * substrings (strpos: no pattern characters to escape).
 */
import type { BrowseStore, ManifestSummary, RepositorySummary, StoredTag, TagPageRequest, TagPush } from '../../registry/browse-store.js';
import type { Actor } from '../../registry/ports.js';
import type { Queryable } from './pool.js';
import { storedBytesSql } from './usage-queries.js';

interface TagRow {
  name: string;
  digest: string;
  updated_at: number;
}

const toTag = (row: TagRow): StoredTag => ({ name: row.name, digest: row.digest, pushedAt: row.updated_at });
const REPOSITORY = '(SELECT id FROM repositories WHERE name = $1)';

export class PostgresBrowseStore implements BrowseStore {
  constructor(private readonly db: Queryable) {}

  async repositoryNames(page: { search?: string; after?: string; limit: number }): Promise<string[]> {
    const { rows } = await this.db.query<{ name: string }>(
      'SELECT name FROM repositories WHERE name > $1 AND strpos(name, $2) > 0 ORDER BY name LIMIT $3',
      [page.after ?? '', (page.search ?? '').toLowerCase(), page.limit],
    );
    return rows.map((row) => row.name);
  }

  async repositorySummaries(names: string[]): Promise<RepositorySummary[]> {
    if (names.length === 0) return [];
    const { rows } = await this.db.query<{ name: string; tag_count: number; last: number | null; stored: number }>(
      `SELECT r.name, t.count AS tag_count, t.last, (${storedBytesSql('r.id')}) AS stored
       FROM repositories r CROSS JOIN LATERAL (SELECT COUNT(*) AS count, MAX(updated_at) AS last FROM tags WHERE repository_id = r.id) t
       WHERE r.name = ANY($1::text[])`,
      [names],
    );
    const byName = new Map(rows.map((row) => [row.name, { name: row.name, tagCount: row.tag_count, lastPushAt: row.last, storedBytes: row.stored }]));
    return names.flatMap((name) => byName.get(name) ?? []);
  }

  async tagsVersion(repository: string): Promise<number> {
    const { rows } = await this.db.query<{ seq: number | null }>('SELECT MAX(seq) AS seq FROM events WHERE repository = $1', [repository]);
    return rows[0]?.seq ?? 0;
  }

  async countTags(repository: string, search?: string): Promise<number> {
    const { rows } = await this.db.query<{ count: number }>(`SELECT COUNT(*) AS count FROM tags WHERE repository_id = ${REPOSITORY} AND strpos(name, $2) > 0`, [
      repository,
      search ?? '',
    ]);
    return rows[0]!.count;
  }

  async tagPage(repository: string, page: TagPageRequest): Promise<StoredTag[]> {
    const search = page.search ?? '';
    if (page.order === 'name') {
      const { rows } = await this.db.query<TagRow>(
        `SELECT name, digest, updated_at FROM tags WHERE repository_id = ${REPOSITORY} AND name > $2 AND strpos(name, $3) > 0 ORDER BY name LIMIT $4`,
        [repository, page.after?.name ?? '', search, page.limit],
      );
      return rows.map(toTag);
    }
    const { rows } = page.after
      ? await this.db.query<TagRow>(
          `SELECT name, digest, updated_at FROM tags WHERE repository_id = ${REPOSITORY} AND (updated_at, name) < ($2, $3)
           AND strpos(name, $4) > 0 ORDER BY updated_at DESC, name DESC LIMIT $5`,
          [repository, page.after.pushedAt, page.after.name, search, page.limit],
        )
      : await this.db.query<TagRow>(
          `SELECT name, digest, updated_at FROM tags WHERE repository_id = ${REPOSITORY} AND strpos(name, $2) > 0
           ORDER BY updated_at DESC, name DESC LIMIT $3`,
          [repository, search, page.limit],
        );
    return rows.map(toTag);
  }

  async tagNames(repository: string, search?: string): Promise<string[]> {
    const { rows } = await this.db.query<{ name: string }>(`SELECT name FROM tags WHERE repository_id = ${REPOSITORY} AND strpos(name, $2) > 0`, [
      repository,
      search ?? '',
    ]);
    return rows.map((row) => row.name);
  }

  async tagsByName(repository: string, names: string[]): Promise<StoredTag[]> {
    if (names.length === 0) return [];
    const { rows } = await this.db.query<TagRow>(`SELECT name, digest, updated_at FROM tags WHERE repository_id = ${REPOSITORY} AND name = ANY($2::text[])`, [
      repository,
      names,
    ]);
    return rows.map(toTag);
  }

  async tagsOfDigest(repository: string, digest: string): Promise<string[]> {
    const { rows } = await this.db.query<{ name: string }>(`SELECT name FROM tags WHERE repository_id = ${REPOSITORY} AND digest = $2 ORDER BY name`, [
      repository,
      digest,
    ]);
    return rows.map((row) => row.name);
  }

  async manifestSummaries(repository: string, digests: string[]): Promise<ManifestSummary[]> {
    const summaries: ManifestSummary[] = [];
    for (const digest of new Set(digests)) {
      // The manifest, and everything pulling it downloads: child manifests (any depth) and the distinct blobs of all of them.
      const { rows } = await this.db.query<{ digest: string; media_type: string; artifact_type: string | null; content: Buffer; total_size: number }>(
        `WITH RECURSIVE reach(digest) AS (
           SELECT l.digest FROM repository_manifests l WHERE l.repository_id = ${REPOSITORY} AND l.digest = $2
           UNION SELECT mr.target_digest FROM manifest_references mr JOIN reach ON mr.manifest_digest = reach.digest WHERE mr.kind = 'manifest'
         )
         SELECT m.digest, m.media_type, m.artifact_type, m.content,
           (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE digest IN (SELECT digest FROM reach))
           + (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE digest IN
               (SELECT target_digest FROM manifest_references WHERE kind = 'blob' AND manifest_digest IN (SELECT digest FROM reach))) AS total_size
         FROM manifests m WHERE m.digest = $2 AND EXISTS (SELECT 1 FROM reach)`,
        [repository, digest],
      );
      const row = rows[0];
      if (row) summaries.push({ digest: row.digest, mediaType: row.media_type, artifactType: row.artifact_type, content: row.content, totalSize: row.total_size });
    }
    return summaries;
  }

  async lastPushes(repository: string, tags: string[]): Promise<Map<string, TagPush>> {
    const pushes = new Map<string, TagPush>();
    if (tags.length === 0) return pushes;
    const { rows } = await this.db.query<{ tag: string; actor_name: string; actor_kind: Actor['kind']; created_at: number }>(
      `SELECT t.tag, e.actor_name, e.actor_kind, e.created_at FROM unnest($2::text[]) AS t(tag)
       CROSS JOIN LATERAL (SELECT actor_name, actor_kind, created_at FROM events
         WHERE repository = $1 AND tag = t.tag AND type IN ('tag.created', 'tag.updated') ORDER BY seq DESC LIMIT 1) e`,
      [repository, [...new Set(tags)]],
    );
    for (const row of rows) pushes.set(row.tag, { actor: { name: row.actor_name, kind: row.actor_kind }, at: row.created_at });
    return pushes;
  }
}
