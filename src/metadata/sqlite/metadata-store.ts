/**
 * The embedded metadata store: SQLite in WAL mode through better-sqlite3, every query a
 * prepared statement. better-sqlite3 is synchronous; the async signatures are the port's,
 * so that a PostgreSQL store can implement the same interface.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { RegistryError } from '../../registry/errors.js';
import type { RegistryEvent } from '../../registry/events.js';
import type {
  Actor,
  ManifestDeleteState,
  ManifestPutGuard,
  ManifestPutResult,
  ManifestRecord,
  MetadataStore,
  NewManifest,
  PageRequest,
  ReferrerRecord,
  BlobLinkGuard,
  RepositoryBlob,
  UploadLease,
  UploadRecord,
  UploadUpdate,
} from '../../registry/ports.js';
import { migrate } from './migrations.js';
import { prepareOutbox, type Outbox, type OutboxEvent } from './outbox.js';
import { SqliteUploads } from './uploads.js';
import { REPOSITORY_HELD_BYTES_SQL } from './usage-queries.js';
import { toManifestRecord, type ManifestRow } from '../rows.js';

/** SQLite's default limit on bound parameters is 32766; stay well below it per query. */

export class SqliteMetadataStore implements MetadataStore {
  readonly db: Database.Database;
  /** The migrations opening this database applied (none when it was up to date). */
  readonly migrationsApplied: string[];
  private readonly statements;
  private readonly uploads: SqliteUploads;
  private readonly outbox: Outbox;

  constructor(file: string) {
    if (file !== ':memory:') makePrivate(file);
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrationsApplied = migrate(this.db);
    this.statements = prepareStatements(this.db);
    this.uploads = new SqliteUploads(this.db);
    this.outbox = prepareOutbox(this.db);
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return this.statements.repositoryId.get(repository) !== undefined;
  }

  async listRepositories(page: PageRequest): Promise<string[]> {
    return this.statements.listRepositories.all(page.after ?? '', page.limit ?? -1) as string[];
  }

  async getBlob(digest: string): Promise<RepositoryBlob | null> {
    return (this.statements.getBlob.get(digest) as RepositoryBlob | undefined) ?? null;
  }

  async getRepositoryBlob(repository: string, digest: string): Promise<RepositoryBlob | null> {
    return (this.statements.getRepositoryBlob.get(repository, digest) as RepositoryBlob | undefined) ?? null;
  }

