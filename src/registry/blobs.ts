/** Blobs as a repository sees them: existence checks, reads, deletes and cross-repository mounts. */
import { isRegistryError, RegistryError } from './errors.js';
import type { Readable, Writable } from 'node:stream';
import type { Actor, BlobLinkGuard, BlobStore, ByteRange, MetadataStore, RepositoryAccess, RepositoryBlob, SendOptions } from './ports.js';
import type { RegistryStats } from './stats.js';
import { BoundedMap } from '../runtime/bounded-map.js';

/** How many repositories holding a blob to consider when looking for one the caller may read. */
const MOUNT_CANDIDATES = 50;

export interface BlobServiceOptions {
  /** Seconds a presigned URL given for a blob GET stays valid; unset: blobs are served by the registry. */
  redirectSeconds?: number;
  /**
   * Answer a HEAD for a blob the registry holds (in a repository the caller may pull) by
   * linking it into the requested repository, so pushes never re-send known layers.
   */
  linkKnownBlobsOnHead: boolean;
}

/** How long a blob found intact on disk is believed to stay so, and how many such answers are kept. */
const INTACT_TRUST_MS = 5_000;
const INTACT_TRUST_ENTRIES = 10_000;

export class BlobService {
  /** Digest → until when its last size check is trusted. */
  private readonly recentlyIntact = new BoundedMap<string, number>(INTACT_TRUST_ENTRIES);

  constructor(
    private readonly store: BlobStore,
    private readonly metadata: MetadataStore,
    private readonly options: BlobServiceOptions,
    private readonly stats: RegistryStats,
    /** The exact check of a link, in its transaction (quotas). */
    private readonly linkGuard?: (repository: string) => BlobLinkGuard | undefined,
  ) {}

  /** The blob as the repository holds it; throws BLOB_UNKNOWN otherwise. */
  async get(repository: string, digest: string): Promise<RepositoryBlob> {
    const blob = await this.metadata.getRepositoryBlob(repository, digest);
    if (!blob) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
    return blob;
  }

  /**
   * Existence check for a push in progress (HEAD). Beyond the repository's own blobs, a blob
   * held elsewhere that the caller may pull is linked in and reported as present.
   */
  async check(repository: string, digest: string, access: RepositoryAccess, actor: Actor): Promise<RepositoryBlob> {
    const own = await this.metadata.getRepositoryBlob(repository, digest);
    if (own) {
      // A stored copy of the wrong size (damaged) is reported absent: the client uploads it
      // again, and the upload replaces the damaged file.
      if (await this.intact(own)) return own;
      throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is damaged in storage; upload it again`, { digest });
    }
    if (this.options.linkKnownBlobsOnHead && access.canPush(repository)) {
      // Over its quota, the repository does not get the blob linked: the client uploads it and is told why.
      const linked = await this.mount(repository, digest, undefined, access, actor).catch((error: unknown) => {
        if (isRegistryError(error) && error.code === 'DENIED') return null;
        throw error;
      });
      if (linked) return linked;
    }
    throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
  }

  /**
   * Where a client can fetch the blob without the registry (a presigned object-store URL), or
   * null when pulls stream through the registry (redirects off, or a driver without URLs).
   */
  async redirectUrl(blob: RepositoryBlob): Promise<string | null> {
    if (this.options.redirectSeconds === undefined || !this.store.presign) return null;
    this.stats.redirectedPulls++;
    return this.store.presign(blob.digest, this.options.redirectSeconds);
  }

  /** Streams a blob the repository holds (found with {@link get}), refusing a damaged file. */
  async read(blob: RepositoryBlob, range?: ByteRange): Promise<Readable> {
    return this.store.read(blob.digest, range, blob.size);
  }

  /**
   * Serves a pull: writes a blob the repository holds (found with {@link get}) into `sink`,
   * counting the bytes served; see {@link BlobStore.send}.
   */
  async send(blob: RepositoryBlob, sink: Writable, options: Omit<SendOptions, 'expectedSize'> = {}): Promise<void> {
    const { onBytes } = options;
    const sending = this.store.send(blob.digest, sink, {
      ...options,
      expectedSize: blob.size,
      onBytes: (bytes) => {
        this.stats.servedBytes += bytes;
        onBytes?.(bytes);
      },
    });
    try {
      await sending;
    } catch (error) {
      this.recentlyIntact.delete(blob.digest); // a damaged or vanished file: check afresh next time
      throw error;
    }
  }

  /** Removes the blob from the repository; the content itself stays for others (GC reclaims it). */
  async delete(repository: string, digest: string): Promise<void> {
    if (!(await this.metadata.unlinkBlob(repository, digest))) {
      throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
    }
  }

  /**
   * Links a blob held by another repository into `repository`. With `from`, only that
   * repository is a source; without it, any repository the caller may pull. Null when no
   * source qualifies, so the caller falls back to an ordinary upload.
   */
  async mount(
    repository: string,
    digest: string,
    from: string | undefined,
    access: RepositoryAccess,
    actor: Actor,
  ): Promise<RepositoryBlob | null> {
    const already = await this.metadata.getRepositoryBlob(repository, digest);
    if (already) return already;
    const sources = from !== undefined ? [from] : await this.metadata.repositoriesWithBlob(digest, MOUNT_CANDIDATES);
    for (const source of sources) {
      if (source === repository || !access.canPull(source)) continue;
      const blob = await this.metadata.getRepositoryBlob(source, digest);
      if (!blob) continue;
      // The claim keeps garbage collection off the blob between the check below and the link;
      // a blob it is deleting right now is not mountable, and the client uploads it instead.
      const claim = await this.metadata.claimBlob(digest);
      if (claim === null) return null;
      try {
        // The content must really be there: metadata alone never makes a blob visible.
        if (!(await this.intact(blob))) {
          await this.metadata.releaseBlobClaim(claim);
          return null;
        }
        await this.metadata.linkBlob(repository, blob, actor, claim, this.linkGuard?.(repository));
      } catch (error) {
        await this.metadata.releaseBlobClaim(claim);
        if (isRegistryError(error) && error.code === 'BLOB_UNKNOWN') return null;
        throw error;
      }
      this.stats.blobsMounted++;
      return blob;
    }
    return null;
  }

  /**
   * Whether the stored content exists with the size recorded at commit (a cheap damage check).
   * A positive answer is trusted for INTACT_TRUST_MS: pushes HEAD the same layers over and over,
   * and a stat per HEAD was a sixth of its cost. GET checks the size of the file it serves anyway.
   */
  private async intact(blob: RepositoryBlob): Promise<boolean> {
    // Object storage writes objects whole: metadata answers, with no round trip per HEAD or mount.
    if (!this.store.statIsCheap) return true;
    const trustedUntil = this.recentlyIntact.get(blob.digest);
    if (trustedUntil !== undefined && trustedUntil > Date.now()) return true;
    const stored = await this.store.stat(blob.digest);
    const intact = stored !== null && stored.size === blob.size;
    if (intact) this.recentlyIntact.set(blob.digest, Date.now() + INTACT_TRUST_MS);
    else this.recentlyIntact.delete(blob.digest);
    return intact;
  }
}
