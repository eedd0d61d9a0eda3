/**
 * Retention and the mark-and-sweep of manifests (LifecycleStore.sweepManifests) on PostgreSQL,
 * in one transaction that first locks every repository row (in id order, the one order every
 * transaction uses): pushes, tag moves and deletions wait until the sweep commits, as they did
 * behind SQLite's single writer, so a manifest is never judged unreachable while a push tags it.
 * Manifests no repository holds are then locked FOR UPDATE SKIP LOCKED and deleted only if still
 * unheld (a push re-using one share-locks it first).
 */
import type { BlobRecord, ManifestSweepPlan, ManifestSweepResult, RemovedManifest, RetentionDrop } from '../../registry/lifecycle-store.js';
import type { Actor } from '../../registry/ports.js';
import type { EventInput } from './outbox.js';
import type { Queryable } from './pool.js';

/** Index nesting is shallow in practice; the closure stops long before this. */
const MAX_CLOSURE_ROUNDS = 64;

export async function sweepManifests(client: Queryable, plan: ManifestSweepPlan, events: EventInput[]): Promise<ManifestSweepResult> {
  const result: ManifestSweepResult = { tagsDeleted: [], manifestsRemoved: [], manifestsPurged: [] };
  await client.query('SELECT id FROM repositories ORDER BY id FOR UPDATE');
  await applyRetention(client, plan.retention, plan.actor, result, events);
  await sweepUnreachable(client, plan, result, events);
  result.manifestsPurged = await purgeUnheldManifests(client);
  return result;
}

async function applyRetention(client: Queryable, drops: RetentionDrop[], actor: Actor, result: ManifestSweepResult, events: EventInput[]): Promise<void> {
  const touched = new Map<string, { repositoryId: number; repository: string; digest: string }>();
  for (const drop of drops) {
    // A tag pushed again since retention looked at it is not the tag retention judged.
    const { rows } = await client.query<{ repository_id: number }>(
      `DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2 AND digest = $3 RETURNING repository_id`,
      [drop.repository, drop.tag, drop.digest],
    );
    if (!rows[0]) continue;
    events.push({ type: 'tag.deleted', repository: drop.repository, tag: drop.tag, digest: drop.digest, actor });
    result.tagsDeleted.push(drop);
    touched.set(`${rows[0].repository_id} ${drop.digest}`, { repositoryId: rows[0].repository_id, repository: drop.repository, digest: drop.digest });
  }
  // A manifest whose last tag retention deleted goes too, unless an index of its repository lists it.
  for (const { repositoryId, repository, digest } of touched.values()) {
    const { rows } = await client.query<{ size: number; media_type: string }>(
      `DELETE FROM repository_manifests rm USING manifests m
       WHERE rm.repository_id = $1 AND rm.digest = $2 AND m.digest = rm.digest
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = $1 AND t.digest = $2)
         AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                         JOIN repository_manifests parent ON parent.digest = mr.manifest_digest AND parent.repository_id = $1
                         WHERE mr.target_digest = $2 AND mr.kind = 'manifest' AND mr.manifest_digest <> $2)
       RETURNING m.size, m.media_type`,
      [repositoryId, digest],
    );
    if (!rows[0]) continue;
    events.push({ type: 'manifest.deleted', repository, digest, mediaType: rows[0].media_type, size: rows[0].size, actor });
    result.manifestsRemoved.push({ repository, digest, size: rows[0].size, reason: 'retention' });
  }
}

/**
 * Mark: the live manifests of each repository are its tagged ones, those pushed within the
 * grace period, its untagged non-referrers unless untagged collection is on, and everything
 * they reach: child manifests of live indexes, and referrers whose subject is live.
 * Sweep: every other manifest is removed from its repository.
 */
