/**
 * Online garbage collection: mark and sweep over the reference graph the metadata store keeps,
 * while the registry goes on serving pushes and pulls.
 *
 * 1. Retention decides which tags go (see retention.ts).
 * 2. Manifests, in one transaction: retention's deletions, then every manifest no longer
 *    reachable in its repository (from tags, recent pushes, untagged manifests unless those are
 *    collected, through index children and referrers' subjects) is removed from it, and
 *    manifests no repository holds are deleted.
 * 3. Blobs, in batches, by the deletion protocol of lifecycle-store.ts: mark (in a transaction
 *    that removes their links, so a concurrent push's own transaction either committed first,
 *    and the blob is referenced and kept, or finds it gone and fails cleanly), delete files,
 *    forget the rows. Files with no record at all (a crash between commit and link) go the same way.
 * 4. Upload sessions idle for longer than the upload age go with their temporary files.
 *
 * The grace period protects whatever was pushed, linked or uploaded recently: pushes in flight
 * upload their blobs before the manifest that references them.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { isRetryShortly, RegistryError, retryShortly } from './errors.js';
import type { BlobCutoffs, BlobRecord, GcRunRecord, LifecycleStore, RemovedManifest, RetentionDrop } from './lifecycle-store.js';
import type { Actor, BlobStore, MetadataStore, StoredBlob, StoredUpload } from './ports.js';
import type { LifecyclePolicies } from './policies.js';
import { decideRetention } from './retention.js';
import type { UploadService } from './uploads.js';

export const LIFECYCLE_ACTOR: Actor = { name: 'lifecycle', kind: 'system' };
/** The lease every collection (and repairing fsck) takes. */
const GC_LEASE = 'gc';
const LEASE_TTL_MS = 10 * 60_000;

/**
 * Runs `work` holding the collection lease, so that one collection or repair runs at a time
 * across processes; `work` calls `renew` between pages, so a long run never outlives its lease.
 * Refused with `refusal(held)` while another holder has it.
 */
export async function withCollectionLease<T>(
  lifecycle: LifecycleStore,
  refusal: (held: { holder: string; acquiredAt: number }) => RegistryError,
  work: (renew: () => Promise<void>) => Promise<T>,
): Promise<T> {
  const holder = `${os.hostname()}/${process.pid}/${randomUUID()}`;
  const lease = await lifecycle.acquireLease(GC_LEASE, holder, LEASE_TTL_MS);
  if (!lease.acquired) throw refusal(lease);
  try {
    return await work(() => lifecycle.renewLease(GC_LEASE, holder, LEASE_TTL_MS));
  } finally {
    await lifecycle.releaseLease(GC_LEASE, holder);
  }
}
/** A claim lives for one commit and link; one this old belongs to a process that died. */
export const CLAIM_STALE_MS = 10 * 60_000;
const BATCH = 500;
/** Entries listed per section of a report; counts and bytes are always complete. */
export const MAX_LISTED = 1_000;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export interface GcSettings {
  /** Seconds; blobs, links and manifests younger than this are kept. */
  gracePeriodSeconds: number;
  /** Seconds; 0 keeps untagged manifests forever. */
  untaggedManifestAgeSeconds: number;
  /** Seconds an upload session may stay idle. */
  uploadMaxAgeSeconds: number;
}

export interface GcRunOptions {
  dryRun?: boolean;
  /** Overrides the configured grace period for this run. */
  gracePeriodSeconds?: number;
  /** Who asked: schedule, api, cli (recorded with the run). */
  trigger?: string;
}

/** Points where tests interleave concurrent work with a collection. */
export interface GcHooks {
  /** After a batch of blobs was marked, before their files are deleted. */
  afterMark?(blobs: BlobRecord[]): Promise<void>;
}

export interface ListedSection<T> {
  count: number;
  bytes: number;
  /** At most MAX_LISTED entries. */
  items: T[];
  truncated: boolean;
}

export interface GcReport {
  dryRun: boolean;
  trigger: string;
  startedAt: string;
  finishedAt: string;
  gracePeriodSeconds: number;
  /** Tags deleted by retention policies. */
  tagsDeleted: ListedSection<RetentionDrop>;
  /** Manifests removed from a repository (retention, untagged, referrer whose subject is gone). */
  manifestsRemoved: ListedSection<RemovedManifest>;
  /** Manifests deleted from the database because no repository holds them any more. */
  manifestsPurged: ListedSection<BlobRecord>;
  /** Blob files deleted because nothing references them. */
  blobsDeleted: ListedSection<BlobRecord>;
  /** Files in blob storage with no record at all, deleted. */
  orphanFilesDeleted: ListedSection<BlobRecord>;
  /** Upload sessions purged, with their temporary files. */
  uploadsPurged: ListedSection<{ id: string; repository: string | null; size: number }>;
  /** Blob, orphan file, upload and manifest bytes freed (or that would be, in a dry run). */
  bytesReclaimed: number;
}

