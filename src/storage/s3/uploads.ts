/**
 * Uploads on S3, which has no append and wants every multipart part but the last to be at
 * least 5 MiB, while clients send chunks of any size. An upload session is one multipart
 * upload: appends fill part-sized buffers and upload each part as it fills; what is left,
 * shorter than a part, goes to a small tail object that the next append (in any process)
 * reads back first. At commit the tail becomes the last part (copied server-side), the
 * multipart upload is completed, and the object is copied to its content address.
 *
 * Everything an append needs is in the driver state it returns (multipart upload id, parts
 * with their ETags, tail size), which the caller keeps in the upload's record. What a failed
 * or crashed append leaves behind never counts: parts past the recorded ones are uploaded
 * again under the same numbers, a tail is only ever rewritten with the same first bytes, and
 * whatever stays under the upload's prefix is swept when the upload ends (commit, cancel or
 * the purge of idle uploads).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { RegistryError } from '../../registry/errors.js';
import type { StoredUpload, UploadProgress } from '../../registry/ports.js';
import { reportingErrors } from './availability.js';
import { isNotFound } from './client.js';
import type { S3Layout } from './layout.js';

interface Part {
  n: number;
  etag: string;
  size: number;
}

/** The driver state of an upload, as JSON in its record. */
interface UploadState {
  /** The multipart upload at the data key; created when the first full part is ready. */
  multipart: string | null;
  parts: Part[];
  /** Bytes after the parts, held as the first tailSize bytes of the tail object `tail-<parts.length>`. */
  tailSize: number;
  /** A tail object the previous append replaced; deleted by the next one (its record is saved by then). */
  staleTail: string | null;
  /** The multipart upload was completed into the data object (to read it back for a sha512 digest). */
  assembled: boolean;
}

const EMPTY: UploadState = { multipart: null, parts: [], tailSize: 0, staleTail: null, assembled: false };
const GiB = 1024 * 1024 * 1024;

export interface S3UploadOptions {
  bucket: string;
  partSize: number;
  /** Objects above this size are copied to their content address in parts (S3's CopyObject limit: 5 GiB). */
  copyLimit?: number;
  /** Range per part of such a copy. */
  copyPartSize?: number;
}

export class S3Uploads {
  private readonly bucket: string;
  private readonly partSize: number;
  private readonly copyLimit: number;
  private readonly copyPartSize: number;

  constructor(
    private readonly client: S3Client,
    private readonly layout: S3Layout,
    options: S3UploadOptions,
  ) {
    this.bucket = options.bucket;
    this.partSize = options.partSize;
    this.copyLimit = options.copyLimit ?? 5 * GiB;
    this.copyPartSize = options.copyPartSize ?? 1 * GiB;
  }

  create(id: string): UploadProgress {
    this.layout.upload(id); // checks the id
    return { size: 0, driverState: JSON.stringify(EMPTY) };
  }

  async append(id: string, progress: UploadProgress, source: Readable, observe?: (chunk: Buffer) => void): Promise<UploadProgress> {
    this.layout.upload(id); // checks the id
    const state = parseState(progress);
    if (state.assembled) throw new Error(`upload ${id} was assembled for commit and takes no more data`);
    if (state.staleTail) await this.deleteObject(state.staleTail);
    const part = Buffer.allocUnsafe(this.partSize);
    let filled = state.tailSize > 0 ? await this.readInto(this.layout.uploadTail(id, state.parts.length), state.tailSize, part) : 0;
    let multipart = state.multipart;
    const parts = [...state.parts];
    let appended = 0;
    for await (const data of source) {
      const chunk = data as Buffer;
      observe?.(chunk);
      appended += chunk.length;
      for (let offset = 0; offset < chunk.length; ) {
        const taken = chunk.copy(part, filled, offset);
        offset += taken;
        filled += taken;
        if (filled < this.partSize) continue;
        multipart ??= await this.createMultipart(id);
        parts.push(await this.uploadPart(id, multipart, parts.length + 1, part));
        filled = 0;
      }
    }
    if (appended === 0) return { size: progress.size, driverState: JSON.stringify({ ...state, staleTail: null }) };
    const oldTail = state.tailSize > 0 ? this.layout.uploadTail(id, state.parts.length) : null;
    const newTail = filled > 0 ? this.layout.uploadTail(id, parts.length) : null;
    if (newTail) await this.put(newTail, part.subarray(0, filled));
    const next: UploadState = { multipart, parts, tailSize: filled, staleTail: oldTail !== newTail ? oldTail : null, assembled: false };
    return { size: progress.size + appended, driverState: JSON.stringify(next) };
  }

