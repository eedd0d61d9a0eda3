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
 * Content-addressed blob bytes plus the data of uploads in progress.
 * A blob becomes visible under its digest only through {@link BlobStore.commitUpload},
 * after the caller verified the digest, so readers never see half-written content.
 *
 * An upload is written in appends, each by one writer at a time (the metadata store's writer
 * lease). What a driver needs to continue an upload in any process is in its
 * {@link UploadProgress}, which the caller keeps in the upload's metadata record and hands
 * back on the next call; a driver keeps nothing about an upload in memory.
 */
export interface BlobStore {
  /**
   * Whether {@link stat} is a local call (a file system) rather than a network round trip
   * (object storage): the request path checks stored sizes on HEAD only when it is.
   */
  readonly statIsCheap: boolean;
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
  /**
   * A URL that serves the committed blob without the registry (object storage), valid for
   * `expiresInSeconds`; absent when the driver cannot give one.
   */
  presign?(digest: string, expiresInSeconds: number): Promise<string>;
  /** Throws, saying why, when the storage cannot serve (readiness); absent when there is nothing to check. */
  check?(): Promise<void>;
  /** Removes a committed blob; false when it was not there. */
  delete(digest: string): Promise<boolean>;
  /** Every committed blob with its size and last write, in no particular order, in one listing (no request per blob). */
  list(): AsyncIterable<StoredBlob>;

  /** Prepares an upload session; returns its progress at 0 bytes. */
  createUpload(id: string): Promise<UploadProgress>;
  /**
   * Appends a stream to an upload at `progress`, calling `observe` with every chunk taken
   * (for incremental hashing), and resolves with the new progress. When it rejects, the upload
   * is still at `progress`: nothing of a failed append counts.
   */
  appendUpload(id: string, progress: UploadProgress, source: Readable, observe?: (chunk: Buffer) => void): Promise<UploadProgress>;
  /**
   * Streams an upload's bytes from the start (to hash them when no running hash survived).
   * A driver that cannot read an upload in progress (S3 multipart) may assemble it first, so
   * call it only to finish the upload: it resolves with the progress to commit with.
   */
  readUpload(id: string, progress: UploadProgress): Promise<{ stream: Readable; progress: UploadProgress }>;
  /**
   * Makes a verified upload durable under its digest, atomically. When the blob already exists
   * the upload is discarded and the stored blob left untouched.
   */
  commitUpload(id: string, progress: UploadProgress, digest: string): Promise<void>;
  /** Removes an upload's data, if any; `progress` null for data found without a record (the purge). */
  deleteUpload(id: string, progress: UploadProgress | null): Promise<void>;
  /** Every upload's data in storage, with its size and last write (ms since the epoch). */
  listUploads(): AsyncIterable<StoredUpload>;
}

/** Where an upload stands in storage: kept in its metadata record between requests. */
export interface UploadProgress {
  /** Bytes received so far. */
  size: number;
  /** The driver's own state (JSON text: multipart upload id, parts, tail), opaque to the domain; null when it needs none. */
  driverState: string | null;
}

export interface StoredBlob {
  digest: string;
  size: number;
  /** Last write, ms since the epoch. */
  modifiedAt: number;
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

/** Upload data found in storage (the purge matches it against the records). */
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

/** An upload session with everything needed to continue it in any process. */
export interface UploadRecord extends UploadSession, UploadProgress {
  /** The running hash's saved state at `size` (see digests.ts), or null when none was saved. */
  hashState: string | null;
  /** Last change (ms since the epoch): idle sessions are purged. */
  updatedAt: number;
}

/** What a writer records after an append. */
export interface UploadUpdate extends UploadProgress {
  hashState: string | null;
}

/**
 * The answer to taking an upload's writer lease: the record when taken; otherwise whether
 * another writer holds it (`busy`) or the upload is gone (`unknown`).
 */
export type UploadLease = { state: 'acquired'; upload: UploadRecord } | { state: 'busy' | 'unknown' };

/** Checks linking a blob must pass, inside the transaction that links it. */
export interface BlobLinkGuard {
  /** Given what the repository holds (see LifecycleStore.heldBytes) before and after the link. */
  quota?(usage: { before: number; after: number }): void;
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
   * ends `claim` in the same transaction, after `guard` passed. Rejects with BLOB_UNKNOWN when
   * garbage collection is deleting the blob: a blob on its way out is never linked again.
   */
  linkBlob(repository: string, blob: RepositoryBlob, actor: Actor, claim?: string, guard?: BlobLinkGuard): Promise<void>;
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

  createUpload(upload: UploadRecord): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | null>;
  /**
   * Compare-and-set: makes `writer` the upload's one writer until `ttlMs` from now, unless
   * another writer holds an unexpired lease; the same writer calling again renews it. Any
   * process may continue any upload, one request at a time.
   */
  leaseUpload(id: string, writer: string, ttlMs: number): Promise<UploadLease>;
  /** Records an append, only while `writer` still holds the lease (compare-and-set); false when it lost it. */
  saveUpload(id: string, writer: string, update: UploadUpdate): Promise<boolean>;
  /** Ends `writer`'s lease, if it holds it. */
  releaseUpload(id: string, writer: string): Promise<void>;
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
  /** The manifest a tag of the repository points at, in one lookup (a pull's first request); null when the tag is absent. */
  getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | null>;
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
