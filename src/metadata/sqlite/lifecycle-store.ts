/**
 * The SQLite LifecycleStore: the queries of garbage collection, retention, usage and fsck over
 * the registry database (shared with SqliteMetadataStore; `db` must be migrated). Mark and
 * sweep are set-based SQL inside short transactions; SQLite serialises them with every push.
 */
import type Database from 'better-sqlite3';
import type { EventType } from '../../registry/events.js';
import type {
  BlobCutoffs,
  BlobRecord,
  GcRunRecord,
  ImageRef,
  LeaseState,
  LifecycleStore,
  ManifestProblem,
  ManifestSweepPlan,
  ManifestSweepResult,
  RegistryUsage,
  RemovedManifest,
  RepositoryUsage,
  RetentionDrop,
  TagRecord,
} from '../../registry/lifecycle-store.js';
import type { Actor, UploadRecord } from '../../registry/ports.js';
import { DANGLING_TAGS_SQL, MANIFEST_PROBLEMS_SQL, REGISTRY_COUNTS_SQL } from '../rows.js';
import { prepareOutbox, type Outbox } from './outbox.js';
import { SqliteUploads } from './uploads.js';
import { REPOSITORY_BLOBS_SQL, REPOSITORY_HELD_BYTES_SQL, REPOSITORY_STORED_BYTES_SQL } from './usage-queries.js';

/** Index nesting is shallow in practice; the closure stops long before this. */
const MAX_CLOSURE_ROUNDS = 64;

/** Thrown inside a dry-run transaction to roll it back with the result in hand. */
class DryRunRollback extends Error {
  constructor(readonly result: ManifestSweepResult) {
    super('dry run');
  }
}

const UNREFERENCED_BLOBS_SQL = `
  SELECT b.digest, b.size FROM blobs b
  WHERE b.deleting_since IS NULL
    AND b.created_at < @graceCutoff
    AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.target_digest = b.digest)
    AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.linked_at >= @graceCutoff)
    AND NOT EXISTS (SELECT 1 FROM blob_claims c WHERE c.digest = b.digest AND c.claimed_at >= @claimCutoff)
  ORDER BY b.digest
  LIMIT @limit`;

export class SqliteLifecycleStore implements LifecycleStore {
  private readonly statements;
  private readonly uploads: SqliteUploads;
  private readonly outbox: Outbox;

