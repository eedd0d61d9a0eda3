/**
 * Browsing the registry as people do (the web interface, the /api/v1 browsing API):
 * repositories with their tag count, last push and stored size; a repository's tags with
 * digest, size, platforms, push time and pusher, sorted by name, push time or semver,
 * filtered and paged; and one image's details. Reads only; who may see what is decided by
 * the caller (the HTTP layer), as for /v2.
 */
import semver from 'semver';
import { BoundedMap } from '../runtime/bounded-map.js';
import type { BrowseStore, ManifestSummary, RepositorySummary, StoredTag } from './browse-store.js';
import { RegistryError } from './errors.js';
import {
  contentKind,
  descriptorView,
  IMAGE_CONFIG_TYPES,
  imageConfigView,
  indexEntries,
  indexPlatforms,
  layersOf,
  parseJsonObject,
  type ImageDetails,
  type Platform,
} from './image-details.js';
import { visiblePage } from './listings.js';
import { SEMVER } from './patterns.js';
import type { Actor, BlobStore, MetadataStore } from './ports.js';
import { isValidTag, parseManifestReference } from './references.js';

export const TAG_SORTS = ['pushed', 'semver', 'name'] as const;
export type TagSort = (typeof TAG_SORTS)[number];

export interface BrowseOptions {
  /** Page size when the client gives none. */
  defaultPageSize: number;
  /** Largest page served. */
  maxPageSize: number;
  /** Largest image config read (for platforms and the image page). */
  maxConfigBytes: number;
}

export interface RepositoryPage {
  repositories: RepositorySummary[];
  /** The `last` of the next page, or null on the last one. */
  next: string | null;
}

export interface TagView {
  name: string;
  digest: string;
  mediaType: string | null;
  artifactType: string | null;
  /** What pulling the tag downloads (manifests and distinct blobs, compressed); null if the manifest is gone. */
  size: number | null;
  platforms: Platform[];
  pushedAt: number;
  /** Who last moved the tag here, from the events outbox; null when it holds no record of it. */
  pusher: Actor | null;
}

export interface TagPage {
  tags: TagView[];
  /** Tags matching the filter, on every page. */
  total: number;
  next: string | null;
}

export interface PageQuery {
  n?: number;
  last?: string;
  search?: string;
}

/** Derived from a repository's tags, valid while its tag version (newest outbox event) is unchanged. */
interface Derived<T> {
  version: number;
  value: T;
}

