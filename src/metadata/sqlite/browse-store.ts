/**
 * The SQLite BrowseStore: the reads of the web interface and the browsing API. Every page is
 * an index range scan (repositories by name; tags by (repository, name) or by the
 * `tags_by_update` index, whose entries end with the tag name, so push order is keyset-paged
 * too); pushers are the newest tag event of (repository, tag) through `events_by_tag`, and a
 * repository's tag version its newest event through `events_by_repository`. Searches are
 * substrings (instr, no pattern characters to escape).
 */
import type Database from 'better-sqlite3';
import type { BrowseStore, ManifestSummary, RepositorySummary, StoredTag, TagPageRequest, TagPush } from '../../registry/browse-store.js';
import type { Actor } from '../../registry/ports.js';
import { REPOSITORY_STORED_BYTES_SQL } from './usage-queries.js';

interface TagRow {
  name: string;
  digest: string;
  updated_at: number;
}

const toTag = (row: TagRow): StoredTag => ({ name: row.name, digest: row.digest, pushedAt: row.updated_at });

export class SqliteBrowseStore implements BrowseStore {
  private readonly statements;

  constructor(db: Database.Database) {
    this.statements = prepareStatements(db);
  }

  async repositoryNames(page: { search?: string; after?: string; limit: number }): Promise<string[]> {
    if (!page.search) return this.statements.repositoryNames.all(page.after ?? '', page.limit) as string[];
    return this.statements.repositoryNamesContaining.all(page.after ?? '', page.search.toLowerCase(), page.limit) as string[];
  }

  async repositorySummaries(names: string[]): Promise<RepositorySummary[]> {
    const summaries: RepositorySummary[] = [];
    for (const name of names) {
      const id = this.statements.repositoryId.get(name) as number | undefined;
      if (id === undefined) continue;
      const tags = this.statements.tagStats.get(id) as { count: number; last: number | null };
      summaries.push({ name, tagCount: tags.count, lastPushAt: tags.last, storedBytes: this.statements.storedBytes.get({ repositoryId: id }) as number });
    }
    return summaries;
  }

  async tagsVersion(repository: string): Promise<number> {
    return (this.statements.latestEvent.get(repository) as number | null) ?? 0;
  }

  async countTags(repository: string, search?: string): Promise<number> {
    return (search ? this.statements.countTagsContaining.get(repository, search) : this.statements.countTags.get(repository)) as number;
  }

  async tagPage(repository: string, page: TagPageRequest): Promise<StoredTag[]> {
    const search = page.search ?? '';
    if (page.order === 'name') return (this.statements.tagsByName.all(repository, page.after?.name ?? '', search, page.limit) as TagRow[]).map(toTag);
    // Push order walks tags_by_update, which holds (updated_at, name) but not the digest: the
    // page's keys come from the index alone (no row read per tag skipped), then its rows by name.
    const keys = (
      page.after
        ? this.statements.tagKeysByPushAfter.all(repository, page.after.pushedAt, page.after.name, search, page.limit)
        : this.statements.tagKeysByPush.all(repository, search, page.limit)
    ) as string[];
    const rows = new Map((await this.tagsByName(repository, keys)).map((tag) => [tag.name, tag]));
    return keys.flatMap((name) => rows.get(name) ?? []);
  }

  async tagNames(repository: string, search?: string): Promise<string[]> {
    return this.statements.tagNames.all(repository, search ?? '') as string[];
  }

  async tagsByName(repository: string, names: string[]): Promise<StoredTag[]> {
    if (names.length === 0) return [];
    return (this.statements.namedTags.all(repository, JSON.stringify(names)) as TagRow[]).map(toTag);
  }

  async tagsOfDigest(repository: string, digest: string): Promise<string[]> {
    return this.statements.tagsOfDigest.all(repository, digest) as string[];
  }

  async manifestSummaries(repository: string, digests: string[]): Promise<ManifestSummary[]> {
    const summaries: ManifestSummary[] = [];
    for (const digest of new Set(digests)) {
      const row = this.statements.manifest.get({ repository, digest }) as
        | { digest: string; media_type: string; artifact_type: string | null; content: Buffer; total_size: number }
        | undefined;
      if (row) summaries.push({ digest: row.digest, mediaType: row.media_type, artifactType: row.artifact_type, content: row.content, totalSize: row.total_size });
    }
    return summaries;
  }