export class GarbageCollector {
  constructor(
    private readonly store: BlobStore,
    private readonly metadata: MetadataStore,
    private readonly lifecycle: LifecycleStore,
    private readonly uploads: UploadService,
    private readonly policies: LifecyclePolicies,
    private readonly settings: GcSettings,
    /** Tests' clock; otherwise the store's (currentTime), else this process's. */
    private readonly clock?: () => number,
    private readonly hooks: GcHooks = {},
  ) {}

  /** Now, on the clock the store's instants were recorded with. */
  private async now(): Promise<number> {
    if (this.clock) return this.clock();
    return (await this.lifecycle.currentTime?.()) ?? Date.now();
  }

  /** Past collections, latest first. */
  async history(limit: number, options: { includeDryRuns?: boolean } = {}): Promise<GcRunRecord[]> {
    return this.lifecycle.gcRuns(limit, options);
  }

  /** Totals for metrics: collections that deleted, the bytes they reclaimed, when the last one finished. */
  async stats(): Promise<{ runs: number; bytesReclaimed: number; lastRunAt: number | null }> {
    return this.lifecycle.gcTotals();
  }

  /** One collection; refused with CONFLICT while another one runs (in any process). */
  async run(options: GcRunOptions = {}): Promise<GcReport> {
    const dryRun = options.dryRun ?? false;
    return withCollectionLease(
      this.lifecycle,
      (held) =>
        new RegistryError('CONFLICT', `a garbage collection is already running (since ${new Date(held.acquiredAt).toISOString()}, ${held.holder})`, {
          holder: held.holder,
          since: held.acquiredAt,
        }),
      async (renew) => {
        const report = await this.collect(dryRun, options, renew).catch((error: unknown) => {
          // A store out of reach stops the run where it is; every deletion is decided on an answer, never on a failed check.
          if (!isRetryShortly(error)) throw error;
          throw retryShortly(`garbage collection stopped: ${error.message}; the next collection carries on from where this one stopped`, undefined, error);
        });
        await this.lifecycle.recordGcRun({
          startedAt: Date.parse(report.startedAt),
          finishedAt: Date.parse(report.finishedAt),
          dryRun,
          trigger: report.trigger,
          report,
        });
        return report;
      },
    );
  }

  private async collect(dryRun: boolean, options: GcRunOptions, renew: () => Promise<void>): Promise<GcReport> {
    const started = await this.now();
    const graceSeconds = options.gracePeriodSeconds ?? this.settings.gracePeriodSeconds;
    const cutoffs: BlobCutoffs = { now: started, graceCutoff: started - graceSeconds * 1000, claimCutoff: started - CLAIM_STALE_MS };
    const blobsDeleted = section<BlobRecord>();

    if (!dryRun) await this.finishInterruptedDeletions(blobsDeleted, renew);

    const drops = await this.retentionDrops(started);
    const sweep = await this.lifecycle.sweepManifests({
      now: started,
      graceCutoff: cutoffs.graceCutoff,
      untaggedCutoff: this.settings.untaggedManifestAgeSeconds > 0 ? started - this.settings.untaggedManifestAgeSeconds * 1000 : null,
      retention: drops,
      actor: LIFECYCLE_ACTOR,
      dryRun,
      blobCutoffs: cutoffs,
    });
    const tagsDeleted = section<RetentionDrop>();
    for (const drop of sweep.tagsDeleted) add(tagsDeleted, drop, 0);
    const manifestsRemoved = section<RemovedManifest>();
    for (const manifest of sweep.manifestsRemoved) add(manifestsRemoved, manifest, 0);
    const manifestsPurged = section<BlobRecord>();
    for (const manifest of sweep.manifestsPurged) add(manifestsPurged, manifest, manifest.size);

    if (dryRun) {
      for (const blob of sweep.blobsToMark ?? []) add(blobsDeleted, blob, blob.size);
    } else {
      await this.deleteUnreferencedBlobs(cutoffs, blobsDeleted, renew);
    }
    const orphanFilesDeleted = await this.deleteOrphanFiles(cutoffs, dryRun, renew);
    const uploadsPurged = await this.purgeUploads(started - this.settings.uploadMaxAgeSeconds * 1000, dryRun);
    if (!dryRun) await this.lifecycle.purgeStaleClaims(cutoffs.claimCutoff);

    return {
      dryRun,
      trigger: options.trigger ?? 'api',
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(Math.max(await this.now(), started)).toISOString(),
      gracePeriodSeconds: graceSeconds,
      tagsDeleted,
      manifestsRemoved,
      manifestsPurged,
      blobsDeleted,
      orphanFilesDeleted,
      uploadsPurged,
      bytesReclaimed: blobsDeleted.bytes + orphanFilesDeleted.bytes + uploadsPurged.bytes + manifestsPurged.bytes,
    };
  }

  /** Tags the retention policies let go, over every repository one applies to. */
  private async retentionDrops(now: number): Promise<RetentionDrop[]> {
    if (!this.policies.hasRetention) return [];
    const drops: RetentionDrop[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.metadata.listRepositories({ limit: BATCH, after });
      for (const repository of page) {
        const policy = this.policies.retention(repository);
        if (!policy) continue;
        const tags = await this.lifecycle.tagsOf(repository);
        drops.push(...decideRetention(repository, tags, policy, this.policies, now).dropped);
      }
      if (page.length < BATCH) return drops;
      after = page[page.length - 1];
    }
  }

