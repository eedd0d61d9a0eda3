/**
 * Blob upload sessions: start, append (streamed or chunked), status, complete, cancel.
 *
 * Bytes stream straight into the session's temporary file while a running hash follows
 * them, so completing an upload needs no second pass over the data. The running hash lives
 * in memory only; when it is lost (a restart, a failed write) it is recomputed from the file.
 */
import { randomUUID, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { blobBeingCollected, claimBlob, DEFAULT_CLAIM_OPTIONS, type ClaimOptions } from './blob-claims.js';
import { createDigester, digestOf, digestStream } from './digests.js';
import { RegistryError } from './errors.js';
import type { Actor, BlobStore, ByteRange, MetadataStore, RepositoryBlob, UploadSession } from './ports.js';
import { parseDigest } from './references.js';
import type { RegistryStats } from './stats.js';

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface UploadStatus {
  id: string;
  /** Bytes received so far. */
  size: number;
}

/** A request body to append, with what the client declared about it. */
export interface UploadChunk {
  body: Readable;
  /** The `Content-Range` the client sent, if any. */
  range?: ByteRange;
  /** The `Content-Length` the client sent, if any. */
  length?: number;
}

/** The running sha256 of an upload, valid while `size` equals the file's size. */
interface RunningHash {
  hash: Hash;
  size: number;
}

export class UploadService {
  private readonly runningHashes = new Map<string, RunningHash>();
  private readonly busy = new Set<string>();

  constructor(
    private readonly store: BlobStore,
    private readonly metadata: MetadataStore,
    private readonly stats: RegistryStats,
    /** Checks a verified blob may join the repository (quotas); throws to refuse it. */
    private readonly admit: (repository: string, digest: string, size: number) => Promise<void> = async () => {},
    private readonly claims: ClaimOptions = DEFAULT_CLAIM_OPTIONS,
  ) {}

  async start(repository: string): Promise<UploadStatus> {
    const session: UploadSession = { id: randomUUID(), repository, createdAt: Date.now() };
    await this.store.createUpload(session.id);
    await this.metadata.createUpload(session);
    this.runningHashes.set(session.id, { hash: createDigester(), size: 0 });
    return { id: session.id, size: 0 };
  }

  async status(repository: string, id: string): Promise<UploadStatus> {
    await this.session(repository, id);
    return { id, size: await this.size(id) };
  }

  /** Appends one chunk (PATCH). */
  async append(repository: string, id: string, chunk: UploadChunk): Promise<UploadStatus> {
    await this.session(repository, id);
    return this.exclusively(id, async () => ({ id, size: await this.write(id, chunk) }));
  }

  /**
   * Finishes an upload (PUT ?digest=), with an optional last chunk: verifies the digest,
   * makes the blob durable under it and links it into the repository. A wrong digest
   * cancels the session; nothing of it ever becomes visible.
   */
  async complete(repository: string, id: string, digest: string, lastChunk: UploadChunk | null, actor: Actor): Promise<RepositoryBlob> {
    const { algorithm } = parseDigest(digest);
    await this.session(repository, id);
    return this.exclusively(id, async () => {
      const size = lastChunk ? await this.write(id, lastChunk) : await this.size(id);
      const running = this.runningHashes.get(id);
      const actual =
        algorithm === 'sha256' && running && running.size === size
          ? digestOf(running.hash)
          : await digestStream(await this.store.readUpload(id), algorithm);
      this.runningHashes.delete(id);
      if (actual !== digest) {
        await this.discard(id);
        throw new RegistryError('DIGEST_INVALID', `uploaded content has digest ${actual}, not ${digest}`, {
          expected: digest,
          actual,
        });
      }
      try {
        await this.admit(repository, digest, size);
      } catch (error) {
        await this.discard(id);
        throw error;
      }
      const blob = { digest, size };
      // Between the claim and the link, garbage collection leaves the digest alone.
      const claim = await claimBlob(this.metadata, digest, this.claims);
      if (claim === null) throw blobBeingCollected(digest);
      try {
        const stored = await this.store.stat(digest);
        // A stored copy of another size is damaged: this verified upload replaces it.
        if (stored && stored.size !== size) await this.store.delete(digest);
        await this.store.commitUpload(id, digest);
        this.stats.blobsCommitted++;
        await this.metadata.linkBlob(repository, blob, actor, claim);
      } catch (error) {
        await this.metadata.releaseBlobClaim(claim);
        throw error;
      }
      await this.metadata.deleteUpload(id);
      return blob;
    });
  }

  /** Ends a session nobody finished (garbage collection of stale uploads): its file, record and running hash. */
  async expire(id: string): Promise<void> {
    if (this.busy.has(id)) return;
    await this.discard(id);
  }

  /** A whole blob in one request (POST ?digest=). */
  async uploadWhole(repository: string, digest: string, chunk: UploadChunk, actor: Actor): Promise<RepositoryBlob> {
    parseDigest(digest);
    const { id } = await this.start(repository);
    try {
      return await this.complete(repository, id, digest, chunk, actor);
    } catch (error) {
      await this.discard(id);
      throw error;
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.session(repository, id);
    await this.discard(id);
  }

  private async discard(id: string): Promise<void> {
    this.runningHashes.delete(id);
    await this.store.deleteUpload(id);
    await this.metadata.deleteUpload(id);
  }

  private async session(repository: string, id: string): Promise<UploadSession> {
    const session = UPLOAD_ID.test(id) ? await this.metadata.getUpload(id) : null;
    if (!session || session.repository !== repository) {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id });
    }
    return session;
  }

  private async size(id: string): Promise<number> {
    const size = await this.store.uploadSize(id);
    if (size === null) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload data is missing', { uuid: id });
    return size;
  }

  /** Writes a chunk at the end of the upload after checking its declared range; returns the new size. */
  private async write(id: string, chunk: UploadChunk): Promise<number> {
    const size = await this.size(id);
    if (chunk.range) checkRange(chunk.range, chunk.length, size);
    const running = await this.runningHash(id, size);
    running.size = -1; // invalid until the write completes
    let newSize: number;
    try {
      newSize = await this.store.appendUpload(id, chunk.body, (bytes) => {
        running.hash.update(bytes);
        this.stats.uploadedBytes += bytes.length;
      });
    } catch (error) {
      this.runningHashes.delete(id);
      throw error;
    }
    running.size = newSize;
    const received = newSize - size;
    if (chunk.range && received !== chunk.range.end - chunk.range.start + 1) {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        `Content-Range declared ${chunk.range.end - chunk.range.start + 1} bytes but ${received} arrived`,
        undefined,
        { headers: rangeHeader(newSize) },
      );
    }
    return newSize;
  }

  private async runningHash(id: string, size: number): Promise<RunningHash> {
    const known = this.runningHashes.get(id);
    if (known && known.size === size) return known;
    // Lost (restart or failed write): recompute once from what the file holds.
    const hash = createDigester();
    for await (const bytes of await this.store.readUpload(id)) hash.update(bytes as Buffer);
    const rebuilt = { hash, size };
    this.runningHashes.set(id, rebuilt);
    return rebuilt;
  }

  private async exclusively<T>(id: string, work: () => Promise<T>): Promise<T> {
    if (this.busy.has(id)) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload', { uuid: id });
    }
    this.busy.add(id);
    try {
      return await work();
    } finally {
      this.busy.delete(id);
    }
  }
}

/** Chunks must arrive in order: the first byte of each is the upload's current size. */
function checkRange(range: ByteRange, length: number | undefined, size: number): void {
  const declared = range.end - range.start + 1;
  if (range.start !== size || range.end < range.start || (length !== undefined && length !== declared)) {
    throw new RegistryError(
      'BLOB_UPLOAD_INVALID',
      `chunk range ${range.start}-${range.end} does not continue the upload at byte ${size}` +
        (length !== undefined && length !== declared ? ` (or disagrees with Content-Length ${length})` : ''),
      { size },
      { status: 416, headers: rangeHeader(size) },
    );
  }
}

/** The `Range` header that tells a client how much of an upload the registry holds. */
export function rangeHeader(size: number): Record<string, string> {
  return { Range: `0-${Math.max(size - 1, 0)}` };
}