  async lastPushes(repository: string, tags: string[]): Promise<Map<string, TagPush>> {
    const pushes = new Map<string, TagPush>();
    for (const tag of new Set(tags)) {
      const row = this.statements.lastPush.get(repository, tag) as { actor_name: string; actor_kind: Actor['kind']; created_at: number } | undefined;
      if (row) pushes.set(tag, { actor: { name: row.actor_name, kind: row.actor_kind }, at: row.created_at });
    }
    return pushes;
  }
}

const REPOSITORY = '(SELECT id FROM repositories WHERE name = ?)';

function prepareStatements(db: Database.Database) {
  return {
    repositoryId: db.prepare('SELECT id FROM repositories WHERE name = ?').pluck(),
    repositoryNames: db.prepare('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?').pluck(),
    repositoryNamesContaining: db.prepare('SELECT name FROM repositories WHERE name > ? AND instr(name, ?) > 0 ORDER BY name LIMIT ?').pluck(),
    tagStats: db.prepare('SELECT COUNT(*) AS count, MAX(updated_at) AS last FROM tags WHERE repository_id = ?'),
    storedBytes: db.prepare(REPOSITORY_STORED_BYTES_SQL).pluck(),
    latestEvent: db.prepare('SELECT MAX(seq) FROM events WHERE repository = ?').pluck(),
    countTags: db.prepare(`SELECT COUNT(*) FROM tags WHERE repository_id = ${REPOSITORY}`).pluck(),
    countTagsContaining: db.prepare(`SELECT COUNT(*) FROM tags WHERE repository_id = ${REPOSITORY} AND instr(name, ?) > 0`).pluck(),
    // instr(name, '') is 1: an empty search matches every tag.
    tagsByName: db.prepare(
      `SELECT name, digest, updated_at FROM tags WHERE repository_id = ${REPOSITORY} AND name > ? AND instr(name, ?) > 0 ORDER BY name LIMIT ?`,
    ),
    tagKeysByPush: db
      .prepare(
        `SELECT name FROM tags INDEXED BY tags_by_update WHERE repository_id = ${REPOSITORY} AND instr(name, ?) > 0
         ORDER BY updated_at DESC, name DESC LIMIT ?`,
      )
      .pluck(),
    tagKeysByPushAfter: db
      .prepare(
        `SELECT name FROM tags INDEXED BY tags_by_update WHERE repository_id = ${REPOSITORY}
         AND (updated_at, name) < (?, ?) AND instr(name, ?) > 0 ORDER BY updated_at DESC, name DESC LIMIT ?`,
      )
      .pluck(),
    tagNames: db.prepare(`SELECT name FROM tags WHERE repository_id = ${REPOSITORY} AND instr(name, ?) > 0`).pluck(),
    namedTags: db.prepare(
      `SELECT name, digest, updated_at FROM tags WHERE repository_id = ${REPOSITORY} AND name IN (SELECT value FROM json_each(?))`,
    ),
    tagsOfDigest: db.prepare(`SELECT name FROM tags WHERE repository_id = ${REPOSITORY} AND digest = ? ORDER BY name`).pluck(),
    // The manifest, and everything pulling it downloads: child manifests (any depth) and the distinct blobs of all of them.
    manifest: db.prepare(
      `WITH RECURSIVE reach(digest) AS (
         SELECT l.digest FROM repository_manifests l WHERE l.repository_id = (SELECT id FROM repositories WHERE name = @repository) AND l.digest = @digest
         UNION SELECT mr.target_digest FROM manifest_references mr JOIN reach ON mr.manifest_digest = reach.digest WHERE mr.kind = 'manifest'
       )
       SELECT m.digest, m.media_type, m.artifact_type, m.content,
         (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE digest IN reach)
         + (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE digest IN
             (SELECT target_digest FROM manifest_references WHERE kind = 'blob' AND manifest_digest IN reach)) AS total_size
       FROM manifests m WHERE m.digest = @digest AND EXISTS (SELECT 1 FROM reach)`,
    ),
    lastPush: db.prepare(
      `SELECT actor_name, actor_kind, created_at FROM events
       WHERE repository = ? AND tag = ? AND type IN ('tag.created', 'tag.updated') ORDER BY seq DESC LIMIT 1`,
    ),
  };
}