export class BrowseService {
  /** Image platforms by config digest: content-addressed, so never stale. */
  private readonly configPlatforms = new BoundedMap<string, Platform | null>(10_000);
  /** Tag counts by repository and search. */
  private readonly counts = new BoundedMap<string, Derived<number>>(1_000);
  /** Tag names in semver order by repository and search (100,000 names are a few MB: few are kept). */
  private readonly semverOrders = new BoundedMap<string, Derived<string[]>>(8);

  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: BlobStore,
    private readonly browse: BrowseStore,
    private readonly options: BrowseOptions,
  ) {}

  /** Repositories in lexical order; with `visible`, only those it accepts (what the caller may pull). */
  async repositories(query: PageQuery, visible?: (repository: string) => boolean): Promise<RepositoryPage> {
    const size = this.pageSize(query.n);
    const fetch = (limit: number, after: string | undefined) => this.browse.repositoryNames({ search: query.search, after, limit });
    const page = await visiblePage(query.last, size, visible ?? (() => true), fetch);
    return { repositories: await this.browse.repositorySummaries(page.entries), next: page.next };
  }

  async repository(name: string): Promise<RepositorySummary> {
    const [summary] = await this.browse.repositorySummaries([name]);
    if (!summary) throw unknownRepository(name);
    return summary;
  }

  async tags(repository: string, query: PageQuery & { sort?: TagSort }): Promise<TagPage> {
    if (!(await this.metadata.repositoryExists(repository))) throw unknownRepository(repository);
    const size = this.pageSize(query.n);
    const sort = query.sort ?? 'pushed';
    const version = await this.browse.tagsVersion(repository);
    const cacheKey = `${repository}\n${query.search ?? ''}`;
    const [total, rows] = await Promise.all([
      derived(this.counts, cacheKey, version, () => this.browse.countTags(repository, query.search)),
      sort === 'semver' ? this.semverPage(repository, query, size + 1, cacheKey, version) : this.indexedPage(repository, sort, query, size + 1),
    ]);
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    const next = rows.length > size && last ? (sort === 'pushed' ? `${last.pushedAt}:${last.name}` : last.name) : null;
    return { tags: await this.describeTags(repository, page), total, next };
  }

  /** One manifest (by tag or digest) and what it says: platforms, layers, config, referrers. */
  async image(repository: string, reference: string): Promise<ImageDetails> {
    const target = parseManifestReference(reference);
    const digest = target.kind === 'digest' ? target.digest : await this.metadata.resolveTag(repository, target.tag);
    const [summary] = digest ? await this.browse.manifestSummaries(repository, [digest]) : [];
    if (!summary) {
      const exists = await this.metadata.repositoryExists(repository);
      if (!exists) throw unknownRepository(repository);
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in repository ${repository}`, { name: repository, reference });
    }
    const manifest = parseJsonObject(summary.content);
    const kind = contentKind(summary.mediaType, manifest);
    const configDescriptor = kind === 'index' ? null : descriptorView(manifest?.config);
    const configJson = configDescriptor && IMAGE_CONFIG_TYPES.has(configDescriptor.mediaType ?? '') ? await this.readConfig(repository, configDescriptor.digest) : null;
    const [tags, referrers] = await Promise.all([
      this.browse.tagsOfDigest(repository, summary.digest),
      this.metadata.listReferrers(repository, summary.digest),
    ]);
    return {
      repository,
      digest: summary.digest,
      mediaType: summary.mediaType,
      kind,
      artifactType: summary.artifactType,
      size: summary.content.length,
      totalSize: summary.totalSize,
      tags,
      subject: typeof manifest?.subject === 'object' ? (descriptorView(manifest.subject)?.digest ?? null) : null,
      annotations: descriptorView({ digest: '', annotations: manifest?.annotations })?.annotations ?? null,
      manifests: kind === 'index' ? indexEntries(manifest) : [],
      layers: layersOf(manifest),
      config: configDescriptor && { ...configDescriptor, image: configJson && imageConfigView(configJson) },
      referrers: referrers.map((referrer) => ({ ...referrer, annotations: referrer.annotations })),
      raw: summary.content.toString('utf8'),
    };
  }

  private pageSize(n: number | undefined): number {
    return Math.min(n ?? this.options.defaultPageSize, this.options.maxPageSize);
  }

  private async indexedPage(repository: string, order: 'name' | 'pushed', query: PageQuery, limit: number): Promise<StoredTag[]> {
    return this.browse.tagPage(repository, { order, search: query.search, after: query.last === undefined ? undefined : parseCursor(order, query.last), limit });
  }

  /**
   * Highest version first, then tags that are no version by name. No index orders versions,
   * so the repository's (filtered) tag names are read and sorted once per change of its tags
   * (100,000 in a few hundred ms), and pages are cut from that order until the next change.
   */
  private async semverPage(repository: string, query: PageQuery, limit: number, cacheKey: string, version: number): Promise<StoredTag[]> {
    const names = await derived(this.semverOrders, cacheKey, version, async () => semverOrder(await this.browse.tagNames(repository, query.search)));
    let start = 0;
    if (query.last !== undefined) {
      // The first entry sorting after the cursor, so a cursor tag deleted meanwhile still places the page.
      const cursor = versionKey(query.last);
      start = names.findIndex((name) => compareVersionKeys(cursor, versionKey(name)) < 0);
      if (start < 0) return [];
    }
    const page = names.slice(start, start + limit);
    const rows = new Map((await this.browse.tagsByName(repository, page)).map((tag) => [tag.name, tag]));
    return page.flatMap((name) => rows.get(name) ?? []);
  }

  private async describeTags(repository: string, tags: StoredTag[]): Promise<TagView[]> {
    const [manifests, pushes] = await Promise.all([
      this.browse.manifestSummaries(repository, tags.map((tag) => tag.digest)),
      this.browse.lastPushes(repository, tags.map((tag) => tag.name)),
    ]);
    const byDigest = new Map(manifests.map((manifest) => [manifest.digest, manifest]));
    const platforms = new Map<string, Platform[]>();
    for (const manifest of manifests) platforms.set(manifest.digest, await this.platformsOf(repository, manifest));
    return tags.map((tag) => {
      const manifest = byDigest.get(tag.digest);
      return {
        name: tag.name,
        digest: tag.digest,
        mediaType: manifest?.mediaType ?? null,
        artifactType: manifest?.artifactType ?? null,
        size: manifest?.totalSize ?? null,
        platforms: platforms.get(tag.digest) ?? [],
        pushedAt: tag.pushedAt,
        pusher: pushes.get(tag.name)?.actor ?? null,
      };
    });
  }

  private async platformsOf(repository: string, summary: ManifestSummary): Promise<Platform[]> {
    const manifest = parseJsonObject(summary.content);
    const kind = contentKind(summary.mediaType, manifest);
    if (kind === 'index') return indexPlatforms(manifest);
    const config = descriptorView(manifest?.config);
    if (kind !== 'image' || !config) return [];
    if (!this.configPlatforms.has(config.digest)) {
      const json = await this.readConfig(repository, config.digest);
      this.configPlatforms.set(config.digest, json && imageConfigView(json).platform);
    }
    const platform = this.configPlatforms.get(config.digest);
    return platform ? [platform] : [];
  }

  /** An image config of the repository, parsed; null when absent, too large or not JSON. */
  private async readConfig(repository: string, digest: string): Promise<Record<string, unknown> | null> {
    const blob = await this.metadata.getRepositoryBlob(repository, digest);
    if (!blob || blob.size > this.options.maxConfigBytes) return null;
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of await this.store.read(digest, undefined, blob.size)) chunks.push(chunk as Buffer);
      return parseJsonObject(Buffer.concat(chunks));
    } catch (error) {
      // A config gone or damaged in storage leaves the fields empty; fsck reports the damage.
      if (error instanceof RegistryError && error.code === 'BLOB_UNKNOWN') return null;
      throw error;
    }
  }
}

/** What a repository's tags derive, recomputed when the tags changed since it was cached. */
async function derived<T>(cache: BoundedMap<string, Derived<T>>, key: string, version: number, compute: () => Promise<T>): Promise<T> {
  const cached = cache.get(key);
  if (cached && cached.version === version) return cached.value;
  const value = await compute();
  cache.set(key, { version, value });
  return value;
}

interface VersionKey {
  name: string;
  /** Null for a tag that is no semantic version. */
  version: { major: number; minor: number; patch: number; pre: string | undefined } | null;
}

function versionKey(name: string): VersionKey {
  const match = SEMVER.exec(name);
  return { name, version: match ? { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]), pre: match[4] } : null };
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Versions (highest first, in SemVer precedence) before every other tag, those by name. Main
 * versions compare as numbers; pre-releases of one version (rare) by semver's own rule, so
 * 100,000 keys sort in tens of ms.
 */
function compareVersionKeys(a: VersionKey, b: VersionKey): number {
  const [x, y] = [a.version, b.version];
  if (!x || !y) return x ? -1 : y ? 1 : byName(a.name, b.name);
  const main = y.major - x.major || y.minor - x.minor || y.patch - x.patch;
  if (main) return main;
  if (x.pre === undefined || y.pre === undefined) return x.pre === y.pre ? byName(a.name, b.name) : x.pre === undefined ? -1 : 1;
  return semver.compare(`0.0.0-${y.pre}`, `0.0.0-${x.pre}`) || byName(a.name, b.name);
}

/** Tag names in the semver sort of the tag list. */
export function semverOrder(names: string[]): string[] {
  return names.map(versionKey).sort(compareVersionKeys).map((key) => key.name);
}

/** The `last` of a tag page: a tag name, or `<push time ms>:<name>` in push order. */
function parseCursor(order: 'name' | 'pushed', last: string): { name: string; pushedAt: number } {
  if (order === 'name') return { name: last, pushedAt: 0 };
  const match = /^(\d{1,15}):(.+)$/.exec(last);
  if (!match || !isValidTag(match[2]!)) throw new RegistryError('INVALID_REQUEST', `last must be the next value of the previous page, not ${JSON.stringify(last)}`);
  return { pushedAt: Number(match[1]), name: match[2]! };
}

function unknownRepository(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `repository ${name} is not known to the registry`, { name });
}
