/**
 * What the registry domain needs from the outside world: a place for blob bytes and a
 * store for metadata. Both are asynchronous so that a network backend (S3-compatible
 * object storage, PostgreSQL) can implement them without touching the domain or HTTP code.
 */
import type { Readable, Writable } from 'node:stream';
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
  /**
   * Streams a committed blob (or one range of it). Rejects with BLOB_UNKNOWN when absent, and
   * when `expectedSize` is given and the stored content has another size (damaged: never served).
   */
  read(digest: string, range?: ByteRange, expectedSize?: number): Promise<Readable>;
  /**
   * Writes a committed blob (or one range of it) into `sink`, as {@link read} would stream it,
   * and resolves once the sink has taken every byte (its write callbacks fired). A driver may
   * reuse its buffers between writes, which is why serving a pull goes through here: no
   * garbage per chunk. Rejects like {@link read} before writing anything, and with the sink's
   * error when the sink fails or closes early; it does not end the sink. The sink must be done
   * with a chunk when it calls back for it (sockets and files are; one that keeps chunks copies them).
   */
  send(digest: string, sink: Writable, options?: SendOptions): Promise<void>;
  /** When a committed blob's content was last written (ms since the epoch), or null when there is none. */
  modifiedAt(digest: string): Promise<number | null>;
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
  /** Every upload's temporary file, with its size and last write (ms since the epoch). */
  listUploads(): AsyncIterable<StoredUpload>;
}

export interface SendOptions {
  range?: ByteRange;
  /** As for {@link BlobStore.read}: a stored blob of another size is refused as damaged. */
  expectedSize?: number;
  /** Called once the blob was found (and its size checked), before the first write: the moment to commit to a successful answer. */
  onFound?: () => void;
  /** Called with the size of each chunk as it is handed to the sink. */
  onBytes?: (bytes: number) => void;
}

export interface StoredUpload {
  id: string;
  size: number;
  modifiedAt: number;
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
  /** `system`: the registry itself (garbage collection, retention, fsck). */
  kind: 'user' | 'robot' | 'anonymous' | 'system';
  /** The request that made the change, recorded with its events; absent for the registry's own changes. */
  request?: RequestContext;
}

/**
 * The request behind a change, as the HTTP layer saw it, in plain values: the domain and
 * the stores carry it into the change's outbox events without knowing HTTP.
 */
export interface RequestContext {
  /** The request id (X-Request-Id), shared by every event of one request. */
  id: string;
  /** The `host[:port]` the client addressed (validated); null when it was missing or malformed. */
  host: string | null;
  scheme: 'http' | 'https';
  /** The client's address. */
  addr: string | null;
  userAgent: string | null;
  method: string;
}

export interface ManifestPutResult {
  repositoryCreated: boolean;
  /** The digest the tag pointed at before, null when the tag is new or none was given. */
  previousTagDigest: string | null;
}

/**
 * Checks a manifest push must pass, run inside the metadata transaction that records it, so
 * that no concurrent change slips between check and write. Each throws to refuse the push.
 */
export interface ManifestPutGuard {
  /** Given the digest the pushed tag points at now (null: new tag). Only called for pushes by tag. */
  tag?(currentDigest: string | null): void;
  /** Given the repository's stored bytes (see MetadataStore.putManifest) before and after the push. */
  quota?(usage: { before: number; after: number }): void;
}

/** What a manifest deletion would affect, handed to its guard inside the transaction. */
export interface ManifestDeleteState {
  /** Tags of the repository pointing at the manifest. */
  tags: string[];
  /** Manifests (indexes) of the same repository that list it as a child. */
  referencedBy: string[];
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
  /**
   * Records a committed blob and links it into a repository (creating the repository), and
   * ends `claim` in the same transaction. Rejects with BLOB_UNKNOWN when garbage collection is
   * deleting the blob: a blob on its way out is never linked again.
   */
  linkBlob(repository: string, blob: RepositoryBlob, actor: Actor, claim?: string): Promise<void>;
  /**
   * Protects a digest from garbage collection while its content is put in place and linked
   * (upload commit, mount, link on HEAD): returns a claim to hand to linkBlob (or to
   * releaseBlobClaim), or null while a collection is deleting the blob (try again shortly).
   */
  claimBlob(digest: string): Promise<string | null>;
  /** Ends a claim that did not lead to a link. */
  releaseBlobClaim(claim: string): Promise<void>;
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
  /**
   * Records a manifest (and its tag) in one transaction that first checks that every blob it
   * references is linked into the repository and every child manifest is in it (MANIFEST_BLOB_UNKNOWN
   * otherwise), then runs the guard. The quota guard sees the repository's stored bytes: the
   * distinct blobs its manifests reference plus the manifests themselves.
   */
  putManifest(repository: string, manifest: NewManifest, tag: string | null, actor: Actor, guard?: ManifestPutGuard): Promise<ManifestPutResult>;
  getManifest(repository: string, digest: string): Promise<ManifestRecord | null>;
  resolveTag(repository: string, tag: string): Promise<string | null>;
  /**
   * Removes a manifest from a repository with every tag pointing at it; returns those tags, or
   * null when absent. `guard` runs in the transaction first and throws to refuse.
   */
  deleteManifest(repository: string, digest: string, actor: Actor, guard?: (state: ManifestDeleteState) => void): Promise<string[] | null>;
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
