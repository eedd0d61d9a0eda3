/**
 * Blob upload sessions: start, append (streamed or chunked), status, complete, cancel.
 *
 * Bytes stream straight into the blob store while a running hash follows them, so completing
 * an upload needs no second pass over the data. Everything needed to continue an upload lives
 * in its metadata record (size, the driver's progress, the hash's saved state), and one request
 * at a time writes to it, holding the record's writer lease: any process may serve any
 * request of any upload, also after a restart.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobBeingCollected, claimBlob, DEFAULT_CLAIM_OPTIONS, type ClaimOptions } from './blob-claims.js';
import { digestStream, resumeDigest, startDigest, type RunningDigest } from './digests.js';
import { RegistryError } from './errors.js';
import type { Actor, BlobLinkGuard, BlobStore, ByteRange, MetadataStore, RepositoryBlob, UploadProgress, UploadRecord } from './ports.js';
import { parseDigest } from './references.js';
import type { RegistryStats } from './stats.js';
import { BoundedMap } from '../runtime/bounded-map.js';

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Running hashes kept in this process (node:crypto's, which cannot be saved). */
const IN_PROCESS_HASHES = 1_000;

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

export interface UploadServiceOptions {
  /**
   * Save the running hash with every append (resumable, slower), so that any process
   * continues the upload without reading it back: needed where reading back is a download
   * (object storage) or impossible (an unfinished multipart upload). Off, node:crypto's hash
   * stays in this process and a process without it re-reads the upload's local file once.
   */
  resumableHashes: boolean;
  /** Checks a verified blob may join the repository (quotas) before it is committed; throws to refuse it. */
  admit?: (repository: string, digest: string, size: number) => Promise<void>;
  /** The exact check of the link, in its transaction (quotas). */
  linkGuard?: (repository: string) => BlobLinkGuard | undefined;
  claims?: ClaimOptions;
  /** How long a writer's lease lasts unless renewed (it is renewed while the writer works). */
  leaseMs?: number;
  /** How long completing or cancelling waits for another request's lease to end. */
  leaseWaitMs?: number;
}

/**
 * A live writer renews its lease every third of this; one that died holding it (a replica
 * killed in the middle of a request) holds it at most this long. Shorter than the wait of a
 * completing request, so that a completion replayed on another replica (nginx replays a PUT
 * whose replica died) outwaits the dead writer and completes, instead of being refused.
 */
export const DEFAULT_LEASE_MS = 8_000;
/** How long completing or cancelling waits for another writer's lease to end. */
export const DEFAULT_LEASE_WAIT_MS = 10_000;
const LEASE_POLL_MS = 20;

/** A taken writer lease: the record as it was taken, and this writer's name. */
interface Held {
  upload: UploadRecord;
  writer: string;
}

export class UploadService {
  /** node:crypto hashes by upload id, each valid while its size is the record's. */
  private readonly inProcess = new BoundedMap<string, { digest: RunningDigest; size: number }>(IN_PROCESS_HASHES);
  private readonly claims: ClaimOptions;
  private readonly leaseMs: number;
  private readonly leaseWaitMs: number;

  constructor(
    private readonly store: BlobStore,
    private readonly metadata: MetadataStore,
    private readonly stats: RegistryStats,
    private readonly options: UploadServiceOptions = { resumableHashes: false },
  ) {
    this.claims = options.claims ?? DEFAULT_CLAIM_OPTIONS;
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.leaseWaitMs = options.leaseWaitMs ?? DEFAULT_LEASE_WAIT_MS;
  }

  async start(repository: string): Promise<UploadStatus> {
    const id = randomUUID();
    const progress = await this.store.createUpload(id);
    const now = Date.now();
    await this.metadata.createUpload({ id, repository, createdAt: now, updatedAt: now, ...progress, hashState: null });
    return { id, size: progress.size };
  }

  async status(repository: string, id: string): Promise<UploadStatus> {
    const upload = await this.session(repository, id);
    return { id, size: upload.size };
  }

  /** Appends one chunk (PATCH); refused at once while another request writes to the upload. */
  async append(repository: string, id: string, chunk: UploadChunk): Promise<UploadStatus> {
    return this.exclusively(repository, id, false, async (held, renewed) => {
      const { progress, digest } = await this.write(held.upload, chunk, this.options.resumableHashes);
      const hashState = digest.save();
      if (!(await this.metadata.saveUpload(id, held.writer, { ...progress, hashState }))) throw renewed.lost();
      if (hashState === null) this.inProcess.set(id, { digest, size: progress.size });
      checkReceived(chunk, held.upload.size, progress.size);
      return { id, size: progress.size };
    });
  }