async function sweepUnreachable(client: Queryable, plan: ManifestSweepPlan, result: ManifestSweepResult, events: EventInput[]): Promise<void> {
  await client.query('CREATE TEMP TABLE gc_live (repository_id BIGINT NOT NULL, digest TEXT COLLATE "C" NOT NULL, PRIMARY KEY (repository_id, digest)) ON COMMIT DROP');
  await client.query(
    `INSERT INTO gc_live SELECT t.repository_id, t.digest FROM tags t
     JOIN repository_manifests rm ON rm.repository_id = t.repository_id AND rm.digest = t.digest ON CONFLICT DO NOTHING`,
  );
  await client.query('INSERT INTO gc_live SELECT repository_id, digest FROM repository_manifests WHERE pushed_at >= $1 ON CONFLICT DO NOTHING', [plan.graceCutoff]);
  await client.query(
    `INSERT INTO gc_live SELECT rm.repository_id, rm.digest FROM repository_manifests rm
     JOIN manifests m ON m.digest = rm.digest WHERE m.subject IS NULL AND rm.pushed_at >= $1 ON CONFLICT DO NOTHING`,
    [plan.untaggedCutoff ?? Number.MIN_SAFE_INTEGER],
  );
  for (let round = 0; round < MAX_CLOSURE_ROUNDS; round++) {
    const children = await client.query(
      `INSERT INTO gc_live SELECT l.repository_id, mr.target_digest FROM gc_live l
       JOIN manifest_references mr ON mr.manifest_digest = l.digest AND mr.kind = 'manifest'
       JOIN repository_manifests rm ON rm.repository_id = l.repository_id AND rm.digest = mr.target_digest ON CONFLICT DO NOTHING`,
    );
    const referrers = await client.query(
      `INSERT INTO gc_live SELECT rm.repository_id, rm.digest FROM repository_manifests rm
       JOIN manifests m ON m.digest = rm.digest
       JOIN gc_live l ON l.repository_id = rm.repository_id AND l.digest = m.subject ON CONFLICT DO NOTHING`,
    );
    if ((children.rowCount ?? 0) + (referrers.rowCount ?? 0) === 0) break;
  }
  const { rows } = await client.query<{ repository: string; digest: string; size: number; media_type: string; referrer: boolean }>(
    `DELETE FROM repository_manifests rm USING repositories r, manifests m
     WHERE r.id = rm.repository_id AND m.digest = rm.digest
       AND NOT EXISTS (SELECT 1 FROM gc_live l WHERE l.repository_id = rm.repository_id AND l.digest = rm.digest)
     RETURNING r.name AS repository, rm.digest, m.size, m.media_type, m.subject IS NOT NULL AS referrer`,
  );
  rows.sort((a, b) => (a.repository === b.repository ? compare(a.digest, b.digest) : compare(a.repository, b.repository)));
  for (const row of rows) {
    events.push({ type: 'manifest.deleted', repository: row.repository, digest: row.digest, mediaType: row.media_type, size: row.size, actor: plan.actor });
    const removed: RemovedManifest = { repository: row.repository, digest: row.digest, size: row.size, reason: row.referrer ? 'subject-gone' : 'untagged' };
    result.manifestsRemoved.push(removed);
  }
}

/** Manifest rows no repository holds: locked, then deleted only if still unheld (new snapshot). */
async function purgeUnheldManifests(client: Queryable): Promise<BlobRecord[]> {
  const candidates = await client.query<{ digest: string }>(
    `SELECT m.digest FROM manifests m WHERE NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = m.digest)
     ORDER BY m.digest FOR UPDATE SKIP LOCKED`,
  );
  if (candidates.rows.length === 0) return [];
  const { rows } = await client.query<BlobRecord>(
    `DELETE FROM manifests m WHERE m.digest = ANY($1::text[])
       AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = m.digest)
     RETURNING m.digest, m.size`,
    [candidates.rows.map((row) => row.digest)],
  );
  return rows.sort((a, b) => compare(a.digest, b.digest));
}

/** Byte order, as COLLATE "C" sorts. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
