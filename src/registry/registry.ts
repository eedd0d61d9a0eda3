/** The registry domain, assembled from its services over a blob store and a metadata store. */
import { BlobService } from './blobs.js';
import { ListingService } from './listings.js';
import { ManifestService } from './manifests.js';
import type { BlobStore, MetadataStore } from './ports.js';
import { RegistryStats } from './stats.js';
import { UploadService } from './uploads.js';

export interface RegistryOptions {
  linkKnownBlobsOnHead: boolean;
  maxManifestBytes: number;
  defaultCatalogPageSize: number;
  maxPageSize: number;
  deleteEnabled: boolean;
}

export interface Registry {
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  listings: ListingService;
  metadata: MetadataStore;
  store: BlobStore;
  stats: RegistryStats;
  options: RegistryOptions;
}

export function createRegistry(store: BlobStore, metadata: MetadataStore, options: RegistryOptions): Registry {
  const stats = new RegistryStats();
  return {
    blobs: new BlobService(store, metadata, options, stats),
    uploads: new UploadService(store, metadata, stats),
    manifests: new ManifestService(metadata, options),
    listings: new ListingService(metadata, options),
    metadata,
    store,
    stats,
    options,
  };
}
