/**
 * The two ends of a blob migration: the filesystem store under storage.root as the source
 * (whatever storage.driver says, since the command moves away from it) and the S3 bucket that
 * storage.s3.* describe (checked on open: a missing bucket or refused credentials stop it at once).
 */
import path from 'node:path';
import { ConfigError } from '../../config/load.js';
import type { StorageConfig } from '../../config/storage.js';
import type { BlobStore } from '../../registry/ports.js';
import { FilesystemBlobStore } from '../filesystem/blob-store.js';
import { openBlobStore } from '../open.js';

export function openFilesystemSource(storage: StorageConfig): Promise<BlobStore> {
  return FilesystemBlobStore.open(path.resolve(storage.root));
}

export function openS3Target(storage: StorageConfig): Promise<BlobStore> {
  if (!storage.s3.bucket) throw new ConfigError('storage.s3.bucket (REGISTRY_STORAGE_S3_BUCKET): set it to the bucket to copy the blobs into');
  return openBlobStore({ ...storage, driver: 's3' });
}
