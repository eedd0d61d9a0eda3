/**
 * Integrity check: every stored blob against its digest, and metadata against storage. Each
 * finding says what is wrong and what its repair does; with `repair`, every repairable finding
 * is repaired (under the collection lease, so no garbage collection runs meanwhile) and marked so.
 *
 * Damaged or missing content cannot be conjured back: its repair removes the blob's record so
 * that the next push of an image holding it uploads it again (a HEAD then answers 404), and the
 * finding names the images that cannot be pulled until then.
 */
import { algorithmOf, digestBytes, digestStream } from './digests.js';
import { isRegistryError, RegistryError } from './errors.js';
import { CLAIM_STALE_MS, inBatches, LIFECYCLE_ACTOR, withCollectionLease } from './gc.js';
import type { BlobRecord, ImageRef, LifecycleStore } from './lifecycle-store.js';
import type { BlobStore, MetadataStore, StoredBlob } from './ports.js';

const PAGE = 500;

export type FindingKind =
  | 'blob-missing'
  | 'blob-damaged'
  | 'file-orphan'
  | 'manifest-damaged'
  | 'manifest-blob-missing'
  | 'manifest-blob-unlinked'
  | 'manifest-child-missing'
  | 'tag-dangling'
  | 'deletion-unfinished';

export interface FsckFinding {
  kind: FindingKind;
  /** The blob or manifest digest the finding is about. */
  digest: string;
  repository?: string;
  /** The manifest whose reference is broken (manifest-* kinds). */
  manifest?: string;
  tag?: string;
  problem: string;
  /** What the repair does; for findings that cannot be repaired here, what the operator can do. */
  repair: string;
  repairable: boolean;
  /** Present when repairing was asked for: whether this finding was repaired. */
  repaired?: boolean;
  /** Why a repairable finding was not repaired. */
  repairError?: string;
  /** Images (manifest in a repository, with its tags) that reference a missing or damaged blob. */
  affects?: ImageRef[];
}

export interface FsckOptions {
  repair?: boolean;
  /** Files younger than this are not called orphans (an upload may be committing them). */
  gracePeriodSeconds?: number;
}

export interface FsckReport {
  repair: boolean;
  startedAt: string;
  finishedAt: string;
  checked: { blobs: number; bytes: number; files: number; manifests: number };
  findings: FsckFinding[];
  /** Findings left unrepaired (all of them without `repair`). */
  problems: number;
  repaired: number;
}

export class Fsck {
  constructor(
    private readonly store: BlobStore,
    private readonly metadata: MetadataStore,
    private readonly lifecycle: LifecycleStore,
    private readonly defaultGraceSeconds: number,
    private readonly clock: () => number = Date.now,
  ) {}

  async run(options: FsckOptions = {}): Promise<FsckReport> {
    const graceSeconds = options.gracePeriodSeconds ?? this.defaultGraceSeconds;
    // Only a repair changes anything, so only a repair excludes collections (and other repairs).
    if (!options.repair) return this.check(false, graceSeconds, async () => undefined);
    return withCollectionLease(
      this.lifecycle,
      (held) => new RegistryError('CONFLICT', `a garbage collection or repair is running (${held.holder}); try again when it is done`, { holder: held.holder }),
      (renew) => this.check(true, graceSeconds, renew),
    );
  }

  /** `renew` keeps the lease of a repair alive: called once per page of blobs or files and per repair. */
  private async check(repair: boolean, graceSeconds: number, renew: () => Promise<void>): Promise<FsckReport> {
    const started = this.clock();
    const checked = { blobs: 0, bytes: 0, files: 0, manifests: 0 };
    const findings: FsckFinding[] = [];

    if (repair) findings.push(...(await this.unfinishedDeletions()));
    findings.push(...(await this.checkBlobs(checked, renew)));
    findings.push(...(await this.checkFiles(checked, started - graceSeconds * 1000, renew)));
    findings.push(...(await this.checkManifests(checked)));
    findings.push(...(await this.checkReferences()));

    const broken = findings.filter((f) => f.kind === 'blob-missing' || f.kind === 'blob-damaged').map((f) => f.digest);
    if (broken.length) {
      const users = await this.lifecycle.imagesUsing(broken);
      for (const finding of findings) {
        if (finding.kind === 'blob-missing' || finding.kind === 'blob-damaged') finding.affects = users.get(finding.digest) ?? [];
      }
    }

    if (repair) {
      for (const finding of findings) {
        if (!finding.repairable) {
          finding.repaired = false;
          continue;
        }
        try {
          await renew();
          finding.repaired = await this.repairOne(finding, started);
          if (!finding.repaired) finding.repairError ??= 'the state changed meanwhile; nothing was done';
        } catch (error) {
          finding.repaired = false;
          finding.repairError = error instanceof Error ? error.message : String(error);
        }
      }
    }
    const repaired = findings.filter((f) => f.repaired).length;
    return {
      repair,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(Math.max(this.clock(), started)).toISOString(),
      checked,
      findings,
      problems: findings.length - repaired,
      repaired,
    };
  }

