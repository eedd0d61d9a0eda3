/**
 * The read port of the web interface and the /api/v1 browsing API: repository summaries,
 * pages of tags with what they point at, and who pushed them. Kept apart from the request
 * path's MetadataStore, as the LifecycleStore is; asynchronous so that a PostgreSQL store can
 * implement it. Nothing here writes, and nothing needs a table of its own: push times are the
 * tags' own column, pushers come from the events outbox.
 */
import type { Actor } from './ports.js';

export interface RepositorySummary {
  name: string;
  tagCount: number;
  /** When a tag of the repository last moved (ms since the epoch); null without tags. */
  lastPushAt: number | null;
  /** Its manifests plus the distinct blobs they reference, as usage reports and quotas count them. */
  storedBytes: number;
}

/** The orders the database can page by an index. */
export type IndexedTagOrder = 'name' | 'pushed';

export interface StoredTag {
  name: string;
  digest: string;
  /** When the tag was last moved to a digest (ms since the epoch). */
  pushedAt: number;
}

export interface TagPageRequest {
  order: IndexedTagOrder;
  /** Substring the tag name must contain (tag names are case-sensitive). */
  search?: string;
  /** The last tag of the previous page (its name, and for `pushed` its push time). */
  after?: { name: string; pushedAt: number };
  limit: number;
}

/** A manifest as the tag list shows it. */
export interface ManifestSummary {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  /** The manifest's own bytes. */
  content: Buffer;
  /** What pulling it downloads: the manifest, its child manifests and every distinct blob they reference. */
  totalSize: number;
}

export interface TagPush {
  actor: Actor;
  /** When that push was recorded (ms since the epoch). */
  at: number;
}

export interface BrowseStore {
  /** Repository names after `after` in lexical order, those containing `search` only (names are lowercase; so is the search). */
  repositoryNames(page: { search?: string; after?: string; limit: number }): Promise<string[]>;
  /** Summaries of these repositories (those that exist), in the order given. */
  repositorySummaries(names: string[]): Promise<RepositorySummary[]>;
  /**
   * A number that changes whenever the repository's tags do (its newest outbox event: every tag
   * change records one in the same transaction), so derived orders and counts can be cached.
   */
  tagsVersion(repository: string): Promise<number>;
  /** How many tags of the repository contain `search` (case-sensitive; all without it). */
  countTags(repository: string, search?: string): Promise<number>;
  /** A page of tags: `name` in lexical order, `pushed` newest first (ties by name, descending). */
  tagPage(repository: string, page: TagPageRequest): Promise<StoredTag[]>;
  /** The names of every tag containing `search`, unordered (for orders no index serves, such as semver). */
  tagNames(repository: string, search?: string): Promise<string[]>;
  /** These tags of the repository (those that exist). */
  tagsByName(repository: string, names: string[]): Promise<StoredTag[]>;
  /** Tags of the repository pointing at the digest, in lexical order. */
  tagsOfDigest(repository: string, digest: string): Promise<string[]>;
  /** Summaries of these manifests of the repository (those it holds). */
  manifestSummaries(repository: string, digests: string[]): Promise<ManifestSummary[]>;
  /** The latest push (tag created or moved) of each of these tags that the outbox recorded. */
  lastPushes(repository: string, tags: string[]): Promise<Map<string, TagPush>>;
}
