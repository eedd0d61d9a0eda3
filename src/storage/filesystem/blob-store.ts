/**
 * The filesystem blob driver: blobs under `<root>/blobs`, uploads under `<root>/uploads`.
 * Commit is write → fsync → rename → fsync(dir), so a crash at any instant leaves either
 * no blob or the whole verified blob, never a partial one under a digest.
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../../registry/errors.js';
import type { BlobStore, ByteRange, SendOptions, StoredBlob, StoredUpload, UploadProgress } from '../../registry/ports.js';
import { damaged, whileSinkOpen, written } from '../common.js';
import { StoragePaths } from './paths.js';

/** Large reads keep syscalls few when streaming multi-GiB layers. */
const STREAM_CHUNK_BYTES = 1024 * 1024;
/** How much of an upload may sit unwritten in the page cache before writeback is started. */
const WRITEBACK_EVERY_BYTES = 32 * 1024 * 1024;

export class FilesystemBlobStore implements BlobStore {
  readonly statIsCheap = true;
  private readonly paths: StoragePaths;

  private constructor(root: string) {
    this.paths = new StoragePaths(root);
  }

  static async open(root: string): Promise<FilesystemBlobStore> {
    const store = new FilesystemBlobStore(path.resolve(root));
    // Private to the registry's user, whatever the umask: folders 0700, files 0600.
    await fs.mkdir(store.paths.blobsDir, { recursive: true, mode: 0o700 });
    await fs.mkdir(store.paths.uploadsDir, { recursive: true, mode: 0o700 });
    return store;
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    try {
      const stats = await fs.stat(this.paths.blob(digest));
      return { size: stats.size };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async read(digest: string, range?: ByteRange, expectedSize?: number): Promise<Readable> {
    const { handle } = await this.openBlob(digest, expectedSize);
    return handle.createReadStream({
      start: range?.start,
      end: range?.end,
      highWaterMark: STREAM_CHUNK_BYTES,
      autoClose: true,
    });
  }

  async send(digest: string, sink: Writable, options: SendOptions = {}): Promise<void> {
    const { handle, size } = await this.openBlob(digest, options.expectedSize);
    try {
      options.onFound?.();
      const start = options.range?.start ?? 0;
      const end = options.range?.end ?? size - 1;
      await copyToSink(handle, sink, start, end - start + 1, options.onBytes);
    } finally {
      await handle.close();
    }
  }

  /** Opens a blob for reading; with `expectedSize`, refuses one of another size (fstat of the handle read: the bytes served are the bytes checked). */
  private async openBlob(digest: string, expectedSize?: number): Promise<{ handle: fs.FileHandle; size: number }> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.paths.blob(digest), 'r');
    } catch (error) {
      if (isNotFound(error)) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
      throw error;
    }
    let size: number;
    try {
      ({ size } = await handle.stat());
    } catch (error) {
      await handle.close();
      throw error;
    }
    if (expectedSize !== undefined && size !== expectedSize) {
      await handle.close();
      throw damaged(digest, size, expectedSize);
    }
    return { handle, size };
  }

  async delete(digest: string): Promise<boolean> {
    try {
      await fs.unlink(this.paths.blob(digest));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async *list(): AsyncIterable<StoredBlob> {
    for (const algorithm of await readdirOrEmpty(this.paths.blobsDir)) {
      const algorithmDir = path.join(this.paths.blobsDir, algorithm);
      for (const prefix of await readdirOrEmpty(algorithmDir)) {
        const prefixDir = path.join(algorithmDir, prefix);
        for (const hex of await readdirOrEmpty(prefixDir)) {
          let stats;
          try {
            stats = await fs.stat(path.join(prefixDir, hex));
          } catch (error) {
            if (isNotFound(error)) continue; // deleted meanwhile
            throw error;
          }
          yield { digest: `${algorithm}:${hex}`, size: stats.size, modifiedAt: stats.mtimeMs };
        }
      }
    }
  }

  async createUpload(id: string): Promise<UploadProgress> {
    await fs.writeFile(this.paths.upload(id), new Uint8Array(0), { flag: 'wx', mode: 0o600 });
    return { size: 0, driverState: null };
  }

  async appendUpload(id: string, progress: UploadProgress, source: Readable, observe?: (chunk: Buffer) => void): Promise<UploadProgress> {
    const file = this.paths.upload(id);
    // A second descriptor for starting writeback: fsync flushes the file whichever descriptor
    // asks, and this one stays open until the flush in flight is done.
    const flusher = await openUpload(file);
    try {
      await atRecordedSize(flusher, progress.size);
      let appended = 0;
      const sink = createWriteStream(file, { flags: 'r+', start: progress.size, highWaterMark: STREAM_CHUNK_BYTES });
      // Start writing back what arrived every WRITEBACK_EVERY_BYTES, so the fsync at commit
      // finds only the tail of a large layer still in the page cache, not all of it.
      let unflushed = 0;
      let flushing: Promise<void> | undefined;
      // Linux reports a failed writeback once: a later fsync may succeed over lost pages, so
      // a failure here fails the append itself.
      let flushError: unknown;
      const observer = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          observe?.(chunk);
          appended += chunk.length;
          unflushed += chunk.length;
          if (unflushed >= WRITEBACK_EVERY_BYTES && !flushing && flushError === undefined) {
            unflushed = 0;
            flushing = flusher
              .datasync()
              .catch((error: unknown) => void (flushError = error))
              .finally(() => (flushing = undefined));
          }
          callback(null, chunk);
        },
      });
      try {
        await pipeline(source, observer, sink);
      } finally {
        await flushing;
      }
      if (flushError !== undefined) throw flushError;
      return { size: progress.size + appended, driverState: null };
    } finally {
      await flusher.close();
    }
  }

  async readUpload(id: string, progress: UploadProgress): Promise<{ stream: Readable; progress: UploadProgress }> {
    const handle = await openUpload(this.paths.upload(id), 'r');
    if (progress.size === 0) {
      await handle.close();
      return { stream: Readable.from([]), progress };
    }
    return { stream: handle.createReadStream({ start: 0, end: progress.size - 1, highWaterMark: STREAM_CHUNK_BYTES, autoClose: true }), progress };
  }

  async commitUpload(id: string, progress: UploadProgress, digest: string): Promise<void> {
    const uploadFile = this.paths.upload(id);
    const blobFile = this.paths.blob(digest);
    if (await this.stat(digest)) {
      await this.deleteUpload(id);
      return;
    }
    const handle = await openUpload(uploadFile);
    try {
      await atRecordedSize(handle, progress.size);
      await handle.sync();
    } finally {
      await handle.close();
    }
    const blobDir = path.dirname(blobFile);
    await fs.mkdir(blobDir, { recursive: true, mode: 0o700 });
    await fs.rename(uploadFile, blobFile);
    await syncDirectory(blobDir);
  }

  async deleteUpload(id: string): Promise<void> {
    await fs.rm(this.paths.upload(id), { force: true });
  }

  async *listUploads(): AsyncIterable<StoredUpload> {
    for (const id of await readdirOrEmpty(this.paths.uploadsDir)) {
      if (!StoragePaths.isUploadId(id)) continue; // not ours
      let stats;
      try {
        stats = await fs.stat(this.paths.upload(id));
      } catch (error) {
        if (isNotFound(error)) continue; // finished or cancelled meanwhile
        throw error;
      }
      yield { id, size: stats.size, modifiedAt: stats.mtimeMs };
    }
  }
}