  /** Every blob record: is the file there, of the recorded size, hashing to its digest? */
  private async checkBlobs(checked: FsckReport['checked'], renew: () => Promise<void>): Promise<FsckFinding[]> {
    const findings: FsckFinding[] = [];
    let after = '';
    for (;;) {
      await renew();
      const page = await this.lifecycle.blobPage(after, PAGE);
      for (const blob of page) {
        checked.blobs++;
        const problem = await this.verify(blob);
        if (problem === 'missing') {
          findings.push({
            kind: 'blob-missing',
            digest: blob.digest,
            problem: `blob ${blob.digest} (${blob.size} bytes) is recorded but its file is missing`,
            repair: 'remove the blob record and its links, so that the next push of an image holding it uploads it again',
            repairable: true,
          });
        } else if (problem !== null) {
          checked.bytes += blob.size;
          findings.push({
            kind: 'blob-damaged',
            digest: blob.digest,
            problem: `blob ${blob.digest} is damaged: ${problem}`,
            repair: 'delete the damaged file and the blob record, so that the next push of an image holding it uploads it again',
            repairable: true,
          });
        } else {
          checked.bytes += blob.size;
        }
      }
      if (page.length < PAGE) return findings;
      after = page[page.length - 1]!.digest;
    }
  }

  /** null when intact, 'missing', or what is wrong with the content. */
  private async verify(blob: BlobRecord): Promise<string | null> {
    const stat = await this.store.stat(blob.digest);
    if (!stat) return 'missing';
    if (stat.size !== blob.size) return `its file holds ${stat.size} bytes, ${blob.size} were stored`;
    let actual: string;
    try {
      actual = await digestStream(await this.store.read(blob.digest), algorithmOf(blob.digest));
    } catch (error) {
      if (isRegistryError(error) && error.code === 'BLOB_UNKNOWN') return 'missing';
      throw error;
    }
    return actual === blob.digest ? null : `its content hashes to ${actual}`;
  }

  /** Files in blob storage no record points at (one listing gives their sizes and ages). */
  private async checkFiles(checked: FsckReport['checked'], cutoff: number, renew: () => Promise<void>): Promise<FsckFinding[]> {
    const findings: FsckFinding[] = [];
    const counted = (async function* (listing: AsyncIterable<StoredBlob>) {
      for await (const blob of listing) {
        checked.files++;
        yield blob;
      }
    })(this.store.list());
    await inBatches(counted, PAGE, async (listed) => {
      await renew();
      const unrecorded = new Set(await this.lifecycle.digestsWithoutRecord(listed.map((blob) => blob.digest)));
      for (const { digest, size, modifiedAt } of listed) {
        if (!unrecorded.has(digest) || modifiedAt >= cutoff) continue;
        findings.push({
          kind: 'file-orphan',
          digest,
          problem: `file of ${digest} (${size} bytes) is in blob storage but no record points at it`,
          repair: 'delete the file',
          repairable: true,
        });
      }
    });
    return findings;
  }

  /** Manifest bytes against their digests. */
  private async checkManifests(checked: FsckReport['checked']): Promise<FsckFinding[]> {
    const findings: FsckFinding[] = [];
    let after = '';
    for (;;) {
      const page = await this.lifecycle.manifestPage(after, PAGE);
      for (const manifest of page) {
        checked.manifests++;
        const actual = digestBytes(manifest.content, algorithmOf(manifest.digest));
        if (actual !== manifest.digest) {
          findings.push({
            kind: 'manifest-damaged',
            digest: manifest.digest,
            problem: `manifest ${manifest.digest} is damaged in the database: its bytes hash to ${actual}`,
            repair: 'none here: push the image again (by digest it restores the manifest), or delete it',
            repairable: false,
          });
        }
      }
      if (page.length < PAGE) return findings;
      after = page[page.length - 1]!.digest;
    }
  }

