/**
 * Paginated listings: tags of a repository and the catalog of repositories. Pages are index
 * range scans (`after` the last entry seen), so a page costs the same at any depth.
 */
import { RegistryError } from './errors.js';
import type { MetadataStore } from './ports.js';

export interface PageQuery {
  /** Requested page size (`n`); undefined lets the listing choose. */
  n?: number;
  /** Last entry of the previous page (`last`). */
  last?: string;
}

export interface Page {
  entries: string[];
  /** The `last` value for the next page, when there may be one. */
  next: string | null;
}

export interface ListingOptions {
  /** Catalog page size when the client gives no `n`. */
  defaultCatalogPageSize: number;
  /** Largest page served; a larger `n` is served at this size, with a next link. */
  maxPageSize: number;
}

/** Most repository names one filtered catalog request reads from the index. */
export const CATALOG_SCAN_LIMIT = 100_000;
const FILTER_BATCH_MIN = 100;
const FILTER_BATCH_MAX = 1_000;

export class ListingService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: ListingOptions,
  ) {}

  /** Tags in lexical order. Without `n` all tags are returned, as clients expect. */
  async tags(repository: string, query: PageQuery): Promise<Page> {
    if (!(await this.metadata.repositoryExists(repository))) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known to the registry`, { name: repository });
    }
    return this.page(query, query.n, (limit, after) => this.metadata.listTags(repository, { limit, after }));
  }

  /**
   * Repositories in lexical order. With `visible`, only those it accepts (what the caller may
   * pull) are listed: the index is paged forward and filtered as it goes, reading at most
   * `CATALOG_SCAN_LIMIT` names per request.
   */
  async catalog(query: PageQuery, visible?: (repository: string) => boolean): Promise<Page> {
    const requested = query.n ?? this.options.defaultCatalogPageSize;
    const fetch = (limit: number | undefined, after: string | undefined) => this.metadata.listRepositories({ limit, after });
    if (!visible) return this.page(query, requested, fetch);
    return visiblePage(query.last, Math.min(requested, this.options.maxPageSize), visible, fetch);
  }

  private async page(
    query: PageQuery,
    requested: number | undefined,
    fetch: (limit: number | undefined, after: string | undefined) => Promise<string[]>,
  ): Promise<Page> {
    if (requested === 0) return { entries: [], next: null };
    const size = requested === undefined ? undefined : Math.min(requested, this.options.maxPageSize);
    // One extra row tells whether another page follows without a count query.
    const rows = await fetch(size === undefined ? undefined : size + 1, query.last);
    if (size === undefined || rows.length <= size) return { entries: rows, next: null };
    const entries = rows.slice(0, size);
    return { entries, next: entries[entries.length - 1] ?? null };
  }
}

/**
 * A page of `size` entries that `visible` accepts, after `last`: the index is paged forward
 * in batches and filtered as it goes, reading at most {@link CATALOG_SCAN_LIMIT} entries.
 * The cursor only ever names an entry the caller can see.
 */
export async function visiblePage<T extends string>(
  last: string | undefined,
  size: number,
  visible: (entry: T) => boolean,
  fetch: (limit: number, after: string | undefined) => Promise<T[]>,
): Promise<{ entries: T[]; next: T | null }> {
  if (size === 0) return { entries: [], next: null };
  const batch = Math.min(Math.max(size + 1, FILTER_BATCH_MIN), FILTER_BATCH_MAX);
  const entries: T[] = [];
  let after = last;
  for (let scanned = 0; scanned < CATALOG_SCAN_LIMIT; ) {
    const rows = await fetch(batch, after);
    scanned += rows.length;
    for (const row of rows) {
      if (!visible(row)) continue;
      // One visible entry beyond the page tells that another page follows.
      if (entries.length === size) return { entries, next: entries[entries.length - 1]! };
      entries.push(row);
    }
    if (rows.length < batch) return { entries, next: null };
    after = rows[rows.length - 1];
  }
  // Scan budget spent. The cursor may only name an entry the caller can see, so the page
  // ends at the last visible entry; names past a longer run of hidden ones are not reached.
  return { entries, next: null };
}