  /** The upload's bytes; a multipart upload is completed first (S3 cannot read unfinished ones). */
  async read(id: string, progress: UploadProgress): Promise<{ stream: Readable; progress: UploadProgress }> {
    this.layout.upload(id); // checks the id
    let state = parseState(progress);
    if (progress.size === 0) return { stream: await this.rangeOf(null, 0), progress };
    if (state.multipart === null) return { stream: await this.rangeOf(this.layout.uploadTail(id, 0), state.tailSize), progress };
    if (!state.assembled) state = await this.assemble(id, state, progress.size);
    return { stream: await this.rangeOf(this.layout.uploadData(id), progress.size), progress: { size: progress.size, driverState: JSON.stringify(state) } };
  }

  /** Puts a verified upload under `target` (its content address), then sweeps the upload away. */
  async commit(id: string, progress: UploadProgress, target: string): Promise<void> {
    this.layout.upload(id); // checks the id
    const state = parseState(progress);
    if (!(await this.exists(target))) {
      if (state.multipart === null) {
        // Shorter than a part: the whole blob is (the start of) the tail.
        const bytes = Buffer.allocUnsafe(state.tailSize);
        if (state.tailSize > 0) await this.readInto(this.layout.uploadTail(id, 0), state.tailSize, bytes);
        await this.put(target, bytes);
      } else {
        if (!state.assembled) await this.assemble(id, state, progress.size);
        await this.copy(this.layout.uploadData(id), target, progress.size);
      }
    }
    await this.sweep(id);
  }

