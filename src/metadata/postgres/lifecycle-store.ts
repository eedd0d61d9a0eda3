/**
 * The LifecycleStore on PostgreSQL: what garbage collection, retention, usage and fsck read and
 * change, safe with any number of replicas pushing meanwhile. The deletion protocol stays mark →
 * delete files → forget with its grace period (lifecycle-store.ts); what SQLite's single writer
 * gave for free is done with locks:
 * - a mark picks candidates FOR UPDATE SKIP LOCKED (never waiting for, and never taking, a blob a
 *   push or claim holds FOR SHARE), then re-checks them in a new statement, whose snapshot sees
 *   every push that committed before the lock was granted (the write skew of a naive port);
 * - an orphan file (no row) is marked under its digest's advisory lock, which claims take too;
 * - leases are one upsert compared on the database clock.
 * Every instant compared here comes from the database (NOW_MS, currentTime).
 */
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
  RepositoryUsage,
  TagRecord,
} from '../../registry/lifecycle-store.js';
import type { UploadRecord } from '../../registry/ports.js';
import { DANGLING_TAGS_SQL, MANIFEST_PROBLEMS_SQL } from '../rows.js';
import { compare, sweepManifests } from './manifest-sweep.js';
import { lockDigest } from './metadata-store.js';
import { writeEvents, type EventInput } from './outbox.js';
import { NOW_MS, transaction, type Pool, type Queryable } from './pool.js';
import { repositoryId } from './repositories.js';
import type { ReadCache } from './read-cache.js';
import { PostgresUploads } from './uploads.js';
import { repositoryUsage, registryUsage } from './usage.js';

/** Points where tests hold a collection's transaction open to force an interleaving. */
export interface LifecycleHooks {
  /** In markUnreferencedBlobs, after the candidates were locked, before they are re-checked. */
  afterBlobCandidates?(digests: string[]): Promise<void>;
  /** In markOrphans, after the digests' advisory locks were taken and their claims checked, before the rows are written. */
  afterOrphanCheck?(digests: string[]): Promise<void>;
}

/** Thrown inside a dry-run transaction to roll it back with the result in hand. */
class DryRunRollback extends Error {
  constructor(readonly result: ManifestSweepResult) {
    super('dry run');
  }
}

/** Blobs nothing references: no manifest anywhere, no link or upload newer than the grace period, no live claim. */
const UNREFERENCED = `b.deleting_since IS NULL
    AND b.created_at < $1
    AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.target_digest = b.digest)
    AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.linked_at >= $1)
    AND NOT EXISTS (SELECT 1 FROM blob_claims c WHERE c.digest = b.digest AND c.claimed_at >= $2)`;

export class PostgresLifecycleStore implements LifecycleStore {
  private readonly uploads: PostgresUploads;

  constructor(
    private readonly pool: Pool,
    /** The replica's cache of blob links, forgotten when a mark here removes links. */
    private readonly blobLinks: ReadCache,
    private readonly hooks: LifecycleHooks = {},
  ) {
    this.uploads = new PostgresUploads(pool);
  }

