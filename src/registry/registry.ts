/** The registry domain, assembled from its services over a blob store and a metadata store. */
import { DEFAULT_CLAIM_OPTIONS, type ClaimOptions } from './blob-claims.js';
import { BlobService } from './blobs.js';
import { ListingService } from './listings.js';
import { ManifestService } from './manifests.js';
import { blobLinkGuard, checkBlobQuota, LifecyclePolicies, NO_RULES, type LifecycleRules, type UsageReader } from './policies.js';
import type { BlobStore, MetadataStore } from './ports.js';
import { RegistryStats } from './stats.js';
import { UploadService } from './uploads.js';

export interface RegistryOptions {
  linkKnownBlobsOnHead: boolean;
  maxManifestBytes: number;
  defaultCatalogPageSize: number;
  maxPageSize: number;
  deleteEnabled: boolean;
  /** Seconds a presigned redirect for a blob GET stays valid; unset: blobs stream through the registry. */
  redirectSeconds?: number;
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
  /** Immutable tags, quotas and retention, as configured. */
  policies: LifecyclePolicies;
}

/** Lifecycle rules and what enforcing them reads; without them nothing is immutable and there are no quotas. */
export interface RegistryExtras {
  rules?: LifecycleRules;
  /** Lets blob uploads be refused early when the repository's quota could not take them. */
  usage?: UsageReader;
  /** How long a push waits for garbage collection to finish deleting a blob it brings back. */
  claims?: ClaimOptions;
  /** See UploadServiceOptions.resumableHashes: on where uploads may move between processes (object storage). */
  resumableHashes?: boolean;
}

export function createRegistry(store: BlobStore, metadata: MetadataStore, options: RegistryOptions, extras: RegistryExtras = {}): Registry {
  const stats = new RegistryStats();
  const policies = new LifecyclePolicies(extras.rules ?? NO_RULES);
  const { usage } = extras;
  const admit = usage && policies.hasQuotas
    ? (repository: string, digest: string, size: number) => checkBlobQuota(policies, usage, repository, digest, size)
    : undefined;
  const linkGuard = policies.hasQuotas ? (repository: string) => blobLinkGuard(policies, repository) : undefined;
  return {
    blobs: new BlobService(store, metadata, options, stats, linkGuard),
    uploads: new UploadService(store, metadata, stats, {
      resumableHashes: extras.resumableHashes ?? false,
      admit,
      linkGuard,
      claims: extras.claims ?? DEFAULT_CLAIM_OPTIONS,
    }),
    manifests: new ManifestService(metadata, options, policies),
    listings: new ListingService(metadata, options),
    metadata,
    store,
    stats,
    options,
    policies,
  };
}
