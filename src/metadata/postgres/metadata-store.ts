/**
 * The MetadataStore on PostgreSQL, for N replicas. Under READ COMMITTED the SQLite store's
 * check-then-write steps would race, so every change follows one locking discipline:
 * - a change to a repository locks its row first (repositories.ts);
 * - a push takes FOR SHARE on the blob rows it references while it checks them, so a
 *   collection (which marks with FOR UPDATE SKIP LOCKED and re-checks) cannot mark a blob a
 *   push is about to reference, and a push waiting for a marking collection sees the mark;
 * - a digest without a row is guarded by a transaction-level advisory lock (claims, links and
 *   orphan marks of it take turns);
 * - outbox events are written last, under the outbox lock (outbox.ts).
 * Lock order, always: digest advisory lock → repository row → blob rows; collections never wait
 * for a row lock (SKIP LOCKED), so there is no cycle.
 */
import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../registry/errors.js';
import type { RegistryEvent } from '../../registry/events.js';
import type {
  Actor,
  BlobLinkGuard,
  ManifestDeleteState,
  ManifestPutGuard,
  ManifestPutResult,
  ManifestRecord,
  MetadataStore,
  NewManifest,
  PageRequest,
  ReferrerRecord,
  RepositoryBlob,
  UploadLease,
  UploadRecord,
  UploadUpdate,
} from '../../registry/ports.js';
import { readEvents, writeEvents, type EventInput } from './outbox.js';
import { LOCKS, NOW_MS, queryPrepared, transaction, type Pool, type PreparedStatement, type Queryable } from './pool.js';
import { lockOrCreateRepository, lockRepository } from './repositories.js';
import type { ReadCache } from './read-cache.js';
import { PostgresUploads } from './uploads.js';
import { heldBytesSql } from './usage-queries.js';
import { toManifestRecord, type ManifestRow } from '../rows.js';

/** Points where tests hold a transaction open to force an interleaving with another replica. */
export interface MetadataHooks {
  /** In putManifest, after the references were checked (and share-locked), before anything is written. */
  afterReferenceCheck?(repository: string, digests: string[]): Promise<void>;
  /** After a transaction wrote its outbox events, before it commits. */
  afterEvents?(events: EventInput[]): Promise<void>;
}

const HELD_BYTES = heldBytesSql('$1');

const MANIFEST_COLUMNS = 'm.digest, m.media_type, m.size, m.content, m.subject, m.artifact_type';
const LINKED_MANIFEST = `SELECT ${MANIFEST_COLUMNS}
     FROM repository_manifests l JOIN repositories r ON r.id = l.repository_id
     JOIN manifests m ON m.digest = l.digest
     WHERE r.name = $1 AND l.digest = $2`;

/**
 * The reads of every pull and of a push's existence checks, prepared once per connection: a
 * manifest GET by tag is one round trip of Bind and Execute, with no parse or plan on the server.
 */
const HOT = {
  repositoryExists: { name: 'repository-exists', text: 'SELECT 1 FROM repositories WHERE name = $1' },
  repositoryBlob: {
    name: 'repository-blob',
    text: `SELECT b.digest, b.size FROM repository_blobs l
       JOIN repositories r ON r.id = l.repository_id JOIN blobs b ON b.digest = l.digest
       WHERE r.name = $1 AND l.digest = $2`,
  },
  resolveTag: { name: 'resolve-tag', text: 'SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name = $2' },
  linkedManifest: { name: 'linked-manifest', text: LINKED_MANIFEST },
  taggedManifest: {
    name: 'tagged-manifest',
    text: `SELECT ${MANIFEST_COLUMNS}
     FROM tags t JOIN repositories r ON r.id = t.repository_id
     JOIN repository_manifests l ON l.repository_id = t.repository_id AND l.digest = t.digest
     JOIN manifests m ON m.digest = l.digest
     WHERE r.name = $1 AND t.name = $2`,
  },
} satisfies Record<string, PreparedStatement>;