  /**
   * Finishes an upload (PUT ?digest=), with an optional last chunk: verifies the digest,
   * makes the blob durable under it and links it into the repository. A wrong digest
   * cancels the session; nothing of it ever becomes visible. Waits (briefly) for a request
   * still writing to the upload, so that against a cancel one of the two wins cleanly.
   */
  async complete(repository: string, id: string, digest: string, lastChunk: UploadChunk | null, actor: Actor): Promise<RepositoryBlob> {
    const { algorithm } = parseDigest(digest);
    return this.exclusively(repository, id, true, async (held) => {
      let progress: UploadProgress = held.upload;
      let running: RunningDigest | null = null;
      if (lastChunk) {
        // Finished in this request: nothing needs to resume this hash.
        ({ progress, digest: running } = await this.write(held.upload, lastChunk, false));
        checkReceived(lastChunk, held.upload.size, progress.size);
      } else if (algorithm === 'sha256') {
        running = await this.runningDigest(held.upload, false).catch(() => null);
      }
      this.inProcess.delete(id);
      let actual: string;
      if (algorithm === 'sha256' && running) {
        actual = running.digest();
      } else {
        const read = await this.store.readUpload(id, progress);
        progress = read.progress;
        actual = await digestStream(read.stream, algorithm);
      }
      if (actual !== digest) {
        await this.discard(id, progress);
        throw new RegistryError('DIGEST_INVALID', `uploaded content has digest ${actual}, not ${digest}`, { expected: digest, actual });
      }
      try {
        await this.options.admit?.(repository, digest, progress.size);
      } catch (error) {
        await this.discard(id, progress);
        throw error;
      }
      const blob = { digest, size: progress.size };
      // Between the claim and the link, garbage collection leaves the digest alone.
      const claim = await claimBlob(this.metadata, digest, this.claims);
      if (claim === null) throw blobBeingCollected(digest);
      try {
        const stored = await this.store.stat(digest);
        // A stored copy of another size is damaged: this verified upload replaces it.
        if (stored && stored.size !== progress.size) await this.store.delete(digest);
        await this.store.commitUpload(id, progress, digest);
        this.stats.blobsCommitted++;
        await this.metadata.linkBlob(repository, blob, actor, claim, this.options.linkGuard?.(repository));
      } catch (error) {
        await this.metadata.releaseBlobClaim(claim);
        throw error;
      }
      await this.metadata.deleteUpload(id);
      return blob;
    });
  }

  /**
   * Ends a session nobody finished (the purge of idle uploads): its data and record. False
   * when a request is writing to it right now (it is not idle after all).
   */
  async expire(id: string): Promise<boolean> {
    const writer = writerName();
    const lease = await this.metadata.leaseUpload(id, writer, this.leaseMs);
    if (lease.state === 'busy') return false;
    if (lease.state === 'acquired') await this.discard(id, lease.upload);
    return true;
  }

  /** A whole blob in one request (POST ?digest=). */
  async uploadWhole(repository: string, digest: string, chunk: UploadChunk, actor: Actor): Promise<RepositoryBlob> {
    parseDigest(digest);
    const { id } = await this.start(repository);
    try {
      return await this.complete(repository, id, digest, chunk, actor);
    } catch (error) {
      const left = await this.metadata.getUpload(id);
      if (left) await this.discard(id, left);
      throw error;
    }
  }

  /** Cancels an upload (DELETE); waits (briefly) for a request still writing to it, so that against a complete one of the two wins cleanly. */
  async cancel(repository: string, id: string): Promise<void> {
    await this.exclusively(repository, id, true, (held) => this.discard(id, held.upload));
  }

  /** Ends the session for every process first (its record), then removes its data. */
  private async discard(id: string, progress: UploadProgress): Promise<void> {
    this.inProcess.delete(id);
    await this.metadata.deleteUpload(id);
    await this.store.deleteUpload(id, progress);
  }

  private async session(repository: string, id: string): Promise<UploadRecord> {
    const upload = UPLOAD_ID.test(id) ? await this.metadata.getUpload(id) : null;
    if (!upload || upload.repository !== repository) throw uploadUnknown(id);
    return upload;
  }