  /** What manifests and tags point at: blobs and child manifests in the repository, manifests for tags. */
  private async checkReferences(): Promise<FsckFinding[]> {
    const findings: FsckFinding[] = [];
    for (const problem of await this.lifecycle.manifestProblems()) {
      const base = { digest: problem.digest, repository: problem.repository, manifest: problem.manifest };
      if (problem.kind === 'manifest-blob-unlinked') {
        findings.push({
          ...base,
          kind: problem.kind,
          problem: `manifest ${problem.manifest} in ${problem.repository} references blob ${problem.digest}, which is stored but not linked into the repository`,
          repair: 'link the blob into the repository again',
          repairable: true,
        });
      } else if (problem.kind === 'manifest-blob-missing') {
        findings.push({
          ...base,
          kind: problem.kind,
          problem: `manifest ${problem.manifest} in ${problem.repository} references blob ${problem.digest}, which the registry does not hold`,
          repair: 'none here: push the image again to restore the blob, or delete the manifest',
          repairable: false,
        });
      } else {
        findings.push({
          ...base,
          kind: problem.kind,
          problem: `index ${problem.manifest} in ${problem.repository} lists manifest ${problem.digest}, which is not in the repository`,
          repair: 'none here: push the missing manifest again, or delete the index',
          repairable: false,
        });
      }
    }
    for (const tag of await this.lifecycle.danglingTags()) {
      findings.push({
        kind: 'tag-dangling',
        digest: tag.digest,
        repository: tag.repository,
        tag: tag.tag,
        problem: `tag ${tag.tag} of ${tag.repository} points at manifest ${tag.digest}, which is not in the repository`,
        repair: 'delete the tag',
        repairable: true,
      });
    }
    return findings;
  }

  private async unfinishedDeletions(): Promise<FsckFinding[]> {
    return (await this.lifecycle.markedBlobs(10_000)).map((blob) => ({
      kind: 'deletion-unfinished' as const,
      digest: blob.digest,
      problem: `blob ${blob.digest} was being deleted by a garbage collection that stopped half-way`,
      repair: 'finish the deletion (the file, then the record)',
      repairable: true,
    }));
  }

  private async repairOne(finding: FsckFinding, now: number): Promise<boolean> {
    switch (finding.kind) {
      case 'blob-missing':
      case 'blob-damaged':
      case 'deletion-unfinished': {
        const marked = await this.lifecycle.markBlobs([finding.digest]);
        if (marked.length === 0) return false;
        await this.store.delete(finding.digest);
        await this.lifecycle.forgetBlobs([finding.digest]);
        return true;
      }
      case 'file-orphan': {
        const size = (await this.store.stat(finding.digest))?.size ?? 0;
        const cutoffs = { now, graceCutoff: now, claimCutoff: now - CLAIM_STALE_MS };
        const marked = await this.lifecycle.markOrphans([{ digest: finding.digest, size }], cutoffs);
        if (marked.length === 0) return false;
        await this.store.delete(finding.digest);
        await this.lifecycle.forgetBlobs([finding.digest]);
        return true;
      }
      case 'manifest-blob-unlinked': {
        const blob = await this.metadata.getBlob(finding.digest);
        const claim = blob ? await this.metadata.claimBlob(finding.digest) : null;
        if (!blob || claim === null) return false;
        try {
          await this.metadata.linkBlob(finding.repository!, blob, LIFECYCLE_ACTOR, claim);
        } catch (error) {
          await this.metadata.releaseBlobClaim(claim);
          throw error;
        }
        return true;
      }
      case 'tag-dangling': {
        // Only if it still points where it did: a tag pushed again meanwhile is fine.
        if ((await this.metadata.resolveTag(finding.repository!, finding.tag!)) !== finding.digest) return false;
        return this.metadata.deleteTag(finding.repository!, finding.tag!, LIFECYCLE_ACTOR);
      }
      default:
        return false;
    }
  }
}
