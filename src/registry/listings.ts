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

  async catalog(query: PageQuery): Promise<Page> {
    return this.page(query, query.n ?? this.options.defaultCatalogPageSize, (limit, after) =>
      this.metadata.listRepositories({ limit, after }),
    );
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
