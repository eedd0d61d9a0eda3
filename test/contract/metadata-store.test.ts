/** Runs the MetadataStore contract against every metadata backend the project ships. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/metadata-store.js';
import { openPostgresForTest, POSTGRES_SKIP } from '../helpers/metadata-backends.js';
import { metadataStoreContract } from './metadata-store-contract.js';

metadataStoreContract('SqliteMetadataStore', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'metadata-store-contract-'));
  const store = new SqliteMetadataStore(path.join(dir, 'registry.db'));
  return {
    store,
    async cleanup() {
      await store.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
});

metadataStoreContract(
  'PostgresMetadataStore',
  async () => {
    const { backend, cleanup } = await openPostgresForTest();
    return { store: backend.metadata, cleanup };
  },
  { skip: POSTGRES_SKIP },
);