/** Takes the advisory lock of a digest until the transaction ends. */
export async function lockDigest(client: Queryable, digest: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCKS.digest, digest]);
}

/** The blob row's mark, share-locked until the transaction ends (undefined: no row). */
async function shareBlob(client: Queryable, digest: string): Promise<{ deleting: boolean } | undefined> {
  const { rows } = await client.query<{ deleting_since: number | null }>('SELECT deleting_since FROM blobs WHERE digest = $1 FOR SHARE', [digest]);
  return rows[0] ? { deleting: rows[0].deleting_since !== null } : undefined;
}

export class PostgresMetadataStore implements MetadataStore {
  private readonly uploads: PostgresUploads;

  constructor(
    private readonly pool: Pool,
    /** Repository blob links as HEADs and pushes read them; forgotten when a link goes (read-cache.ts). */
    private readonly blobLinks: ReadCache,
    private readonly hooks: MetadataHooks = {},
  ) {
    this.uploads = new PostgresUploads(pool);
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return ((await queryPrepared(this.pool, HOT.repositoryExists, [repository])).rowCount ?? 0) > 0;
  }

  async listRepositories(page: PageRequest): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>('SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2', [
      page.after ?? '',
      page.limit ?? null,
    ]);
    return rows.map((row) => row.name);
  }

  async getBlob(digest: string): Promise<RepositoryBlob | null> {
    const { rows } = await this.pool.query<RepositoryBlob>('SELECT digest, size FROM blobs WHERE digest = $1', [digest]);
    return rows[0] ?? null;
  }

  async getRepositoryBlob(repository: string, digest: string): Promise<RepositoryBlob | null> {
    return this.blobLinks.get(`${repository}\n${digest}`, async () => {
      const { rows } = await queryPrepared<RepositoryBlob>(this.pool, HOT.repositoryBlob, [repository, digest]);
      return rows[0] ?? null;
    });
  }

  async linkBlob(repository: string, blob: RepositoryBlob, actor: Actor, claim?: string, guard: BlobLinkGuard = {}): Promise<void> {
    await this.write(async (client, events) => {
      await lockDigest(client, blob.digest);
      if ((await shareBlob(client, blob.digest))?.deleting) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${blob.digest} is being deleted by garbage collection`, { digest: blob.digest });
      }
      const { id, created } = await lockOrCreateRepository(client, repository, actor, events);
      const bytesBefore = guard.quota && !created ? await heldBytes(client, id) : 0;
      await client.query(`INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, ${NOW_MS}) ON CONFLICT (digest) DO NOTHING`, [blob.digest, blob.size]);
      await client.query(
        `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, ${NOW_MS})
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`,
        [id, blob.digest],
      );
      // Throwing here rolls the link (and a repository it created) back.
      guard.quota?.({ before: bytesBefore, after: await heldBytes(client, id) });
      if (claim !== undefined) await client.query('DELETE FROM blob_claims WHERE id = $1', [claim]);
    });
  }

  async claimBlob(digest: string): Promise<string | null> {
    return transaction(this.pool, async (client) => {
      // The advisory lock orders this claim with an orphan mark of the same digest (no row yet);
      // the share lock waits for a collection marking the row and then sees its mark.
      await lockDigest(client, digest);
      if ((await shareBlob(client, digest))?.deleting) return null;
      const id = randomUUID();
      await client.query(`INSERT INTO blob_claims (id, digest, claimed_at) VALUES ($1, $2, ${NOW_MS})`, [id, digest]);
      return id;
    });
  }

  async releaseBlobClaim(claim: string): Promise<void> {
    await this.pool.query('DELETE FROM blob_claims WHERE id = $1', [claim]);
  }

  async unlinkBlob(repository: string, digest: string): Promise<boolean> {
    return this.blobLinks.forgetAfter(async () => {
      const result = await this.pool.query(
        'DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2',
        [repository, digest],
      );
      return (result.rowCount ?? 0) > 0;
    });
  }

  async repositoriesWithBlob(digest: string, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT r.name FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id
       WHERE l.digest = $1 ORDER BY r.name LIMIT $2`,
      [digest, limit],
    );
    return rows.map((row) => row.name);
  }

  createUpload(upload: UploadRecord): Promise<void> {
    return this.uploads.create(upload);
  }

  getUpload(id: string): Promise<UploadRecord | null> {
    return this.uploads.get(id);
  }

  leaseUpload(id: string, writer: string, ttlMs: number): Promise<UploadLease> {
    return this.uploads.lease(id, writer, ttlMs);
  }

  saveUpload(id: string, writer: string, update: UploadUpdate): Promise<boolean> {
    return this.uploads.save(id, writer, update);
  }

  releaseUpload(id: string, writer: string): Promise<void> {
    return this.uploads.release(id, writer);
  }

  deleteUpload(id: string): Promise<void> {
    return this.uploads.delete(id);
  }

  async missingBlobs(repository: string, digests: string[]): Promise<string[]> {
    return unlinked(this.pool, 'repository_blobs', repository, digests);
  }

  async missingManifests(repository: string, digests: string[]): Promise<string[]> {
    return unlinked(this.pool, 'repository_manifests', repository, digests);
  }

  async putManifest(repository: string, manifest: NewManifest, tag: string | null, actor: Actor, guard: ManifestPutGuard = {}): Promise<ManifestPutResult> {
    return this.write(async (client, events) => {
      const { id, created } = await lockOrCreateRepository(client, repository, actor, events);
      await this.checkReferences(client, id, repository, manifest);
      const previousTagDigest = tag !== null && !created ? await tagDigest(client, id, tag) : null;
      if (tag !== null) guard.tag?.(previousTagDigest);
      const bytesBefore = guard.quota && !created ? await heldBytes(client, id) : 0;
      await insertManifest(client, manifest);
      await client.query(
        `INSERT INTO repository_manifests (repository_id, digest, pushed_at) VALUES ($1, $2, ${NOW_MS})
         ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at`,
        [id, manifest.digest],
      );
      guard.quota?.({ before: bytesBefore, after: await heldBytes(client, id) });
      if (tag !== null && previousTagDigest !== manifest.digest) {
        await client.query(
          `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, ${NOW_MS})
           ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
          [id, tag, manifest.digest],
        );
        events.push({
          type: previousTagDigest === null ? 'tag.created' : 'tag.updated',
          repository,
          tag,
          digest: manifest.digest,
          mediaType: manifest.mediaType,
          size: manifest.size,
          previousDigest: previousTagDigest,
          actor,
        });
      }
      return { repositoryCreated: created, previousTagDigest };
    });
  }

  async getManifest(repository: string, digest: string): Promise<ManifestRecord | null> {
    const row = (await queryPrepared<ManifestRow>(this.pool, HOT.linkedManifest, [repository, digest])).rows[0];
    return row ? toManifestRecord(row) : null;
  }

  async getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | null> {
    const row = (await queryPrepared<ManifestRow>(this.pool, HOT.taggedManifest, [repository, tag])).rows[0];
    return row ? toManifestRecord(row) : null;
  }

  async resolveTag(repository: string, tag: string): Promise<string | null> {
    const { rows } = await queryPrepared<{ digest: string }>(this.pool, HOT.resolveTag, [repository, tag]);
    return rows[0]?.digest ?? null;
  }

  async deleteManifest(repository: string, digest: string, actor: Actor, guard?: (state: ManifestDeleteState) => void): Promise<string[] | null> {
    return this.write(async (client, events) => {
      const id = await lockRepository(client, repository);
      if (id === null) return null;
      const manifest = await linkedManifest(client, repository, digest);
      if (!manifest) return null;
      const tags = (await client.query<{ name: string }>('SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 ORDER BY name', [id, digest])).rows.map(
        (row) => row.name,
      );
      const referencedBy = await client.query<{ manifest_digest: string }>(
        `SELECT DISTINCT mr.manifest_digest FROM manifest_references mr
         JOIN repository_manifests rm ON rm.digest = mr.manifest_digest AND rm.repository_id = $1
         WHERE mr.target_digest = $2 AND mr.kind = 'manifest' AND mr.manifest_digest <> $2 ORDER BY mr.manifest_digest`,
        [id, digest],
      );
      guard?.({ tags, referencedBy: referencedBy.rows.map((row) => row.manifest_digest) });
      await client.query('DELETE FROM tags WHERE repository_id = $1 AND digest = $2', [id, digest]);
      for (const tag of tags) events.push({ type: 'tag.deleted', repository, tag, digest, mediaType: manifest.media_type, size: manifest.size, actor });
      await client.query('DELETE FROM repository_manifests WHERE repository_id = $1 AND digest = $2', [id, digest]);
      events.push({ type: 'manifest.deleted', repository, digest, mediaType: manifest.media_type, size: manifest.size, actor });
      return tags;
    });
  }

  async deleteTag(repository: string, tag: string, actor: Actor): Promise<boolean> {
    return this.write(async (client, events) => {
      const id = await lockRepository(client, repository);
      if (id === null) return false;
      const { rows } = await client.query<{ digest: string }>('DELETE FROM tags WHERE repository_id = $1 AND name = $2 RETURNING digest', [id, tag]);
      if (!rows[0]) return false;
      events.push({ type: 'tag.deleted', repository, tag, digest: rows[0].digest, actor });
      return true;
    });
  }

  async listTags(repository: string, page: PageRequest): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT t.name FROM tags t WHERE t.repository_id = (SELECT id FROM repositories WHERE name = $1)
       AND t.name > $2 ORDER BY t.name LIMIT $3`,
      [repository, page.after ?? '', page.limit ?? null],
    );
    return rows.map((row) => row.name);
  }

  async listReferrers(repository: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]> {
    const { rows } = await this.pool.query<{ digest: string; media_type: string; size: number; artifact_type: string | null; annotations: string | null }>(
      `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
       FROM manifests m JOIN repository_manifests l ON l.digest = m.digest
       JOIN repositories r ON r.id = l.repository_id
       WHERE r.name = $1 AND m.subject = $2 AND ($3::text IS NULL OR m.artifact_type = $3) ORDER BY m.digest`,
      [repository, subject, artifactType ?? null],
    );
    return rows.map((row) => ({
      digest: row.digest,
      mediaType: row.media_type,
      size: row.size,
      artifactType: row.artifact_type,
      annotations: row.annotations ? (JSON.parse(row.annotations) as Record<string, string>) : null,
    }));
  }

  readEvents(afterSeq: number, limit: number): Promise<RegistryEvent[]> {
    return readEvents(this.pool, afterSeq, limit);
  }

  /** The pool belongs to the backend, which ends it. */
  async close(): Promise<void> {}

  /** A transaction that queues outbox events while it works and writes them last. */
  private write<T>(work: (client: Queryable, events: EventInput[]) => Promise<T>): Promise<T> {
    return transaction(this.pool, async (client) => {
      const events: EventInput[] = [];
      const result = await work(client, events);
      await writeEvents(client, events);
      if (events.length > 0) await this.hooks.afterEvents?.(events);
      return result;
    });
  }

  /**
   * Every referenced blob linked into the repository and not being deleted, share-locked until
   * commit, and every child manifest in it: checked in the transaction that records the push.
   */
  private async checkReferences(client: Queryable, repositoryId: number, repository: string, manifest: NewManifest): Promise<void> {
    const blobs = [...new Set(manifest.references.filter((r) => r.kind === 'blob').map((r) => r.digest))].sort();
    if (blobs.length > 0) {
      const { rows } = await client.query<{ digest: string }>(
        `SELECT b.digest FROM repository_blobs l JOIN blobs b ON b.digest = l.digest
         WHERE l.repository_id = $1 AND l.digest = ANY($2::text[]) AND b.deleting_since IS NULL
         ORDER BY b.digest FOR SHARE OF b`,
        [repositoryId, blobs],
      );
      const found = new Set(rows.map((row) => row.digest));
      const missing = blobs.filter((digest) => !found.has(digest));
      if (missing.length) {
        const inOrder = [...new Set(manifest.references.filter((r) => r.kind === 'blob' && missing.includes(r.digest)).map((r) => r.digest))];
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${inOrder[0]} is not in repository ${repository}`, { digests: inOrder });
      }
    }
    const children = [...new Set(manifest.references.filter((r) => r.kind === 'manifest').map((r) => r.digest))];
    if (children.length > 0) {
      const { rows } = await client.query<{ digest: string }>(
        'SELECT digest FROM repository_manifests WHERE repository_id = $1 AND digest = ANY($2::text[]) ORDER BY digest FOR SHARE',
        [repositoryId, children],
      );
      const found = new Set(rows.map((row) => row.digest));
      const missing = children.filter((digest) => !found.has(digest));
      if (missing.length) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `index references manifest ${missing[0]}, which is not in repository ${repository}`, {
          digests: missing,
        });
      }
    }
    await this.hooks.afterReferenceCheck?.(repository, blobs);
  }
}

/**
 * Stores the manifest's bytes and references once. An existing row is share-locked, so that a
 * collection purging manifests no repository holds cannot delete it under this push; when one
 * did just before, the row is written anew.
 */
async function insertManifest(client: Queryable, manifest: NewManifest): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const inserted = await client.query(
      `INSERT INTO manifests (digest, media_type, size, content, subject, artifact_type, annotations, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, ${NOW_MS}) ON CONFLICT (digest) DO NOTHING`,
      [
        manifest.digest,
        manifest.mediaType,
        manifest.size,
        manifest.content,
        manifest.subject,
        manifest.artifactType,
        manifest.annotations ? JSON.stringify(manifest.annotations) : null,
      ],
    );
    if ((inserted.rowCount ?? 0) > 0) {
      if (manifest.references.length > 0) {
        await client.query(
          `INSERT INTO manifest_references (manifest_digest, target_digest, kind)
           SELECT $1, d, k FROM unnest($2::text[], $3::text[]) AS r(d, k) ON CONFLICT DO NOTHING`,
          [manifest.digest, manifest.references.map((r) => r.digest), manifest.references.map((r) => r.kind)],
        );
      }
      return;
    }
    const kept = await client.query('SELECT 1 FROM manifests WHERE digest = $1 FOR SHARE', [manifest.digest]);
    if ((kept.rowCount ?? 0) > 0) return;
  }
  throw new Error(`manifest ${manifest.digest} was deleted repeatedly while being pushed; try again`);
}

async function heldBytes(client: Queryable, repositoryId: number): Promise<number> {
  return Number((await client.query<{ bytes: number }>(`SELECT (${HELD_BYTES}) AS bytes`, [repositoryId])).rows[0]!.bytes);
}

async function tagDigest(client: Queryable, repositoryId: number, tag: string): Promise<string | null> {
  const { rows } = await client.query<{ digest: string }>('SELECT digest FROM tags WHERE repository_id = $1 AND name = $2', [repositoryId, tag]);
  return rows[0]?.digest ?? null;
}

async function linkedManifest(db: Queryable, repository: string, digest: string): Promise<ManifestRow | undefined> {
  const { rows } = await db.query<ManifestRow>(LINKED_MANIFEST, [repository, digest]);
  return rows[0];
}

/** Which of `digests` (each once, in order) the link table does not hold for the repository. */
async function unlinked(db: Queryable, table: 'repository_blobs' | 'repository_manifests', repository: string, digests: string[]): Promise<string[]> {
  if (digests.length === 0) return [];
  const unique = [...new Set(digests)];
  const { rows } = await db.query<{ digest: string }>(
    `SELECT l.digest FROM ${table} l JOIN repositories r ON r.id = l.repository_id WHERE r.name = $1 AND l.digest = ANY($2::text[])`,
    [repository, unique],
  );
  const found = new Set(rows.map((row) => row.digest));
  return unique.filter((digest) => !found.has(digest));
}

