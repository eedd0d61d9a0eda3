/**
 * `registry migrate-blobs`: copies every committed blob of one store into another (the
 * filesystem under storage.root into the S3 bucket), through the stores' own upload path: each
 * blob streams from its file into an upload of the target (at most one multipart part in memory),
 * is hashed on the way, and becomes visible under its digest only when the hash matches. So a
 * blob present in the target is always a verified one, and a run that is stopped (Ctrl-C, kill,
 * a crash) is simply run again: it lists the target once, skips what is there with the right
 * size, and copies the rest. What a stopped run leaves under uploads/ in the bucket is removed by
 * the registry's purge of idle uploads.
 */
import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import { algorithmOf, createDigester, digestOf } from '../../registry/digests.js';
import type { BlobStore, UploadProgress } from '../../registry/ports.js';

export type BlobOutcome = 'copied' | 'present' | 'replaced' | 'corrupt' | 'failed';

export interface BlobProgress {
  digest: string;
  size: number;
  outcome: BlobOutcome;
  /** Blobs finished so far, this one included, of `total`. */
  done: number;
  total: number;
  /** What went wrong (corrupt, failed). */
  detail?: string;
}

export interface BlobMigrationSummary {
  total: number;
  totalBytes: number;
  copied: number;
  /** Already in the target with the right size (an earlier run, or the first pass). */
  present: number;
  /** In the target with a wrong size: deleted and copied again. */
  replaced: number;
  bytesCopied: number;
  /** Source files whose content does not hash to their digest: not copied. */
  corrupt: Array<{ digest: string; detail: string }>;
  failed: Array<{ digest: string; detail: string }>;
  durationMs: number;
}

export interface BlobMigrationOptions {
  source: BlobStore;
  target: BlobStore;
  /** Blobs copied at once. */
  concurrency: number;
  onProgress?: (progress: BlobProgress) => void;
}

class CorruptBlob extends Error {}

/** Streams one blob into an upload of the target, hashing it; commits it under its digest only when the hash matches. */
async function copyBlob(source: BlobStore, target: BlobStore, digest: string, size: number): Promise<void> {
  const algorithm = algorithmOf(digest);
  const hash = createDigester(algorithm);
  const id = `migrate-${randomUUID()}`;
  let progress: UploadProgress | null = null;
  try {
    progress = await target.createUpload(id);
    const stream = await source.read(digest, undefined, size);
    progress = await target.appendUpload(id, progress, stream, (chunk) => hash.update(chunk));
    const actual = digestOf(hash, algorithm);
    if (actual !== digest) throw new CorruptBlob(`content hashes to ${actual}`);
    if (progress.size !== size) throw new CorruptBlob(`read ${progress.size} bytes, the file has ${size}`);
    await target.commitUpload(id, progress, digest);
  } catch (error) {
    await target.deleteUpload(id, progress).catch(() => undefined);
    throw error;
  }
}

export async function migrateBlobs({ source, target, concurrency, onProgress }: BlobMigrationOptions): Promise<BlobMigrationSummary> {
  const started = Date.now();
  const present = new Map<string, number>();
  for await (const blob of target.list()) present.set(blob.digest, blob.size);
  const blobs: Array<{ digest: string; size: number }> = [];
  for await (const blob of source.list()) blobs.push({ digest: blob.digest, size: blob.size });

  const summary: BlobMigrationSummary = {
    total: blobs.length,
    totalBytes: blobs.reduce((sum, blob) => sum + blob.size, 0),
    copied: 0,
    present: 0,
    replaced: 0,
    bytesCopied: 0,
    corrupt: [],
    failed: [],
    durationMs: 0,
  };
  let done = 0;
  const finish = (digest: string, size: number, outcome: BlobOutcome, detail?: string) => {
    done++;
    onProgress?.({ digest, size, outcome, done, total: blobs.length, detail });
  };
  const limit = pLimit(concurrency);
  await Promise.all(
    blobs.map(({ digest, size }) =>
      limit(async () => {
        const existing = present.get(digest);
        if (existing === size) {
          summary.present++;
          return finish(digest, size, 'present');
        }
        try {
          if (existing !== undefined) await target.delete(digest);
          await copyBlob(source, target, digest, size);
          summary.bytesCopied += size;
          if (existing !== undefined) summary.replaced++;
          else summary.copied++;
          finish(digest, size, existing !== undefined ? 'replaced' : 'copied');
        } catch (error) {
          const detail = (error as Error).message;
          if (error instanceof CorruptBlob) summary.corrupt.push({ digest, detail });
          else summary.failed.push({ digest, detail });
          finish(digest, size, error instanceof CorruptBlob ? 'corrupt' : 'failed', detail);
        }
      }),
    ),
  );
  summary.durationMs = Date.now() - started;
  return summary;
}