  /** Removes everything of an upload: its objects and any multipart upload under its prefix. */
  async sweep(id: string): Promise<void> {
    const prefix = this.layout.upload(id);
    for await (const object of this.objects(prefix)) await this.deleteObject(object.key);
    for await (const upload of this.multipartUploads(prefix)) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.key, UploadId: upload.uploadId })).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
    }
  }

  /** Upload data in the bucket by upload id: objects (size, last write) and multipart uploads (when begun). */
  async *list(): AsyncIterable<StoredUpload> {
    const found = new Map<string, StoredUpload>();
    const note = (id: string | null, size: number, at: number) => {
      if (id === null) return;
      const known = found.get(id);
      found.set(id, { id, size: (known?.size ?? 0) + size, modifiedAt: Math.max(known?.modifiedAt ?? 0, at) });
    };
    for await (const object of this.objects(this.layout.uploadsPrefix)) note(this.layout.uploadIdOf(object.key), object.size, object.modifiedAt);
    for await (const upload of this.multipartUploads(this.layout.uploadsPrefix)) note(this.layout.uploadIdOf(upload.key), 0, upload.initiatedAt);
    yield* found.values();
  }

  /** Objects under a prefix, one page of ListObjectsV2 at a time. */
  async *objects(prefix: string): AsyncIterable<{ key: string; size: number; modifiedAt: number }> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        if (object.Key) yield { key: object.Key, size: object.Size ?? 0, modifiedAt: object.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async *multipartUploads(prefix: string): AsyncIterable<{ key: string; uploadId: string; initiatedAt: number }> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key && upload.UploadId) yield { key: upload.Key, uploadId: upload.UploadId, initiatedAt: upload.Initiated?.getTime() ?? 0 };
      }
      if (!page.IsTruncated) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** Completes the multipart upload, with the tail copied in server-side as its last part. */
  private async assemble(id: string, state: UploadState, size: number): Promise<UploadState> {
    const key = this.layout.uploadData(id);
    const uploadId = state.multipart!;
    const parts = [...state.parts];
    try {
      if (state.tailSize > 0) {
        const n = parts.length + 1;
        const copied = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: n,
            CopySource: this.copySource(this.layout.uploadTail(id, state.parts.length)),
            CopySourceRange: `bytes=0-${state.tailSize - 1}`,
          }),
        );
        parts.push({ n, etag: copied.CopyPartResult?.ETag ?? '', size: state.tailSize });
      }
      await this.complete(key, uploadId, parts);
    } catch (error) {
      if (!isNoSuchUpload(error)) throw error;
      // Completed already, by an attempt that failed before its record was saved (the store
      // went away before the copy that follows, say): the object is this upload's bytes if its
      // ETag is the one these parts make. Otherwise the bytes are gone; the client starts again.
      if (!(await this.completedFrom(id, state, size))) throw uploadDataGone(id);
    }
    return { ...state, parts, tailSize: 0, assembled: true };
  }

  /**
   * Whether the data object is the completion of the recorded parts and the tail: S3 (and
   * radosgw, MinIO) name a multipart object by the MD5 of its parts' MD5s and their count.
   */
  private async completedFrom(id: string, state: UploadState, size: number): Promise<boolean> {
    const md5s = state.parts.map((part) => part.etag.replace(/"/g, ''));
    if (md5s.some((md5) => !/^[a-f0-9]{32}$/.test(md5))) return false; // ETags that are no MD5 (SSE-KMS): no telling
    if (state.tailSize > 0) {
      const tail = createHash('md5');
      for await (const chunk of await this.rangeOf(this.layout.uploadTail(id, state.parts.length), state.tailSize)) tail.update(chunk as Buffer);
      md5s.push(tail.digest('hex'));
    }
    const expected = `${createHash('md5').update(Buffer.from(md5s.join(''), 'hex')).digest('hex')}-${md5s.length}`;
    const head = await this.head(this.layout.uploadData(id));
    return head !== null && head.size === size && head.etag === expected;
  }

  /** Server-side copy; in ranges of copyPartSize above copyLimit (S3 copies at most 5 GiB at once). */
  private async copy(source: string, target: string, size: number): Promise<void> {
    if (size <= this.copyLimit) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: this.copySource(source) }));
      return;
    }
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target }));
    const uploadId = created.UploadId!;
    try {
      const parts: Part[] = [];
      for (let start = 0; start < size; start += this.copyPartSize) {
        const end = Math.min(start + this.copyPartSize, size) - 1;
        const copied = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: target,
            UploadId: uploadId,
            PartNumber: parts.length + 1,
            CopySource: this.copySource(source),
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ n: parts.length + 1, etag: copied.CopyPartResult?.ETag ?? '', size: end - start + 1 });
      }
      await this.complete(target, uploadId, parts);
    } catch (error) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId })).catch(() => undefined);
      throw error;
    }
  }

  private async complete(key: string, uploadId: string, parts: Part[]): Promise<void> {
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.n, ETag: part.etag })) },
      }),
    );
  }

  private async createMultipart(id: string): Promise<string> {
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.layout.uploadData(id) }));
    if (!created.UploadId) throw new Error('S3 created a multipart upload without an id');
    return created.UploadId;
  }

  private async uploadPart(id: string, uploadId: string, n: number, bytes: Buffer): Promise<Part> {
    const uploaded = await this.client
      .send(new UploadPartCommand({ Bucket: this.bucket, Key: this.layout.uploadData(id), UploadId: uploadId, PartNumber: n, Body: bytes, ContentLength: bytes.length }))
      .catch((error: unknown) => {
        // Completed by a commit that failed after it, or aborted: no more parts go in.
        throw isNoSuchUpload(error) ? uploadDataGone(id) : error;
      });
    if (!uploaded.ETag) throw new Error(`S3 accepted part ${n} of upload ${id} without an ETag`);
    return { n, etag: uploaded.ETag, size: bytes.length };
  }

  private async put(key: string, bytes: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentLength: bytes.length }));
  }

  /** Reads the first `length` bytes of an object into `target`; returns `length`. */
  private async readInto(key: string, length: number, target: Buffer): Promise<number> {
    let at = 0;
    for await (const chunk of await this.rangeOf(key, length)) at += (chunk as Buffer).copy(target, at);
    if (at !== length) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload data is missing (${at} of ${length} bytes of ${key})`);
    return length;
  }

  /** The first `length` bytes of an object, as a stream (nothing for length 0). */
  private async rangeOf(key: string | null, length: number): Promise<Readable> {
    if (key === null || length === 0) return Readable.from([]);
    try {
      const object = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${length - 1}` }));
      return reportingErrors(object.Body as Readable);
    } catch (error) {
      if (isNotFound(error)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload data is missing', { key });
      throw error;
    }
  }

  private async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== null;
  }

  /** The object's size and ETag (without quotes), or null when there is none. */
  private async head(key: string): Promise<{ size: number; etag: string | null } | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: head.ContentLength ?? 0, etag: head.ETag?.replace(/"/g, '') ?? null };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  private async deleteObject(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  private copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }
}

function isNoSuchUpload(error: unknown): boolean {
  return error instanceof S3ServiceException && error.name === 'NoSuchUpload';
}

function uploadDataGone(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the data of this upload is gone (completed by a commit that failed, or aborted); start the upload again', { uuid: id });
}

function parseState(progress: UploadProgress): UploadState {
  if (progress.driverState === null) return { ...EMPTY };
  try {
    return { ...EMPTY, ...(JSON.parse(progress.driverState) as Partial<UploadState>) };
  } catch {
    throw new Error('upload record holds no S3 upload state this version reads');
  }
}
