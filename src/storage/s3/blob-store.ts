/**
 * The S3 blob driver: blobs as objects under their content address in one bucket (any
 * S3-compatible server: AWS, radosgw, MinIO…), uploads as multipart uploads (uploads.ts).
 * HEADs and size checks are answered from metadata (statIsCheap is false), GETs stream the
 * object (Range passed through) or are redirected to a presigned URL, and the garbage
 * collector's orphan scan reads one listing, which gives every object's size and age.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { RegistryError } from '../../registry/errors.js';
import type { BlobStore, ByteRange, SendOptions, StoredBlob, StoredUpload, UploadProgress } from '../../registry/ports.js';
import { damaged, whileSinkOpen, written } from '../common.js';
import { reported, reportingErrors } from './availability.js';
import { describeBucketProblem, isNotFound } from './client.js';
import type { S3Settings } from '../../config/storage.js';
import { S3Layout } from './layout.js';
import { copyObject, type CopyOutcome } from './object-copy.js';
import { S3Uploads, type S3UploadOptions } from './uploads.js';

export interface S3BlobStoreOptions extends Omit<S3UploadOptions, 'bucket' | 'partSize'> {
  settings: S3Settings;
  client: S3Client;
  /** Signs redirect URLs (the public endpoint's client); defaults to `client`. */
  presignClient?: S3Client;
  /** Blobs (or ranges) from this size on are sent through reused buffers rather than the SDK's stream. */
  directCopyMinBytes?: number;
}

/**
 * From this size on a pull is copied through reused buffers on a connection of its own: below
 * it the SDK's pooled connection and stream cost less than a connection set up per blob.
 */
const DIRECT_COPY_MIN_BYTES = 1024 * 1024;
/** The presigned URL of a direct copy is used at once; this only bounds a URL that leaked. */
const DIRECT_URL_SECONDS = 60;

export class S3BlobStore implements BlobStore {
  readonly statIsCheap = false;
  private readonly client: S3Client;
  private readonly presignClient: S3Client;
  private readonly bucket: string;
  private readonly layout: S3Layout;
  private readonly uploads: S3Uploads;
  private readonly directCopyMinBytes: number;

  constructor(private readonly options: S3BlobStoreOptions) {
    this.client = options.client;
    this.presignClient = options.presignClient ?? options.client;
    this.bucket = options.settings.bucket!;
    this.layout = new S3Layout(options.settings.prefix);
    this.directCopyMinBytes = options.directCopyMinBytes ?? DIRECT_COPY_MIN_BYTES;
    this.uploads = new S3Uploads(this.client, this.layout, { ...options, bucket: this.bucket, partSize: options.settings.partSize });
  }