  /** The database's clock: a collection's cut-offs are compared with instants it recorded. */
  async currentTime(): Promise<number> {
    return (await this.pool.query<{ now: number }>(`SELECT ${NOW_MS} AS now`)).rows[0]!.now;
  }

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseState> {
    for (let attempt = 0; attempt < 3; attempt++) {
      // One statement: of two replicas asking at once, the second waits for the first's row and re-checks it.
      const taken = await this.pool.query<{ acquired_at: number }>(
        `INSERT INTO lifecycle_leases AS l (name, holder, acquired_at, expires_at) VALUES ($1, $2, ${NOW_MS}, ${NOW_MS} + $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
         WHERE l.expires_at <= ${NOW_MS} OR l.holder = excluded.holder
         RETURNING acquired_at`,
        [name, holder, ttlMs],
      );
      if (taken.rows[0]) return { acquired: true, holder, acquiredAt: taken.rows[0].acquired_at };
      const current = await this.pool.query<{ holder: string; acquired_at: number }>('SELECT holder, acquired_at FROM lifecycle_leases WHERE name = $1', [name]);
      if (current.rows[0]) return { acquired: false, holder: current.rows[0].holder, acquiredAt: current.rows[0].acquired_at };
    }
    throw new Error(`lease ${name} changed hands repeatedly; try again`);
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<void> {
    await this.pool.query(`UPDATE lifecycle_leases SET expires_at = ${NOW_MS} + $3 WHERE name = $1 AND holder = $2`, [name, holder, ttlMs]);
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.pool.query('DELETE FROM lifecycle_leases WHERE name = $1 AND holder = $2', [name, holder]);
  }

  async tagsOf(repository: string): Promise<TagRecord[]> {
    const { rows } = await this.pool.query<{ tag: string; digest: string; updated_at: number }>(
      `SELECT t.name AS tag, t.digest, t.updated_at FROM tags t JOIN repositories r ON r.id = t.repository_id
       WHERE r.name = $1 ORDER BY t.updated_at DESC, t.name`,
      [repository],
    );
    return rows.map((row) => ({ tag: row.tag, digest: row.digest, updatedAt: row.updated_at }));
  }

  async sweepManifests(plan: ManifestSweepPlan): Promise<ManifestSweepResult> {
    try {
      return await transaction(this.pool, async (client) => {
        const events: EventInput[] = [];
        const result = await sweepManifests(client, plan, events);
        if (plan.dryRun) {
          const cutoffs = plan.blobCutoffs ?? { now: plan.now, graceCutoff: plan.graceCutoff, claimCutoff: plan.now };
          result.blobsToMark = await unreferencedBlobs(client, cutoffs, null);
          throw new DryRunRollback(result);
        }
        await writeEvents(client, events);
        return result;
      });
    } catch (error) {
      if (error instanceof DryRunRollback) return error.result;
      throw error;
    }
  }

  async markUnreferencedBlobs(cutoffs: BlobCutoffs, limit: number): Promise<BlobRecord[]> {
    return this.blobLinks.forgetAfter(() => transaction(this.pool, async (client) => {
      const candidates = await client.query<{ digest: string }>(
        `SELECT b.digest FROM blobs b WHERE ${UNREFERENCED} ORDER BY b.digest LIMIT $3 FOR UPDATE SKIP LOCKED`,
        [cutoffs.graceCutoff, cutoffs.claimCutoff, limit],
      );
      const digests = candidates.rows.map((row) => row.digest);
      if (digests.length === 0) return [];
      await this.hooks.afterBlobCandidates?.(digests);
      // Re-checked in a new statement: a push or claim that committed before the lock was granted is seen now.
      const confirmed = await client.query<BlobRecord>(
        `SELECT b.digest, b.size FROM blobs b WHERE b.digest = ANY($3::text[]) AND ${UNREFERENCED} ORDER BY b.digest`,
        [cutoffs.graceCutoff, cutoffs.claimCutoff, digests],
      );
      await mark(client, confirmed.rows.map((row) => row.digest));
      return confirmed.rows;
    }));
  }

  async digestsWithoutRecord(digests: string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    const { rows } = await this.pool.query<{ digest: string }>('SELECT digest FROM blobs WHERE digest = ANY($1::text[])', [digests]);
    const found = new Set(rows.map((row) => row.digest));
    return digests.filter((digest) => !found.has(digest));
  }

  async markOrphans(blobs: BlobRecord[], cutoffs: BlobCutoffs): Promise<BlobRecord[]> {
    if (blobs.length === 0) return [];
    return transaction(this.pool, async (client) => {
      const sorted = [...blobs].sort((a, b) => compare(a.digest, b.digest));
      for (const blob of sorted) await lockDigest(client, blob.digest);
      const claimed = await client.query<{ digest: string }>('SELECT DISTINCT digest FROM blob_claims WHERE digest = ANY($1::text[]) AND claimed_at >= $2', [
        sorted.map((blob) => blob.digest),
        cutoffs.claimCutoff,
      ]);
      const held = new Set(claimed.rows.map((row) => row.digest));
      const free = sorted.filter((blob) => !held.has(blob.digest));
      await this.hooks.afterOrphanCheck?.(free.map((blob) => blob.digest));
      const marked: BlobRecord[] = [];
      for (const blob of free) {
        // A row appearing meanwhile means someone committed and linked the content: leave it.
        const inserted = await client.query(
          `INSERT INTO blobs (digest, size, created_at, deleting_since) VALUES ($1, $2, 0, ${NOW_MS}) ON CONFLICT (digest) DO NOTHING`,
          [blob.digest, blob.size],
        );
        if ((inserted.rowCount ?? 0) > 0) marked.push(blob);
      }
      return blobs.filter((blob) => marked.includes(blob));
    });
  }

  async markBlobs(digests: string[]): Promise<BlobRecord[]> {
    if (digests.length === 0) return [];
    return this.blobLinks.forgetAfter(() => transaction(this.pool, async (client) => {
      const { rows } = await client.query<BlobRecord & { deleting_since: number | null }>(
        'SELECT digest, size, deleting_since FROM blobs WHERE digest = ANY($1::text[]) ORDER BY digest FOR UPDATE',
        [[...new Set(digests)].sort()],
      );
      await mark(client, rows.filter((row) => row.deleting_since === null).map((row) => row.digest));
      const byDigest = new Map(rows.map((row) => [row.digest, { digest: row.digest, size: row.size }]));
      return digests.flatMap((digest) => byDigest.get(digest) ?? []);
    }));
  }

  async markedBlobs(limit: number): Promise<BlobRecord[]> {
    const { rows } = await this.pool.query<BlobRecord>('SELECT digest, size FROM blobs WHERE deleting_since IS NOT NULL ORDER BY digest LIMIT $1', [limit]);
    return rows;
  }

  async forgetBlobs(digests: string[]): Promise<void> {
    if (digests.length === 0) return;
    await this.pool.query('DELETE FROM blobs WHERE digest = ANY($1::text[]) AND deleting_since IS NOT NULL', [digests]);
  }

  async purgeStaleClaims(claimCutoff: number): Promise<number> {
    return (await this.pool.query('DELETE FROM blob_claims WHERE claimed_at < $1', [claimCutoff])).rowCount ?? 0;
  }

  uploadsIdleSince(instant: number): Promise<UploadRecord[]> {
    return this.uploads.idleSince(instant);
  }

  async recordGcRun(run: Omit<GcRunRecord, 'id'>): Promise<void> {
    await this.pool.query('INSERT INTO gc_runs (started_at, finished_at, dry_run, trigger, report) VALUES ($1, $2, $3, $4, $5::jsonb)', [
      run.startedAt,
      run.finishedAt,
      run.dryRun,
      run.trigger,
      JSON.stringify(run.report),
    ]);
  }

  async gcRuns(limit: number, options: { includeDryRuns?: boolean } = {}): Promise<GcRunRecord[]> {
    const { rows } = await this.pool.query<{ id: number; started_at: number; finished_at: number; dry_run: boolean; trigger: string; report: unknown }>(
      'SELECT * FROM gc_runs WHERE dry_run = false OR $1 ORDER BY id DESC LIMIT $2',
      [options.includeDryRuns ?? false, limit],
    );
    return rows.map((row) => ({ id: row.id, startedAt: row.started_at, finishedAt: row.finished_at, dryRun: row.dry_run, trigger: row.trigger, report: row.report }));
  }

  async gcTotals(): Promise<{ runs: number; bytesReclaimed: number; lastRunAt: number | null }> {
    const { rows } = await this.pool.query<{ runs: number; bytes: number; last: number | null }>(
      `SELECT COUNT(*) AS runs, COALESCE(SUM((report->>'bytesReclaimed')::bigint), 0) AS bytes, MAX(finished_at) AS last
       FROM gc_runs WHERE dry_run = false`,
    );
    return { runs: rows[0]!.runs, bytesReclaimed: rows[0]!.bytes, lastRunAt: rows[0]!.last };
  }

  async heldBytes(repository: string): Promise<number> {
    const id = await repositoryId(this.pool, repository);
    return id === null ? 0 : (await repositoryUsage(this.pool, id, repository)).heldBytes;
  }

  async repositoryUsage(repository: string): Promise<RepositoryUsage | null> {
    const id = await repositoryId(this.pool, repository);
    return id === null ? null : repositoryUsage(this.pool, id, repository);
  }

  async repositoriesUsage(): Promise<RepositoryUsage[]> {
    const { rows } = await this.pool.query<{ id: number; name: string }>('SELECT id, name FROM repositories ORDER BY name');
    const usage: RepositoryUsage[] = [];
    for (const row of rows) usage.push(await repositoryUsage(this.pool, row.id, row.name));
    return usage;
  }

  registryUsage(): Promise<RegistryUsage> {
    return registryUsage(this.pool);
  }

  async holdsBlob(repository: string, digest: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `SELECT 1 FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id WHERE r.name = $1 AND l.digest = $2
       UNION ALL
       SELECT 1 FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id
       JOIN manifest_references mr ON mr.manifest_digest = rm.digest AND mr.kind = 'blob'
       WHERE r.name = $1 AND mr.target_digest = $2 LIMIT 1`,
      [repository, digest],
    );
    return (rowCount ?? 0) > 0;
  }

