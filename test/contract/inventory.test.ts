/** The metrics inventory (counts of what the registry holds) agrees on every metadata backend. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { MetadataBackend } from '../../src/metadata/backend.js';
import type { Actor } from '../../src/registry/ports.js';
import { openPostgresForTest, openSqliteForTest, POSTGRES_SKIP, type OpenedBackend } from '../helpers/metadata-backends.js';

const ACTOR: Actor = { name: 'tester', kind: 'user' };
const digestOf = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;

const BACKENDS: Array<{ name: string; skip: string | false; open: () => Promise<OpenedBackend<MetadataBackend>> }> = [
  { name: 'SQLite', skip: false, open: openSqliteForTest },
  { name: 'PostgreSQL', skip: POSTGRES_SKIP, open: () => openPostgresForTest() },
];

for (const kind of BACKENDS) {
  describe(`inventory (${kind.name})`, { skip: kind.skip }, () => {
    it('counts repositories, distinct blobs and manifests with their bytes, tags and open uploads; marked blobs not', async (t) => {
      const { backend, cleanup } = await kind.open();
      t.after(cleanup);
      const layer = { digest: digestOf('layer'), size: 3_000_000_000 };
      const marked = { digest: digestOf('marked'), size: 7 };
      for (const name of ['a/one', 'b/two']) await backend.metadata.linkBlob(name, layer, ACTOR);
      await backend.metadata.linkBlob('a/one', marked, ACTOR);
      await backend.lifecycle.markBlobs([marked.digest]);
      const content = Buffer.from('{"schemaVersion":2}');
      const manifest = { digest: digestOf(content.toString()), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: content.length, content, subject: null, artifactType: null, annotations: null, references: [{ digest: layer.digest, kind: 'blob' as const }] };
      await backend.metadata.putManifest('a/one', manifest, 'v1', ACTOR);
      await backend.metadata.putManifest('a/one', manifest, 'latest', ACTOR);
      await backend.metadata.createUpload({ id: 'u1', repository: 'a/one', createdAt: 1, updatedAt: 1, size: 0, driverState: null, hashState: null });
      assert.deepEqual(await backend.inventory(), {
        repositories: 2,
        blobs: 1,
        blobBytes: 3_000_000_000,
        manifests: 1,
        manifestBytes: content.length,
        tags: 2,
        uploadSessions: 1,
      });
    });
  });
}