  /** Writes a chunk at the end of the upload after checking its declared range; returns the new progress and the hash that saw every byte. */
  private async write(upload: UploadRecord, chunk: UploadChunk, resumable: boolean): Promise<{ progress: UploadProgress; digest: RunningDigest }> {
    if (chunk.range) checkRange(chunk.range, chunk.length, upload.size);
    const digest = await this.runningDigest(upload, resumable);
    // Whatever happens below, a hash kept in memory no longer matches the record.
    this.inProcess.delete(upload.id);
    const progress = await this.store.appendUpload(upload.id, upload, chunk.body, (bytes) => {
      digest.update(bytes);
      this.stats.uploadedBytes += bytes.length;
    });
    return { progress, digest };
  }

  /** The upload's running hash at its recorded size: saved, kept in this process, new, or rebuilt from its data. */
  private async runningDigest(upload: UploadRecord, resumable: boolean): Promise<RunningDigest> {
    if (upload.hashState !== null) {
      const resumed = await resumeDigest(upload.hashState);
      if (resumed) return resumed;
    }
    const kept = this.inProcess.get(upload.id);
    if (kept && kept.size === upload.size) return kept.digest;
    const digest = await startDigest(resumable);
    if (upload.size === 0) return digest;
    if (this.options.resumableHashes) {
      // Unfinished object-storage uploads cannot be read back.
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'the running hash of this upload was lost; start the upload again', { uuid: upload.id });
    }
    // Started by another process (or before a restart): hash what the local file holds, once.
    const { stream } = await this.store.readUpload(upload.id, upload);
    for await (const bytes of stream) digest.update(bytes as Buffer);
    return digest;
  }

  /**
   * Runs `work` holding the upload's writer lease, renewed while it runs. Without `wait`, a lease
   * held by another request refuses at once; with it, it is awaited for up to leaseWaitMs.
   */
  private async exclusively<T>(
    repository: string,
    id: string,
    wait: boolean,
    work: (held: Held, renewed: { lost(): RegistryError }) => Promise<T>,
  ): Promise<T> {
    if (!UPLOAD_ID.test(id)) throw uploadUnknown(id);
    const writer = writerName();
    const deadline = Date.now() + (wait ? this.leaseWaitMs : 0);
    for (;;) {
      const lease = await this.metadata.leaseUpload(id, writer, this.leaseMs);
      if (lease.state === 'unknown') throw uploadUnknown(id);
      if (lease.state === 'acquired') {
        if (lease.upload.repository !== repository) {
          await this.metadata.releaseUpload(id, writer);
          throw uploadUnknown(id);
        }
        return this.holding({ upload: lease.upload, writer }, work);
      }
      if (Date.now() >= deadline) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload', { uuid: id });
      }
      await sleep(LEASE_POLL_MS);
    }
  }

  private async holding<T>(held: Held, work: (held: Held, renewed: { lost(): RegistryError }) => Promise<T>): Promise<T> {
    const { id } = held.upload;
    let lost = false;
    const renewal = setInterval(() => {
      this.metadata.leaseUpload(id, held.writer, this.leaseMs).then(
        (lease) => void (lost ||= lease.state !== 'acquired'),
        () => undefined, // the next save finds out
      );
    }, this.leaseMs / 3);
    renewal.unref();
    try {
      return await work(held, {
        lost: () =>
          new RegistryError('BLOB_UPLOAD_INVALID', lost ? 'this request stalled and another took over the upload' : 'the upload was taken over or ended meanwhile', {
            uuid: id,
          }),
      });
    } finally {
      clearInterval(renewal);
      await this.metadata.releaseUpload(id, held.writer);
    }
  }
}

/** Who holds a lease: this process, and this request within it. */
function writerName(): string {
  return `${os.hostname()}/${process.pid}/${randomUUID()}`;
}

function uploadUnknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id });
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

/** A chunk whose Content-Range promised other than what arrived (the bytes that did arrive are kept). */
function checkReceived(chunk: UploadChunk, sizeBefore: number, sizeAfter: number): void {
  if (!chunk.range) return;
  const received = sizeAfter - sizeBefore;
  const declared = chunk.range.end - chunk.range.start + 1;
  if (received !== declared) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `Content-Range declared ${declared} bytes but ${received} arrived`, undefined, {
      headers: rangeHeader(sizeAfter),
    });
  }
}

/** The `Range` header that tells a client how much of an upload the registry holds. */
export function rangeHeader(size: number): Record<string, string> {
  return { Range: `0-${Math.max(size - 1, 0)}` };
}
