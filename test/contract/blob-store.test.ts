/** Runs the BlobStore contract against every driver the project ships. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FilesystemBlobStore } from '../../src/storage/filesystem/blob-store.js';
import { blobStoreContract } from './blob-store-contract.js';

blobStoreContract('FilesystemBlobStore', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'blob-store-contract-'));
  return {
    store: await FilesystemBlobStore.open(root),
    cleanup: () => fs.rm(root, { recursive: true, force: true }),
  };
});