  async linkBlob(repository: string, blob: RepositoryBlob, actor: Actor, claim?: string, guard: BlobLinkGuard = {}): Promise<void> {
    this.db.transaction(() => {
      const now = Date.now();
      if (this.statements.blobDeletingSince.get(blob.digest) != null) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${blob.digest} is being deleted by garbage collection`, { digest: blob.digest });
      }
      const existingId = this.statements.repositoryId.get(repository) as number | undefined;
      const bytesBefore = guard.quota && existingId !== undefined ? this.heldBytes(existingId) : 0;
      const repositoryId = this.ensureRepository(repository, actor, now);
      this.statements.insertBlob.run(blob.digest, blob.size, now);
      this.statements.linkBlob.run(repositoryId, blob.digest, now);
      // Throwing here rolls the link (and a repository it created) back.
      guard.quota?.({ before: bytesBefore, after: this.heldBytes(repositoryId) });
      if (claim !== undefined) this.statements.deleteClaim.run(claim);
    })();
  }

  async claimBlob(digest: string): Promise<string | null> {
    return this.db.transaction((): string | null => {
      if (this.statements.blobDeletingSince.get(digest) != null) return null;
      const id = randomUUID();
      this.statements.insertClaim.run(id, digest, Date.now());
      return id;
    })();
  }

  async releaseBlobClaim(claim: string): Promise<void> {
    this.statements.deleteClaim.run(claim);
  }

  async unlinkBlob(repository: string, digest: string): Promise<boolean> {
    return this.statements.unlinkBlob.run(repository, digest).changes > 0;
  }

  async repositoriesWithBlob(digest: string, limit: number): Promise<string[]> {
    return this.statements.repositoriesWithBlob.all(digest, limit) as string[];
  }

  async createUpload(upload: UploadRecord): Promise<void> {
    this.uploads.create(upload);
  }

  async getUpload(id: string): Promise<UploadRecord | null> {
    return this.uploads.get(id);
  }

  async leaseUpload(id: string, writer: string, ttlMs: number): Promise<UploadLease> {
    return this.uploads.lease(id, writer, ttlMs);
  }

  async saveUpload(id: string, writer: string, update: UploadUpdate): Promise<boolean> {
    return this.uploads.save(id, writer, update);
  }

  async releaseUpload(id: string, writer: string): Promise<void> {
    this.uploads.release(id, writer);
  }

  async deleteUpload(id: string): Promise<void> {
    this.uploads.delete(id);
  }

  async missingBlobs(repository: string, digests: string[]): Promise<string[]> {
    return this.unlinked(this.statements.linkedBlobDigests, repository, digests);
  }

  async missingManifests(repository: string, digests: string[]): Promise<string[]> {
    return this.unlinked(this.statements.linkedManifestDigests, repository, digests);
  }

  async putManifest(
    repository: string,
    manifest: NewManifest,
    tag: string | null,
    actor: Actor,
    guard: ManifestPutGuard = {},
  ): Promise<ManifestPutResult> {
    return this.db.transaction((): ManifestPutResult => {
      const now = Date.now();
      // Checked here, in the transaction that records the manifest, so that a garbage collection
      // deleting a referenced blob either ran before (the push fails) or after (the blob is kept).
      this.checkReferencesLinked(repository, manifest);
      const existingId = this.statements.repositoryId.get(repository) as number | undefined;
      const existed = existingId !== undefined;
      // What the tag points at before this push: nothing below changes it until the upsert.
      const previousTagDigest = tag !== null && existed ? ((this.statements.tagDigest.get(existingId, tag) as string | undefined) ?? null) : null;
      if (tag !== null) guard.tag?.(previousTagDigest);
      const bytesBefore = guard.quota && existed ? this.heldBytes(existingId) : 0;
      const repositoryId = this.ensureRepository(repository, actor, now);
      const inserted = this.statements.insertManifest.run(
        manifest.digest,
        manifest.mediaType,
        manifest.size,
        manifest.content,
        manifest.subject,
        manifest.artifactType,
        manifest.annotations ? JSON.stringify(manifest.annotations) : null,
        now,
      );
      if (inserted.changes > 0) {
        for (const reference of manifest.references) {
          this.statements.insertReference.run(manifest.digest, reference.digest, reference.kind);
        }
      }
      this.statements.linkManifest.run(repositoryId, manifest.digest, now);
      guard.quota?.({ before: bytesBefore, after: this.heldBytes(repositoryId) });

      if (tag !== null && previousTagDigest !== manifest.digest) {
        this.statements.upsertTag.run(repositoryId, tag, manifest.digest, now);
        this.recordEvent(
          {
            type: previousTagDigest === null ? 'tag.created' : 'tag.updated',
            repository,
            tag,
            digest: manifest.digest,
            mediaType: manifest.mediaType,
            size: manifest.size,
            previousDigest: previousTagDigest,
            actor,
          },
          now,
        );
      }
      return { repositoryCreated: !existed, previousTagDigest };
    })();
  }

  async getManifest(repository: string, digest: string): Promise<ManifestRecord | null> {
    const row = this.statements.getManifest.get(repository, digest) as ManifestRow | undefined;
    return row ? toManifestRecord(row) : null;
  }

  async getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | null> {
    const digest = this.statements.resolveTag.get(repository, tag) as string | undefined;
    return digest === undefined ? null : this.getManifest(repository, digest);
  }

  async resolveTag(repository: string, tag: string): Promise<string | null> {
    return (this.statements.resolveTag.get(repository, tag) as string | undefined) ?? null;
  }

  async deleteManifest(
    repository: string,
    digest: string,
    actor: Actor,
    guard?: (state: ManifestDeleteState) => void,
  ): Promise<string[] | null> {
    return this.db.transaction((): string[] | null => {
      const repositoryId = this.statements.repositoryId.get(repository) as number | undefined;
      if (repositoryId === undefined) return null;
      const manifest = this.statements.getManifest.get(repository, digest) as ManifestRow | undefined;
      if (!manifest) return null;
      const now = Date.now();
      const tags = this.statements.tagsForDigest.all(repositoryId, digest) as string[];
      guard?.({ tags, referencedBy: this.statements.referencingIndexes.all(repositoryId, digest, digest) as string[] });
      for (const tag of tags) {
        this.statements.deleteTag.run(repositoryId, tag);
        this.recordEvent({ type: 'tag.deleted', repository, tag, digest, mediaType: manifest.media_type, size: manifest.size, actor }, now);
      }
      this.statements.unlinkManifest.run(repositoryId, digest);
      this.recordEvent({ type: 'manifest.deleted', repository, digest, mediaType: manifest.media_type, size: manifest.size, actor }, now);
      return tags;
    })();
  }

  async deleteTag(repository: string, tag: string, actor: Actor): Promise<boolean> {
    return this.db.transaction((): boolean => {
      const repositoryId = this.statements.repositoryId.get(repository) as number | undefined;
      if (repositoryId === undefined) return false;
      const digest = this.statements.tagDigest.get(repositoryId, tag) as string | undefined;
      if (digest === undefined) return false;
      this.statements.deleteTag.run(repositoryId, tag);
      this.recordEvent({ type: 'tag.deleted', repository, tag, digest, actor }, Date.now());
      return true;
    })();
  }

  async listTags(repository: string, page: PageRequest): Promise<string[]> {
    return this.statements.listTags.all(repository, page.after ?? '', page.limit ?? -1) as string[];
  }

  async listReferrers(repository: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]> {
    const rows = this.statements.listReferrers.all(repository, subject) as Array<{
      digest: string;
      media_type: string;
      size: number;
      artifact_type: string | null;
      annotations: string | null;
    }>;
    return rows
      .filter((row) => artifactType === undefined || row.artifact_type === artifactType)
      .map((row) => ({
        digest: row.digest,
        mediaType: row.media_type,
        size: row.size,
        artifactType: row.artifact_type,
        annotations: row.annotations ? (JSON.parse(row.annotations) as Record<string, string>) : null,
      }));
  }

  async readEvents(afterSeq: number, limit: number): Promise<RegistryEvent[]> {
    return this.outbox.read(afterSeq, limit);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  /** Returns the repository's id, creating it (and its event) on first use. */
  private ensureRepository(repository: string, actor: Actor, now: number): number {
    const existing = this.statements.repositoryId.get(repository) as number | undefined;
    if (existing !== undefined) return existing;
    const id = Number(this.statements.insertRepository.run(repository, now).lastInsertRowid);
    this.recordEvent({ type: 'repository.created', repository, actor }, now);
    return id;
  }

  private recordEvent(event: OutboxEvent, now: number): void {
    this.outbox.record(event, now);
  }

  /** What the repository holds, as quotas count it. */
  private heldBytes(repositoryId: number): number {
    return this.statements.heldBytes.get({ repositoryId }) as number;
  }

  private checkReferencesLinked(repository: string, manifest: NewManifest): void {
    const blobs = manifest.references.filter((r) => r.kind === 'blob').map((r) => r.digest);
    const missingBlobs = this.unlinked(this.statements.linkedBlobDigests, repository, blobs);
    if (missingBlobs.length) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${missingBlobs[0]} is not in repository ${repository}`, { digests: missingBlobs });
    }
    const children = manifest.references.filter((r) => r.kind === 'manifest').map((r) => r.digest);
    const missingChildren = this.unlinked(this.statements.linkedManifestDigests, repository, children);
    if (missingChildren.length) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `index references manifest ${missingChildren[0]}, which is not in repository ${repository}`,
        { digests: missingChildren },
      );
    }
  }

  /** Which of `digests` (each once, in order) the statement does not find linked in the repository. */
  private unlinked(linked: Database.Statement, repository: string, digests: string[]): string[] {
    if (digests.length === 0) return [];
    const unique = [...new Set(digests)];
    // One bound JSON array: any number of digests, and one statement prepared once.
    const found = new Set(linked.all(repository, JSON.stringify(unique)) as string[]);
    return unique.filter((digest) => !found.has(digest));
  }
}