  async blobPage(after: string, limit: number): Promise<BlobRecord[]> {
    const { rows } = await this.pool.query<BlobRecord>('SELECT digest, size FROM blobs WHERE digest > $1 AND deleting_since IS NULL ORDER BY digest LIMIT $2', [
      after,
      limit,
    ]);
    return rows;
  }

  async manifestPage(after: string, limit: number): Promise<Array<{ digest: string; content: Buffer }>> {
    const { rows } = await this.pool.query<{ digest: string; content: Buffer }>('SELECT digest, content FROM manifests WHERE digest > $1 ORDER BY digest LIMIT $2', [
      after,
      limit,
    ]);
    return rows;
  }

  async manifestProblems(): Promise<ManifestProblem[]> {
    const { rows } = await this.pool.query<ManifestProblem>(MANIFEST_PROBLEMS_SQL);
    return rows;
  }

  async danglingTags(): Promise<Array<{ repository: string; tag: string; digest: string }>> {
    const { rows } = await this.pool.query<{ repository: string; tag: string; digest: string }>(DANGLING_TAGS_SQL);
    return rows;
  }

  async imagesUsing(digests: string[]): Promise<Map<string, ImageRef[]>> {
    const result = new Map<string, ImageRef[]>();
    for (const digest of digests) {
      const { rows } = await this.pool.query<{ repository: string; manifest: string; tags: string[] | null }>(
        `SELECT r.name AS repository, rm.digest AS manifest,
                (SELECT array_agg(t.name ORDER BY t.name) FROM tags t WHERE t.repository_id = rm.repository_id AND t.digest = rm.digest) AS tags
         FROM manifest_references mr
         JOIN repository_manifests rm ON rm.digest = mr.manifest_digest
         JOIN repositories r ON r.id = rm.repository_id
         WHERE mr.target_digest = $1 ORDER BY r.name, rm.digest`,
        [digest],
      );
      result.set(digest, rows.map((row) => ({ repository: row.repository, manifest: row.manifest, tags: row.tags ?? [] })));
    }
    return result;
  }
}

/** Marks blobs for deletion (rows the caller has locked): their links go, and nothing may link them until forgotten. */
async function mark(client: Queryable, digests: string[]): Promise<void> {
  if (digests.length === 0) return;
  await client.query(`UPDATE blobs SET deleting_since = ${NOW_MS} WHERE digest = ANY($1::text[]) AND deleting_since IS NULL`, [digests]);
  await client.query('DELETE FROM repository_blobs WHERE digest = ANY($1::text[])', [digests]);
}

async function unreferencedBlobs(db: Queryable, cutoffs: BlobCutoffs, limit: number | null): Promise<BlobRecord[]> {
  const { rows } = await db.query<BlobRecord>(`SELECT b.digest, b.size FROM blobs b WHERE ${UNREFERENCED} ORDER BY b.digest LIMIT $3`, [
    cutoffs.graceCutoff,
    cutoffs.claimCutoff,
    limit,
  ]);
  return rows;
}

