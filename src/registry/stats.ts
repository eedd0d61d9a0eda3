/**
 * Running totals the domain keeps about the work it did. Plain numbers, so the registry
 * stays free of any metrics library; the metrics module reads them on scrape.
 */
export class RegistryStats {
  /** Bytes written into upload sessions (what clients actually sent). */
  uploadedBytes = 0;
  /** Blobs made durable from uploads (new content or a re-upload of known content). */
  blobsCommitted = 0;
  /** Blobs made visible in a repository without an upload: mounts and links on HEAD. */
  blobsMounted = 0;
  /** Blob bytes served by GET (full or ranged), counted as they are sent. */
  servedBytes = 0;
  /** Blob GETs answered with a redirect to the object store (storage.redirect). */
  redirectedPulls = 0;
}
