/** Runs the BlobStore contract against every driver the project ships: the filesystem, and S3 on a real radosgw. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { FilesystemBlobStore } from '../../src/storage/filesystem/blob-store.js';
import { openBlobStore } from '../../src/storage/open.js';
import { radosgwMissing, startRadosgw } from '../helpers/s3.js';
import { blobStoreContract } from './blob-store-contract.js';

blobStoreContract('FilesystemBlobStore', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'blob-store-contract-'));
  return {
    store: await FilesystemBlobStore.open(root),
    cleanup: () => fs.rm(root, { recursive: true, force: true }),
  };
});

blobStoreContract(
  'S3BlobStore on radosgw',
  async () => {
    const s3 = await startRadosgw();
    try {
      const bucket = await s3.createBucket();
      // The smallest part S3 takes, so that the contract's 5 MiB blob spans a multipart upload, and a prefix.
      const config = validateConfig({ storage: { ...s3.storage(bucket, { partSize: '5MiB', prefix: 'contract' }) }, log: { level: 'silent' } });
      return { store: await openBlobStore(config.storage), cleanup: () => s3.stop() };
    } catch (error) {
      await s3.stop();
      throw error;
    }
  },
  radosgwMissing ?? false,
);
