/**
 * What the registry domain needs from the outside world: a place for blob bytes and a
 * store for metadata. Both are asynchronous so that a network backend (S3-compatible
 * object storage, PostgreSQL) can implement them without touching the domain or HTTP code.
 */
import type { Readable } from 'node:stream';
import type { RegistryEvent } from './events.js';

/** An inclusive byte range, as HTTP `Range` speaks it. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Content-addressed blob bytes plus the temporary files of uploads in progress.
 * A blob becomes visible under its digest only through {@link BlobStore.commitUpload},
 * after the caller verified the digest, so readers never see half-written content.
 */
export interface BlobStore {
  /** Size of a committed blob, or null when there is none. */
  stat(digest: string): Promise<{ size: number } | null>;
  /** Streams a committed blob (or one range of it). Rejects with BLOB_UNKNOWN when absent. */
  read(digest: string, range?: ByteRange): Promise<Readable>;
  /** Removes a committed blob; false when it was not there. */
  delete(digest: string): Promise<boolean>;
  /** Every committed blob digest, in no particular order. */
  list(): AsyncIterable<string>;

  /** Creates the empty temporary file of an upload session. */
  createUpload(id: string): Promise<void>;
  /**
   * Appends a stream to an upload's temporary file, calling `observe` with every chunk
   * actually written (for incremental hashing). Resolves with the upload's new size.
   */
  appendUpload(id: string, source: Readable, observe?: (chunk: Buffer) => void): Promise<number>;
  /** Current size of an upload's temporary file, or null when it does not exist. */
  uploadSize(id: string): Promise<number | null>;
  /** Streams an upload's temporary file from the start (to rehash it after a restart). */
  readUpload(id: string): Promise<Readable>;
  /**
   * Makes a verified upload durable under its digest (fsync, then atomic rename). When the
   * blob already exists the upload is discarded and the stored blob left untouched.
   */
  commitUpload(id: string, digest: string): Promise<void>;
  /** Removes an upload's temporary file, if any. */
  deleteUpload(id: string): Promise<void>;
}

export interface RepositoryBlob {
  digest: string;
  size: number;
}

export interface UploadSession {
  id: string;
  repository: string;
  createdAt: number;
}

export type ManifestReferenceKind = 'blob' | 'manifest';

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  content: Buffer;
  subject: string | null;
  artifactType: string | null;
}

export interface NewManifest extends ManifestRecord {
  /** JSON object of the manifest's annotations, or null. */
  annotations: Record<string, string> | null;
  /** Blobs (config, layers) and child manifests this manifest points at. */
  references: Array<{ digest: string; kind: ManifestReferenceKind }>;
}

/** Who did something, for the event record. */
export interface Actor {
  name: string;
  kind: 'user' | 'robot' | 'anonymous';
}

export interface ManifestPutResult {
  repositoryCreated: boolean;
  /** The digest the tag pointed at before, null when the tag is new or none was given. */
  previousTagDigest: string | null;
}

export interface ReferrerRecord {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

export interface PageRequest {
  /** Maximum entries; undefined means all. */
  limit?: number;
  /** Return only entries strictly after this one in lexical order. */
  after?: string;
}

/**
 * Repositories, blob links, manifests, tags and upload sessions. Every method that changes
 * tags also records the matching domain events in the same transaction (the outbox), so an
 * acknowledged change always has its event.
 */
export interface MetadataStore {
  repositoryExists(repository: string): Promise<boolean>;
  listRepositories(page: PageRequest): Promise<string[]>;

  getBlob(digest: string): Promise<RepositoryBlob | null>;
  /** The blob as linked into a repository, or null when the repository may not see it. */
  getRepositoryBlob(repository: string, digest: string): Promise<RepositoryBlob | null>;
  /** Records a committed blob and links it into a repository (creating the repository). */
  linkBlob(repository: string, blob: RepositoryBlob, actor: Actor): Promise<void>;
  unlinkBlob(repository: string, digest: string): Promise<boolean>;
  /** Up to `limit` repositories that link a blob, for mount-without-`from` decisions. */
  repositoriesWithBlob(digest: string, limit: number): Promise<string[]>;

  createUpload(session: UploadSession): Promise<void>;
  getUpload(id: string): Promise<UploadSession | null>;
  deleteUpload(id: string): Promise<void>;

  /** Which of these digests are not linked (as blobs) into the repository. */
  missingBlobs(repository: string, digests: string[]): Promise<string[]>;
  /** Which of these digests are not manifests of the repository. */
  missingManifests(repository: string, digests: string[]): Promise<string[]>;
  putManifest(repository: string, manifest: NewManifest, tag: string | null, actor: Actor): Promise<ManifestPutResult>;
  getManifest(repository: string, digest: string): Promise<ManifestRecord | null>;
  resolveTag(repository: string, tag: string): Promise<string | null>;
  /** Removes a manifest from a repository with every tag pointing at it; returns those tags, or null when absent. */
  deleteManifest(repository: string, digest: string, actor: Actor): Promise<string[] | null>;
  /** Removes one tag; false when it did not exist. */
  deleteTag(repository: string, tag: string, actor: Actor): Promise<boolean>;
  listTags(repository: string, page: PageRequest): Promise<string[]>;
  listReferrers(repository: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]>;

  /** Outbox events with a sequence number above `afterSeq`, oldest first. */
  readEvents(afterSeq: number, limit: number): Promise<RegistryEvent[]>;

  close(): Promise<void>;
}

/**
 * What the caller of a domain operation may do, decided by the auth layer. The domain asks
 * only where it touches repositories other than the one named in the request (mounts, and
 * linking a blob that another repository already holds).
 */
export interface RepositoryAccess {
  canPull(repository: string): boolean;
  canPush(repository: string): boolean;
}

export const UNRESTRICTED_ACCESS: RepositoryAccess = {
  canPull: () => true,
  canPush: () => true,
};

export const ANONYMOUS_ACTOR: Actor = { name: 'anonymous', kind: 'anonymous' };
