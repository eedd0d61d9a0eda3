/**
 * What garbage collection, retention, usage reports and fsck need from the metadata store,
 * beyond the MetadataStore port the request path uses. Kept apart so that the request path's
 * port stays small; asynchronous so that a PostgreSQL store can implement it too.
 *
 * The deletion protocol every implementation follows (see docs/lifecycle.md):
 * 1. mark: in one transaction, pick blobs nothing references (no manifest anywhere, no link or
 *    upload newer than the grace period, no live claim), set their `deleting` mark and remove
 *    their repository links. From then on linkBlob and claimBlob refuse the digest, and a
 *    manifest push that references it fails its in-transaction check.
 * 2. delete the files;
 * 3. forget: delete the marked rows.
 */
import type { Actor, UploadRecord } from './ports.js';

export interface BlobRecord {
  digest: string;
  size: number;
}

export interface TagRecord {
  tag: string;
  digest: string;
  /** When the tag was last pushed (ms since the epoch). */
  updatedAt: number;
}

/** A tag retention decided to delete: deleted only if it still points at `digest`. */
export interface RetentionDrop {
  repository: string;
  tag: string;
  digest: string;
  /** The policy's label, for reports. */
  policy: string;
}

export type ManifestRemovalReason = 'retention' | 'untagged' | 'subject-gone';

export interface RemovedManifest {
  repository: string;
  digest: string;
  size: number;
  reason: ManifestRemovalReason;
}

export interface ManifestSweepPlan {
  now: number;
  /** Manifests pushed at or after this instant are kept whatever else holds. */
  graceCutoff: number;
  /** Untagged manifests pushed before this instant are collected; null keeps them all. */
  untaggedCutoff: number | null;
  retention: RetentionDrop[];
  actor: Actor;
  /** Compute everything, change nothing (the result also lists the blobs that would be marked). */
  dryRun: boolean;
  /** With dryRun: the cut-offs a blob mark would use. */
  blobCutoffs?: BlobCutoffs;
}

export interface ManifestSweepResult {
  /** Tags retention deleted (those that moved since evaluation are left alone). */
  tagsDeleted: RetentionDrop[];
  /** Manifests removed from a repository: by retention (last tag gone) or by collection. */
  manifestsRemoved: RemovedManifest[];
  /** Manifest bytes deleted from the database (manifests no repository holds any more). */
  manifestsPurged: BlobRecord[];
  /** Dry run only: the blobs a mark would pick after this sweep. */
  blobsToMark?: BlobRecord[];
}

export interface BlobCutoffs {
  now: number;
  /** Blobs created or linked at or after this instant are kept. */
  graceCutoff: number;
  /** Claims older than this are stale (their process died) and protect nothing. */
  claimCutoff: number;
}

export interface LeaseState {
  acquired: boolean;
  holder: string;
  acquiredAt: number;
}

export interface RepositoryUsage {
  repository: string;
  tags: number;
  manifests: number;
  /** Distinct blobs the repository's manifests reference. */
  blobs: number;
  /** Stored bytes: its manifests plus the distinct blobs they reference (what pulling everything downloads). */
  logicalBytes: number;
  /** Bytes no other repository's manifests use: what deleting the repository would free. */
  uniqueBytes: number;
  /**
   * What quotas count: its manifests plus every distinct blob linked into it or referenced by
   * them, including uploads no manifest names yet (those go with the next collection).
   */
  heldBytes: number;
}

export interface RegistryUsage {
  repositories: number;
  manifests: number;
  blobs: number;
  /** Bytes held, each blob and manifest once (deduplicated). */
  storedBytes: number;
  /** Sum of every repository's logical bytes: what the registry would hold without sharing. */
  logicalBytes: number;
  /** Blobs no manifest references (uploads awaiting a manifest, or garbage). */
  unreferencedBlobs: number;
  unreferencedBytes: number;
}

export type ManifestProblemKind = 'manifest-blob-missing' | 'manifest-blob-unlinked' | 'manifest-child-missing';

export interface ManifestProblem {
  kind: ManifestProblemKind;
  repository: string;
  manifest: string;
  /** The blob or child manifest that is missing or not linked. */
  digest: string;
}