function prepareStatements(db: Database.Database) {
  return {
    repositoryId: db.prepare('SELECT id FROM repositories WHERE name = ?').pluck(),
    linkedBlobDigests: db
      .prepare(
        `SELECT l.digest FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id
         WHERE r.name = ? AND l.digest IN (SELECT value FROM json_each(?))`,
      )
      .pluck(),
    linkedManifestDigests: db
      .prepare(
        `SELECT l.digest FROM repository_manifests l JOIN repositories r ON r.id = l.repository_id
         WHERE r.name = ? AND l.digest IN (SELECT value FROM json_each(?))`,
      )
      .pluck(),
    insertRepository: db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?)'),
    listRepositories: db.prepare('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?').pluck(),
    getBlob: db.prepare('SELECT digest, size FROM blobs WHERE digest = ?'),
    getRepositoryBlob: db.prepare(
      `SELECT b.digest, b.size FROM repository_blobs l
       JOIN repositories r ON r.id = l.repository_id JOIN blobs b ON b.digest = l.digest
       WHERE r.name = ? AND l.digest = ?`,
    ),
    blobDeletingSince: db.prepare('SELECT deleting_since FROM blobs WHERE digest = ?').pluck(),
    insertClaim: db.prepare('INSERT INTO blob_claims (id, digest, claimed_at) VALUES (?, ?, ?)'),
    deleteClaim: db.prepare('DELETE FROM blob_claims WHERE id = ?'),
    heldBytes: db.prepare(REPOSITORY_HELD_BYTES_SQL).pluck(),
    referencingIndexes: db.prepare(
      `SELECT DISTINCT mr.manifest_digest FROM manifest_references mr
       JOIN repository_manifests rm ON rm.digest = mr.manifest_digest AND rm.repository_id = ?
       WHERE mr.target_digest = ? AND mr.kind = 'manifest' AND mr.manifest_digest <> ? ORDER BY mr.manifest_digest`,
    ).pluck(),
    insertBlob: db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING'),
    linkBlob: db.prepare(
      `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?)
       ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`,
    ),
    unlinkBlob: db.prepare(
      'DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?',
    ),
    repositoriesWithBlob: db.prepare(
      `SELECT r.name FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id
       WHERE l.digest = ? ORDER BY r.name LIMIT ?`,
    ).pluck(),
    insertManifest: db.prepare(
      `INSERT INTO manifests (digest, media_type, size, content, subject, artifact_type, annotations, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
    ),
    insertReference: db.prepare(
      'INSERT INTO manifest_references (manifest_digest, target_digest, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    linkManifest: db.prepare(
      `INSERT INTO repository_manifests (repository_id, digest, pushed_at) VALUES (?, ?, ?)
       ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at`,
    ),
    unlinkManifest: db.prepare('DELETE FROM repository_manifests WHERE repository_id = ? AND digest = ?'),
    getManifest: db.prepare(
      `SELECT m.digest, m.media_type, m.size, m.content, m.subject, m.artifact_type
       FROM repository_manifests l JOIN repositories r ON r.id = l.repository_id
       JOIN manifests m ON m.digest = l.digest
       WHERE r.name = ? AND l.digest = ?`,
    ),
    tagDigest: db.prepare('SELECT digest FROM tags WHERE repository_id = ? AND name = ?').pluck(),
    tagsForDigest: db.prepare('SELECT name FROM tags WHERE repository_id = ? AND digest = ? ORDER BY name').pluck(),
    resolveTag: db.prepare(
      'SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = ? AND t.name = ?',
    ).pluck(),
    upsertTag: db.prepare(
      `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
    ),
    deleteTag: db.prepare('DELETE FROM tags WHERE repository_id = ? AND name = ?'),
    listTags: db.prepare(
      `SELECT t.name FROM tags t WHERE t.repository_id = (SELECT id FROM repositories WHERE name = ?)
       AND t.name > ? ORDER BY t.name LIMIT ?`,
    ).pluck(),
    listReferrers: db.prepare(
      `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
       FROM manifests m JOIN repository_manifests l ON l.digest = m.digest
       JOIN repositories r ON r.id = l.repository_id
       WHERE r.name = ? AND m.subject = ? ORDER BY m.digest`,
    ),
  };
}

/**
 * The database holds account data and webhook secrets: created 0600 in a 0700 folder whatever
 * the umask (SQLite gives its -wal and -shm files the database's mode), and an existing one
 * (and its -wal, -shm) that others could read is narrowed to 0640 at most.
 */
function makePrivate(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  for (const candidate of [file, `${file}-wal`, `${file}-shm`]) {
    let mode: number;
    try {
      mode = fs.statSync(candidate).mode & 0o777;
    } catch {
      continue;
    }
    if ((mode & 0o027) !== 0) fs.chmodSync(candidate, mode & 0o740);
  }
}