  /** Blobs a previous collection marked but did not finish deleting (it stopped half-way). */
  private async finishInterruptedDeletions(report: ListedSection<BlobRecord>, renew: () => Promise<void>): Promise<void> {
    for (;;) {
      const marked = await this.lifecycle.markedBlobs(BATCH);
      if (marked.length === 0) return;
      await this.deleteMarked(marked, report);
      await renew();
      if (marked.length < BATCH) return;
    }
  }

  private async deleteUnreferencedBlobs(cutoffs: BlobCutoffs, report: ListedSection<BlobRecord>, renew: () => Promise<void>): Promise<void> {
    for (;;) {
      const marked = await this.lifecycle.markUnreferencedBlobs(cutoffs, BATCH);
      if (marked.length === 0) return;
      await this.hooks.afterMark?.(marked);
      await this.deleteMarked(marked, report);
      await renew();
      if (marked.length < BATCH) return;
    }
  }

  /** Steps 2 and 3 of the protocol: the files, then the rows. */
  private async deleteMarked(marked: BlobRecord[], report: ListedSection<BlobRecord>): Promise<void> {
    for (const blob of marked) {
      await this.store.delete(blob.digest);
      add(report, blob, blob.size);
    }
    await this.lifecycle.forgetBlobs(marked.map((blob) => blob.digest));
  }

  /** Files in blob storage no record points at, older than the grace period: one listing gives their sizes and ages. */
  private async deleteOrphanFiles(cutoffs: BlobCutoffs, dryRun: boolean, renew: () => Promise<void>): Promise<ListedSection<BlobRecord>> {
    const report = section<BlobRecord>();
    const handle = async (listed: StoredBlob[]) => {
      const unrecorded = new Set(await this.lifecycle.digestsWithoutRecord(listed.map((blob) => blob.digest)));
      const candidates = listed
        .filter((blob) => unrecorded.has(blob.digest) && blob.modifiedAt < cutoffs.graceCutoff)
        .map(({ digest, size }) => ({ digest, size }));
      if (candidates.length === 0) return;
      if (dryRun) {
        for (const blob of candidates) add(report, blob, blob.size);
        return;
      }
      await this.deleteMarked(await this.lifecycle.markOrphans(candidates, cutoffs), report);
      await renew();
    };
    await inBatches(this.store.list(), BATCH, handle);
    return report;
  }

  /** Sessions idle since before the cut-off (multipart uploads aborted with them), and upload data no session owns. */
  private async purgeUploads(cutoff: number, dryRun: boolean): Promise<GcReport['uploadsPurged']> {
    const report = section<{ id: string; repository: string | null; size: number }>();
    const stored = new Map<string, StoredUpload>();
    for await (const upload of this.store.listUploads()) stored.set(upload.id, upload);
    for (const session of await this.lifecycle.uploadsIdleSince(cutoff)) {
      stored.delete(session.id);
      // A request writing to it right now holds its lease: not idle after all.
      if (!dryRun && !(await this.uploads.expire(session.id))) continue;
      add(report, { id: session.id, repository: session.repository, size: session.size }, session.size);
    }
    for (const [id, upload] of stored) {
      if (upload.modifiedAt >= cutoff || (await this.metadata.getUpload(id)) !== null) continue;
      if (!dryRun) await this.store.deleteUpload(id, null);
      add(report, { id, repository: null, size: upload.size }, upload.size);
    }
    return report;
  }
}

/** Hands `items` to `handle` in batches of `size` digests (the last one shorter); entries without a digest's shape are skipped. */
export async function inBatches(items: AsyncIterable<StoredBlob>, size: number, handle: (batch: StoredBlob[]) => Promise<void>): Promise<void> {
  let batch: StoredBlob[] = [];
  for await (const item of items) {
    if (!DIGEST.test(item.digest)) continue;
    batch.push(item);
    if (batch.length === size) {
      await handle(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await handle(batch);
}

function section<T>(): ListedSection<T> {
  return { count: 0, bytes: 0, items: [], truncated: false };
}

function add<T>(target: ListedSection<T>, item: T, bytes: number): void {
  target.count++;
  target.bytes += bytes;
  if (target.items.length < MAX_LISTED) target.items.push(item);
  else target.truncated = true;
}

/** The counts of a report, for a log line. */
export function gcSummary(report: GcReport): Record<string, number | boolean | string> {
  return {
    dryRun: report.dryRun,
    trigger: report.trigger,
    tagsDeleted: report.tagsDeleted.count,
    manifestsRemoved: report.manifestsRemoved.count,
    blobsDeleted: report.blobsDeleted.count,
    orphanFilesDeleted: report.orphanFilesDeleted.count,
    uploadsPurged: report.uploadsPurged.count,
    bytesReclaimed: report.bytesReclaimed,
  };
}