  constructor(readonly db: Database.Database) {
    this.statements = prepare(db);
    this.uploads = new SqliteUploads(db);
    this.outbox = prepareOutbox(db);
  }

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseState> {
    return this.db.transaction((): LeaseState => {
      const now = Date.now();
      const current = this.statements.getLease.get(name) as { holder: string; acquired_at: number; expires_at: number } | undefined;
      if (current && current.expires_at > now && current.holder !== holder) {
        return { acquired: false, holder: current.holder, acquiredAt: current.acquired_at };
      }
      this.statements.putLease.run(name, holder, now, now + ttlMs);
      return { acquired: true, holder, acquiredAt: now };
    })();
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<void> {
    this.statements.renewLease.run(Date.now() + ttlMs, name, holder);
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    this.statements.deleteLease.run(name, holder);
  }

  async tagsOf(repository: string): Promise<TagRecord[]> {
    return (this.statements.tagsOf.all(repository) as Array<{ tag: string; digest: string; updated_at: number }>).map((row) => ({
      tag: row.tag,
      digest: row.digest,
      updatedAt: row.updated_at,
    }));
  }

  async sweepManifests(plan: ManifestSweepPlan): Promise<ManifestSweepResult> {
    const sweep = this.db.transaction((): ManifestSweepResult => {
      const result: ManifestSweepResult = { tagsDeleted: [], manifestsRemoved: [], manifestsPurged: [] };
      this.applyRetention(plan.retention, plan.actor, plan.now, result);
      this.sweepUnreachable(plan, result);
      result.manifestsPurged = this.statements.unlinkedManifests.all() as BlobRecord[];
      for (const manifest of result.manifestsPurged) this.statements.deleteManifestRow.run(manifest.digest);
      if (plan.dryRun) {
        const cutoffs = plan.blobCutoffs ?? { now: plan.now, graceCutoff: plan.graceCutoff, claimCutoff: plan.now };
        result.blobsToMark = this.statements.unreferencedBlobs.all({ ...cutoffs, limit: -1 }) as BlobRecord[];
        throw new DryRunRollback(result);
      }
      return result;
    });
    try {
      return sweep();
    } catch (error) {
      if (error instanceof DryRunRollback) return error.result;
      throw error;
    }
  }

  async markUnreferencedBlobs(cutoffs: BlobCutoffs, limit: number): Promise<BlobRecord[]> {
    return this.db.transaction((): BlobRecord[] => {
      const blobs = this.statements.unreferencedBlobs.all({ ...cutoffs, limit }) as BlobRecord[];
      for (const blob of blobs) this.mark(blob.digest, cutoffs.now);
      return blobs;
    })();
  }

  async digestsWithoutRecord(digests: string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    const found = new Set(this.statements.recordedDigests.all(JSON.stringify(digests)) as string[]);
    return digests.filter((digest) => !found.has(digest));
  }

  async markOrphans(blobs: BlobRecord[], cutoffs: BlobCutoffs): Promise<BlobRecord[]> {
    return this.db.transaction((): BlobRecord[] => {
      const marked: BlobRecord[] = [];
      for (const blob of blobs) {
        if (this.statements.liveClaims.get(blob.digest, cutoffs.claimCutoff) !== undefined) continue;
        // A row appearing meanwhile means someone committed and linked the content: leave it.
        if (this.statements.insertMarkedBlob.run(blob.digest, blob.size, cutoffs.now).changes > 0) marked.push(blob);
      }
      return marked;
    })();
  }

  async markBlobs(digests: string[]): Promise<BlobRecord[]> {
    return this.db.transaction((): BlobRecord[] => {
      const now = Date.now();
      const marked: BlobRecord[] = [];
      for (const digest of digests) {
        const row = this.statements.blobRow.get(digest) as { digest: string; size: number; deleting_since: number | null } | undefined;
        if (!row) continue;
        if (row.deleting_since === null) this.mark(digest, now);
        marked.push({ digest: row.digest, size: row.size });
      }
      return marked;
    })();
  }

  async markedBlobs(limit: number): Promise<BlobRecord[]> {
    return this.statements.markedBlobs.all(limit) as BlobRecord[];
  }

  async forgetBlobs(digests: string[]): Promise<void> {
    this.db.transaction(() => {
      for (const digest of digests) this.statements.forgetBlob.run(digest);
    })();
  }

  async purgeStaleClaims(claimCutoff: number): Promise<number> {
    return this.statements.purgeClaims.run(claimCutoff).changes;
  }

  async uploadsIdleSince(instant: number): Promise<UploadRecord[]> {
    return this.uploads.idleSince(instant);
  }

  async recordGcRun(run: Omit<GcRunRecord, 'id'>): Promise<void> {
    this.statements.insertRun.run(run.startedAt, run.finishedAt, run.dryRun ? 1 : 0, run.trigger, JSON.stringify(run.report));
  }

  async gcRuns(limit: number, options: { includeDryRuns?: boolean } = {}): Promise<GcRunRecord[]> {
    const rows = this.statements.runs.all(options.includeDryRuns ? 1 : 0, limit) as Array<{
      id: number;
      started_at: number;
      finished_at: number;
      dry_run: number;
      trigger: string;
      report: string;
    }>;
    return rows.map((row) => ({
      id: row.id,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
      dryRun: row.dry_run === 1,
      trigger: row.trigger,
      report: JSON.parse(row.report) as unknown,
    }));
  }

  async heldBytes(repository: string): Promise<number> {
    const id = this.statements.repositoryId.get(repository) as number | undefined;
    return id === undefined ? 0 : (this.statements.heldBytes.get({ repositoryId: id }) as number);
  }

  async gcTotals(): Promise<{ runs: number; bytesReclaimed: number; lastRunAt: number | null }> {
    const row = this.statements.gcTotals.get() as { runs: number; bytes: number; last: number | null };
    return { runs: row.runs, bytesReclaimed: row.bytes, lastRunAt: row.last };
  }

  async repositoryUsage(repository: string): Promise<RepositoryUsage | null> {
    const id = this.statements.repositoryId.get(repository) as number | undefined;
    return id === undefined ? null : this.usageOf(id, repository);
  }

  async repositoriesUsage(): Promise<RepositoryUsage[]> {
    const rows = this.statements.allRepositories.all() as Array<{ id: number; name: string }>;
    return rows.map((row) => this.usageOf(row.id, row.name));
  }

  async registryUsage(): Promise<RegistryUsage> {
    const totals = this.statements.registryTotals.get() as {
      repositories: number;
      manifests: number;
      manifest_bytes: number;
      blobs: number;
      blob_bytes: number;
      unreferenced_blobs: number;
      unreferenced_bytes: number;
    };
    const repositories = this.statements.allRepositories.all() as Array<{ id: number }>;
    let logicalBytes = 0;
    for (const { id } of repositories) logicalBytes += this.statements.storedBytes.get({ repositoryId: id }) as number;
    return {
      repositories: totals.repositories,
      manifests: totals.manifests,
      blobs: totals.blobs,
      storedBytes: totals.blob_bytes + totals.manifest_bytes,
      logicalBytes,
      unreferencedBlobs: totals.unreferenced_blobs,
      unreferencedBytes: totals.unreferenced_bytes,
    };
  }

  async holdsBlob(repository: string, digest: string): Promise<boolean> {
    return this.statements.holdsBlob.get(repository, digest, repository, digest) !== undefined;
  }

  async blobPage(after: string, limit: number): Promise<BlobRecord[]> {
    return this.statements.blobPage.all(after, limit) as BlobRecord[];
  }

  async manifestPage(after: string, limit: number): Promise<Array<{ digest: string; content: Buffer }>> {
    return this.statements.manifestPage.all(after, limit) as Array<{ digest: string; content: Buffer }>;
  }

  async manifestProblems(): Promise<ManifestProblem[]> {
    return this.statements.manifestProblems.all() as ManifestProblem[];
  }

  async danglingTags(): Promise<Array<{ repository: string; tag: string; digest: string }>> {
    return this.statements.danglingTags.all() as Array<{ repository: string; tag: string; digest: string }>;
  }

  async imagesUsing(digests: string[]): Promise<Map<string, ImageRef[]>> {
    const result = new Map<string, ImageRef[]>();
    for (const digest of digests) {
      const rows = this.statements.imagesUsing.all(digest) as Array<{ repository: string; manifest: string; tags: string | null }>;
      result.set(
        digest,
        rows.map((row) => ({ repository: row.repository, manifest: row.manifest, tags: row.tags ? row.tags.split('\n').sort() : [] })),
      );
    }
    return result;
  }

  /** Marks a blob for deletion: its links go, and nothing may link it until it is forgotten. */
  private mark(digest: string, now: number): void {
    this.statements.markBlob.run(now, digest);
    this.statements.unlinkEverywhere.run(digest);
  }

  private applyRetention(drops: RetentionDrop[], actor: Actor, now: number, result: ManifestSweepResult): void {
    const touched = new Map<string, { repositoryId: number; repository: string; digest: string }>();
    for (const drop of drops) {
      const repositoryId = this.statements.repositoryId.get(drop.repository) as number | undefined;
      if (repositoryId === undefined) continue;
      // A tag pushed again since retention looked at it is not the tag retention judged.
      if (this.statements.tagDigest.get(repositoryId, drop.tag) !== drop.digest) continue;
      this.statements.deleteTag.run(repositoryId, drop.tag);
      this.event('tag.deleted', drop.repository, actor, now, { tag: drop.tag, digest: drop.digest });
      result.tagsDeleted.push(drop);
      touched.set(`${repositoryId} ${drop.digest}`, { repositoryId, repository: drop.repository, digest: drop.digest });
    }
    // A manifest whose last tag retention deleted goes too, unless an index of its repository lists it.
    for (const { repositoryId, repository, digest } of touched.values()) {
      if (this.statements.anyTagFor.get(repositoryId, digest) !== undefined) continue;
      if (this.statements.referencedByIndex.get(repositoryId, digest, digest) !== undefined) continue;
      const manifest = this.statements.linkedManifest.get(repositoryId, digest) as { size: number; media_type: string } | undefined;
      if (!manifest) continue;
      this.statements.unlinkManifest.run(repositoryId, digest);
      this.event('manifest.deleted', repository, actor, now, { digest, mediaType: manifest.media_type, size: manifest.size });
      result.manifestsRemoved.push({ repository, digest, size: manifest.size, reason: 'retention' });
    }
  }

  /**
   * Mark: the live manifests of each repository are its tagged ones, those pushed within the
   * grace period, its untagged non-referrers unless untagged collection is on, and everything
   * they reach: child manifests of live indexes, and referrers whose subject is live.
   * Sweep: every other manifest is removed from its repository.
   */
  private sweepUnreachable(plan: ManifestSweepPlan, result: ManifestSweepResult): void {
    const s = this.statements;
    this.db.exec('CREATE TEMP TABLE IF NOT EXISTS gc_live (repository_id INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repository_id, digest)) WITHOUT ROWID');
    this.db.exec('DELETE FROM temp.gc_live');
    this.db
      .prepare(
        `INSERT OR IGNORE INTO temp.gc_live SELECT t.repository_id, t.digest FROM tags t
         JOIN repository_manifests rm ON rm.repository_id = t.repository_id AND rm.digest = t.digest`,
      )
      .run();
    this.db.prepare('INSERT OR IGNORE INTO temp.gc_live SELECT repository_id, digest FROM repository_manifests WHERE pushed_at >= ?').run(plan.graceCutoff);
    this.db
      .prepare(
        `INSERT OR IGNORE INTO temp.gc_live SELECT rm.repository_id, rm.digest FROM repository_manifests rm
         JOIN manifests m ON m.digest = rm.digest WHERE m.subject IS NULL AND rm.pushed_at >= ?`,
      )
      .run(plan.untaggedCutoff ?? Number.MIN_SAFE_INTEGER);
    const children = this.db.prepare(
      `INSERT OR IGNORE INTO temp.gc_live SELECT l.repository_id, mr.target_digest FROM temp.gc_live l
       JOIN manifest_references mr ON mr.manifest_digest = l.digest AND mr.kind = 'manifest'
       JOIN repository_manifests rm ON rm.repository_id = l.repository_id AND rm.digest = mr.target_digest`,
    );
    const referrers = this.db.prepare(
      `INSERT OR IGNORE INTO temp.gc_live SELECT rm.repository_id, rm.digest FROM repository_manifests rm
       JOIN manifests m ON m.digest = rm.digest
       JOIN temp.gc_live l ON l.repository_id = rm.repository_id AND l.digest = m.subject`,
    );
    for (let round = 0; round < MAX_CLOSURE_ROUNDS; round++) {
      if (children.run().changes + referrers.run().changes === 0) break;
    }
    const dead = this.db
      .prepare(
        `SELECT rm.repository_id AS repositoryId, r.name AS repository, rm.digest, m.size, m.media_type AS mediaType,
                m.subject IS NOT NULL AS referrer
         FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id JOIN manifests m ON m.digest = rm.digest
         WHERE NOT EXISTS (SELECT 1 FROM temp.gc_live l WHERE l.repository_id = rm.repository_id AND l.digest = rm.digest)
         ORDER BY r.name, rm.digest`,
      )
      .all() as Array<{ repositoryId: number; repository: string; digest: string; size: number; mediaType: string; referrer: number }>;
    for (const manifest of dead) {
      s.unlinkManifest.run(manifest.repositoryId, manifest.digest);
      this.event('manifest.deleted', manifest.repository, plan.actor, plan.now, {
        digest: manifest.digest,
        mediaType: manifest.mediaType,
        size: manifest.size,
      });
      const removed: RemovedManifest = {
        repository: manifest.repository,
        digest: manifest.digest,
        size: manifest.size,
        reason: manifest.referrer ? 'subject-gone' : 'untagged',
      };
      result.manifestsRemoved.push(removed);
    }
    this.db.exec('DELETE FROM temp.gc_live');
  }

  private usageOf(repositoryId: number, repository: string): RepositoryUsage {
    const counts = this.statements.repositoryCounts.get({ repositoryId }) as { tags: number; manifests: number; blobs: number };
    return {
      repository,
      tags: counts.tags,
      manifests: counts.manifests,
      blobs: counts.blobs,
      logicalBytes: this.statements.storedBytes.get({ repositoryId }) as number,
      uniqueBytes: this.statements.uniqueBytes.get({ repositoryId }) as number,
      heldBytes: this.statements.heldBytes.get({ repositoryId }) as number,
    };
  }

  private event(
    type: EventType,
    repository: string,
    actor: Actor,
    now: number,
    fields: { tag?: string; digest?: string; mediaType?: string; size?: number },
  ): void {
    this.outbox.record({ type, repository, actor, ...fields }, now);
  }
}

function prepare(db: Database.Database) {
  return {
    getLease: db.prepare('SELECT holder, acquired_at, expires_at FROM lifecycle_leases WHERE name = ?'),
    putLease: db.prepare(
      `INSERT INTO lifecycle_leases (name, holder, acquired_at, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
    ),
    renewLease: db.prepare('UPDATE lifecycle_leases SET expires_at = ? WHERE name = ? AND holder = ?'),
    deleteLease: db.prepare('DELETE FROM lifecycle_leases WHERE name = ? AND holder = ?'),
    repositoryId: db.prepare('SELECT id FROM repositories WHERE name = ?').pluck(),
    allRepositories: db.prepare('SELECT id, name FROM repositories ORDER BY name'),
    tagsOf: db.prepare(
      `SELECT t.name AS tag, t.digest, t.updated_at FROM tags t JOIN repositories r ON r.id = t.repository_id
       WHERE r.name = ? ORDER BY t.updated_at DESC, t.name`,
    ),
    tagDigest: db.prepare('SELECT digest FROM tags WHERE repository_id = ? AND name = ?').pluck(),
    deleteTag: db.prepare('DELETE FROM tags WHERE repository_id = ? AND name = ?'),
    anyTagFor: db.prepare('SELECT 1 FROM tags WHERE repository_id = ? AND digest = ? LIMIT 1'),
    referencedByIndex: db.prepare(
      `SELECT 1 FROM manifest_references mr
       JOIN repository_manifests rm ON rm.digest = mr.manifest_digest AND rm.repository_id = ?
       WHERE mr.target_digest = ? AND mr.kind = 'manifest' AND mr.manifest_digest <> ? LIMIT 1`,
    ),
    linkedManifest: db.prepare(
      `SELECT m.size, m.media_type FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
       WHERE rm.repository_id = ? AND rm.digest = ?`,
    ),
    unlinkManifest: db.prepare('DELETE FROM repository_manifests WHERE repository_id = ? AND digest = ?'),
    unlinkedManifests: db.prepare(
      'SELECT m.digest, m.size FROM manifests m WHERE NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = m.digest) ORDER BY m.digest',
    ),
    deleteManifestRow: db.prepare('DELETE FROM manifests WHERE digest = ?'),
    unreferencedBlobs: db.prepare(UNREFERENCED_BLOBS_SQL),
    recordedDigests: db.prepare('SELECT digest FROM blobs WHERE digest IN (SELECT value FROM json_each(?))').pluck(),
    blobRow: db.prepare('SELECT digest, size, deleting_since FROM blobs WHERE digest = ?'),
    markBlob: db.prepare('UPDATE blobs SET deleting_since = ? WHERE digest = ? AND deleting_since IS NULL'),
    unlinkEverywhere: db.prepare('DELETE FROM repository_blobs WHERE digest = ?'),
    insertMarkedBlob: db.prepare(
      'INSERT INTO blobs (digest, size, created_at, deleting_since) VALUES (?, ?, 0, ?) ON CONFLICT (digest) DO NOTHING',
    ),
    liveClaims: db.prepare('SELECT 1 FROM blob_claims WHERE digest = ? AND claimed_at >= ? LIMIT 1'),
    markedBlobs: db.prepare('SELECT digest, size FROM blobs WHERE deleting_since IS NOT NULL ORDER BY digest LIMIT ?'),
    forgetBlob: db.prepare('DELETE FROM blobs WHERE digest = ? AND deleting_since IS NOT NULL'),
    purgeClaims: db.prepare('DELETE FROM blob_claims WHERE claimed_at < ?'),
    insertRun: db.prepare('INSERT INTO gc_runs (started_at, finished_at, dry_run, trigger, report) VALUES (?, ?, ?, ?, ?)'),
    runs: db.prepare('SELECT * FROM gc_runs WHERE dry_run = 0 OR ? = 1 ORDER BY id DESC LIMIT ?'),
    gcTotals: db.prepare(
      `SELECT COUNT(*) AS runs, COALESCE(SUM(json_extract(report, '$.bytesReclaimed')), 0) AS bytes, MAX(finished_at) AS last
       FROM gc_runs WHERE dry_run = 0`,
    ),
    storedBytes: db.prepare(REPOSITORY_STORED_BYTES_SQL).pluck(),
    heldBytes: db.prepare(REPOSITORY_HELD_BYTES_SQL).pluck(),
    uniqueBytes: db
      .prepare(
        `WITH mine AS (${REPOSITORY_BLOBS_SQL}),
         shared AS (
           SELECT DISTINCT mr.target_digest AS digest FROM manifest_references mr
           JOIN repository_manifests rm ON rm.digest = mr.manifest_digest
           WHERE mr.kind = 'blob' AND rm.repository_id <> @repositoryId AND mr.target_digest IN (SELECT digest FROM mine))
         SELECT
           COALESCE((SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (SELECT digest FROM mine)
                     AND b.digest NOT IN (SELECT digest FROM shared)), 0)
           + COALESCE((SELECT SUM(m.size) FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
                       WHERE rm.repository_id = @repositoryId AND NOT EXISTS (
                         SELECT 1 FROM repository_manifests o WHERE o.digest = rm.digest AND o.repository_id <> @repositoryId)), 0)`,
      )
      .pluck(),
    repositoryCounts: db.prepare(
      `SELECT (SELECT COUNT(*) FROM tags WHERE repository_id = @repositoryId) AS tags,
              (SELECT COUNT(*) FROM repository_manifests WHERE repository_id = @repositoryId) AS manifests,
              (SELECT COUNT(*) FROM (${REPOSITORY_BLOBS_SQL}) x JOIN blobs b ON b.digest = x.digest) AS blobs`,
    ),
    registryTotals: db.prepare(`SELECT ${REGISTRY_COUNTS_SQL}`),
    holdsBlob: db.prepare(
      `SELECT 1 FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id WHERE r.name = ? AND l.digest = ?
       UNION ALL
       SELECT 1 FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id
       JOIN manifest_references mr ON mr.manifest_digest = rm.digest AND mr.kind = 'blob'
       WHERE r.name = ? AND mr.target_digest = ? LIMIT 1`,
    ),
    blobPage: db.prepare('SELECT digest, size FROM blobs WHERE digest > ? AND deleting_since IS NULL ORDER BY digest LIMIT ?'),
    manifestPage: db.prepare('SELECT digest, content FROM manifests WHERE digest > ? ORDER BY digest LIMIT ?'),
    manifestProblems: db.prepare(MANIFEST_PROBLEMS_SQL),
    danglingTags: db.prepare(DANGLING_TAGS_SQL),
    imagesUsing: db.prepare(
      `SELECT r.name AS repository, rm.digest AS manifest,
              (SELECT group_concat(t.name, char(10)) FROM tags t WHERE t.repository_id = rm.repository_id AND t.digest = rm.digest) AS tags
       FROM manifest_references mr
       JOIN repository_manifests rm ON rm.digest = mr.manifest_digest
       JOIN repositories r ON r.id = rm.repository_id
       WHERE mr.target_digest = ? ORDER BY r.name, rm.digest`,
    ),
  };
}