/**
 * Copies `length` bytes from `position` into `sink` through two buffers used in turn: one is
 * filled from disk while the sink still holds the other, and a buffer is refilled only after
 * the sink's callback released it. Streaming a file through fresh buffers instead costs a
 * page-faulted allocation per chunk and leaves garbage for the collector (which, with chunks
 * still queued at the socket, promotes them and ends in full collections).
 */
async function copyToSink(
  handle: fs.FileHandle,
  sink: Writable,
  position: number,
  length: number,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  const chunkBytes = Math.max(1, Math.min(STREAM_CHUNK_BYTES, length));
  const slots = [0, 1].map(() => ({ buffer: Buffer.allocUnsafeSlow(chunkBytes), released: Promise.resolve() }));
  await whileSinkOpen(sink, async (untilClosed) => {
    let remaining = length;
    for (let turn = 0; remaining > 0; turn++) {
      const slot = slots[turn % slots.length]!;
      await untilClosed(slot.released);
      const { buffer } = slot;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, remaining), position);
      if (bytesRead === 0) throw new Error(`blob file ended ${remaining} bytes early`);
      position += bytesRead;
      remaining -= bytesRead;
      slot.released = written(sink, bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      onBytes?.(bytesRead);
    }
    await untilClosed(Promise.all(slots.map((slot) => slot.released)));
  });
}

/** Opens an upload's file; a missing one is an upload that is gone (cancelled, purged or finished). */
async function openUpload(file: string, flags = 'r+'): Promise<fs.FileHandle> {
  try {
    return await fs.open(file, flags);
  } catch (error) {
    if (isNotFound(error)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload data is missing', { uuid: path.basename(file) });
    throw error;
  }
}

/**
 * Cuts what a failed append left past the recorded size (nothing of it counts); a file shorter
 * than the record lost data and cannot go on.
 */
async function atRecordedSize(handle: fs.FileHandle, size: number): Promise<void> {
  const actual = (await handle.stat()).size;
  if (actual === size) return;
  if (actual < size) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload data is missing (${actual} of ${size} bytes on disk)`);
  await handle.truncate(size);
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
