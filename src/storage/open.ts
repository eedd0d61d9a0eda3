/**
 * Opens the blob store `storage.driver` names. The S3 driver (and the AWS SDK with it) is
 * loaded only when configured, so the embedded default starts as quickly as before.
 */
import path from 'node:path';
import type { StorageConfig } from '../config/storage.js';
import type { BlobStore } from '../registry/ports.js';
import { FilesystemBlobStore } from './filesystem/blob-store.js';

export async function openBlobStore(storage: StorageConfig): Promise<BlobStore> {
  if (storage.driver === 's3') {
    const { openS3BlobStore } = await import('./s3/index.js');
    return openS3BlobStore(storage);
  }
  return FilesystemBlobStore.open(path.resolve(storage.root));
}

/** Whether uploads may continue in another process without reading their data back (see UploadServiceOptions.resumableHashes). */
export function needsResumableHashes(storage: StorageConfig): boolean {
  return storage.driver !== 'filesystem';
}