  /** Throws with a message naming the setting to fix when the bucket cannot be used (start-up, readiness). */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      throw new Error(describeBucketProblem(this.options.settings, error), { cause: error });
    }
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.layout.blob(digest) }));
      return { size: head.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async read(digest: string, range?: ByteRange, expectedSize?: number): Promise<Readable> {
    return reportingErrors(await this.getObject(digest, range, expectedSize));
  }

  /** The object's body as the SDK streams it, once S3 answered with the expected size. */
  private async getObject(digest: string, range?: ByteRange, expectedSize?: number): Promise<Readable> {
    const key = this.layout.blob(digest);
    let object;
    try {
      object = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined }));
    } catch (error) {
      if (isNotFound(error)) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
      // A range past the stored end: the object is shorter than recorded.
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 416 && expectedSize !== undefined) {
        throw damaged(digest, (await this.stat(digest))?.size ?? 0, expectedSize);
      }
      throw error;
    }
    const body = object.Body as Readable;
    const stored = range ? Number(/\/(\d+)$/.exec(object.ContentRange ?? '')?.[1] ?? NaN) : (object.ContentLength ?? 0);
    if (expectedSize !== undefined && stored !== expectedSize) {
      body.destroy();
      throw damaged(digest, stored, expectedSize);
    }
    return body;
  }

  async send(digest: string, sink: Writable, options: SendOptions = {}): Promise<void> {
    const length = options.range ? options.range.end - options.range.start + 1 : options.expectedSize;
    if ((length === undefined || length >= this.directCopyMinBytes) && (await this.copyDirectly(digest, sink, options).catch(rethrowReported)) === 'copied') return;
    // Small blobs, and any answer the direct copy left (missing, damaged, S3 errors, a refused
    // connection): the SDK's request, with its retries and error mapping. Once bytes flow, an
    // error only ends the response (its headers are out), so the body is read as the SDK gives it.
    const body = await this.getObject(digest, options.range, options.expectedSize);
    try {
      options.onFound?.();
      await whileSinkOpen(sink, async (untilClosed) => {
        // Chunks go out as they come, paced by the sink's drain; only the last one is awaited
        // (its callback fires after every earlier one), so no promise per chunk.
        let held: Buffer | null = null;
        for await (const chunk of body) {
          if (sink.destroyed) throw new Error('the destination closed before the blob was sent');
          if (held && !sink.write(held)) await untilClosed(once(sink, 'drain'));
          held = chunk as Buffer;
          options.onBytes?.(held.length);
        }
        if (held) await untilClosed(written(sink, held));
      });
    } finally {
      body.destroy();
    }
  }

  /**
   * Streams the object through reused buffers (object-copy.ts) from a URL presigned for the
   * registry's own endpoint; declines, having written nothing, when S3 answers anything but the
   * object of the expected size.
   */
  private async copyDirectly(digest: string, sink: Writable, options: SendOptions): Promise<CopyOutcome> {
    const url = new URL(await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.layout.blob(digest) }), { expiresIn: DIRECT_URL_SECONDS }));
    const { range, expectedSize } = options;
    return copyObject(url, sink, {
      range: range ? `bytes=${range.start}-${range.end}` : undefined,
      onBytes: options.onBytes,
      accept: ({ status, headers }) => {
        if (status !== (range ? 206 : 200)) return false;
        const stored = Number((range ? /\/(\d+)$/.exec(headers.get('content-range') ?? '')?.[1] : /^\d+$/.exec(headers.get('content-length') ?? '')?.[0]) ?? NaN);
        // No size to check (a proxy re-chunking the answer, say): the SDK's request decides.
        if (Number.isNaN(stored)) return false;
        if (expectedSize !== undefined && stored !== expectedSize) throw damaged(digest, stored, expectedSize);
        options.onFound?.();
        return true;
      },
    });
  }

  async presign(digest: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.presignClient, new GetObjectCommand({ Bucket: this.bucket, Key: this.layout.blob(digest) }), { expiresIn: expiresInSeconds });
  }

  async delete(digest: string): Promise<boolean> {
    const key = this.layout.blob(digest);
    if ((await this.stat(digest)) === null) return false;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    return true;
  }

  async *list(): AsyncIterable<StoredBlob> {
    for await (const object of this.uploads.objects(this.layout.blobsPrefix)) {
      const digest = this.layout.digestOf(object.key);
      if (digest) yield { digest, size: object.size, modifiedAt: object.modifiedAt };
    }
  }

  async createUpload(id: string): Promise<UploadProgress> {
    return this.uploads.create(id);
  }

  async appendUpload(id: string, progress: UploadProgress, source: Readable, observe?: (chunk: Buffer) => void): Promise<UploadProgress> {
    return this.uploads.append(id, progress, source, observe);
  }

  async readUpload(id: string, progress: UploadProgress): Promise<{ stream: Readable; progress: UploadProgress }> {
    return this.uploads.read(id, progress);
  }

  async commitUpload(id: string, progress: UploadProgress, digest: string): Promise<void> {
    await this.uploads.commit(id, progress, this.layout.blob(digest));
  }

  async deleteUpload(id: string): Promise<void> {
    await this.uploads.sweep(id);
  }

  listUploads(): AsyncIterable<StoredUpload> {
    return this.uploads.list();
  }
}

function rethrowReported(error: unknown): never {
  throw reported(error);
}
