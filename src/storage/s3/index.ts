/**
 * Opens the S3 blob store the configuration describes, checking the bucket first: a bucket
 * that is missing, unreachable or refuses the credentials stops start-up with a message that
 * names the setting and what S3 answered.
 */
import type { StorageConfig } from '../../config/storage.js';
import { ConfigError } from '../../config/load.js';
import { S3BlobStore } from './blob-store.js';
import { createPresignClient, createS3Client } from './client.js';

export async function openS3BlobStore(storage: StorageConfig): Promise<S3BlobStore> {
  const store = new S3BlobStore({ settings: storage.s3, client: createS3Client(storage.s3), presignClient: createPresignClient(storage) });
  try {
    await store.check();
  } catch (error) {
    throw new ConfigError(`storage is not usable: ${(error as Error).message}`);
  }
  return store;
}