export interface ImageRef {
  repository: string;
  manifest: string;
  tags: string[];
}

export interface GcRunRecord {
  id: number;
  startedAt: number;
  finishedAt: number;
  dryRun: boolean;
  trigger: string;
  report: unknown;
}

export interface LifecycleStore {
  /**
   * The clock the store records instants with (ms since the epoch), when it is not this
   * process's: a database several replicas share. A collection's cut-offs come from it, so that
   * they compare with what the store recorded whatever the replicas' clocks say.
   */
  currentTime?(): Promise<number>;

  // --- leases: one collection (or repairing fsck) at a time, across processes
  acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseState>;
  renewLease(name: string, holder: string, ttlMs: number): Promise<void>;
  releaseLease(name: string, holder: string): Promise<void>;

  // --- retention
  tagsOf(repository: string): Promise<TagRecord[]>;

  // --- collection
  /** Retention drops, then mark and sweep of manifests, in one transaction (rolled back in a dry run). */
  sweepManifests(plan: ManifestSweepPlan): Promise<ManifestSweepResult>;
  /** Step 1 of the deletion protocol for up to `limit` unreferenced blobs; returns those marked. */
  markUnreferencedBlobs(cutoffs: BlobCutoffs, limit: number): Promise<BlobRecord[]>;
  /** Of these digests, those with no metadata row at all (files nothing points at). */
  digestsWithoutRecord(digests: string[]): Promise<string[]>;
  /** Marks files with no metadata row, unless one appeared or a live claim holds the digest; returns those marked. */
  markOrphans(blobs: BlobRecord[], cutoffs: BlobCutoffs): Promise<BlobRecord[]>;
  /** Marks blobs whatever references them (fsck repairs of missing or damaged content). */
  markBlobs(digests: string[]): Promise<BlobRecord[]>;
  /** Blobs marked and not yet forgotten (a collection that stopped half-way). */
  markedBlobs(limit: number): Promise<BlobRecord[]>;
  /** Step 3: deletes the marked rows of these digests. */
  forgetBlobs(digests: string[]): Promise<void>;
  /** Deletes claims older than the cut-off; returns how many. */
  purgeStaleClaims(claimCutoff: number): Promise<number>;
  /** Upload sessions whose last change was before the instant (idle ones, for the purge). */
  uploadsIdleSince(instant: number): Promise<UploadRecord[]>;
  recordGcRun(run: Omit<GcRunRecord, 'id'>): Promise<void>;
  /** The latest runs first. */
  gcRuns(limit: number, options?: { includeDryRuns?: boolean }): Promise<GcRunRecord[]>;
  /** Totals over every collection that deleted (dry runs excluded). */
  gcTotals(): Promise<{ runs: number; bytesReclaimed: number; lastRunAt: number | null }>;

  // --- usage and quotas
  /** What a repository holds as quotas count it (RepositoryUsage.heldBytes), 0 when it does not exist. */
  heldBytes(repository: string): Promise<number>;
  repositoryUsage(repository: string): Promise<RepositoryUsage | null>;
  /** Every repository's usage, in name order. */
  repositoriesUsage(): Promise<RepositoryUsage[]>;
  registryUsage(): Promise<RegistryUsage>;
  /** Whether the repository holds the blob, linked or referenced (it already counts towards its quota). */
  holdsBlob(repository: string, digest: string): Promise<boolean>;

  // --- integrity
  /** Blob records after `after` in digest order (marked ones excluded). */
  blobPage(after: string, limit: number): Promise<BlobRecord[]>;
  /** Manifest digests and bytes after `after` in digest order. */
  manifestPage(after: string, limit: number): Promise<Array<{ digest: string; content: Buffer }>>;
  manifestProblems(): Promise<ManifestProblem[]>;
  /** Tags pointing at a manifest their repository does not hold. */
  danglingTags(): Promise<Array<{ repository: string; tag: string; digest: string }>>;
  /** The images (manifest in a repository, with its tags) that reference each blob. */
  imagesUsing(digests: string[]): Promise<Map<string, ImageRef[]>>;
}
