/**
 * Upload writer leases (src/registry/uploads.ts): a completion outwaits a writer that died
 * holding the lease (a replica killed mid-request, whose PUT nginx replays elsewhere) and
 * completes, but never takes the upload from a writer that is alive and renewing. The timings
 * are scaled down here; the defaults keep the same order (lease shorter than the wait).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { openSqliteBackend, type SqliteBackend } from '../../src/metadata/sqlite/index.js';
import { ANONYMOUS_ACTOR } from '../../src/registry/ports.js';
import { RegistryStats } from '../../src/registry/stats.js';
import { DEFAULT_LEASE_MS, DEFAULT_LEASE_WAIT_MS, UploadService } from '../../src/registry/uploads.js';
import { FilesystemBlobStore } from '../../src/storage/filesystem/blob-store.js';

const LEASE_MS = 300;
const WAIT_MS = 1_500;

describe('upload writer leases', () => {
  let dir: string;
  let backend: SqliteBackend;
  let uploads: UploadService;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'upload-leases-'));
    backend = openSqliteBackend(dir);
    const store = await FilesystemBlobStore.open(dir);
    uploads = new UploadService(store, backend.metadata, new RegistryStats(), { resumableHashes: true, leaseMs: LEASE_MS, leaseWaitMs: WAIT_MS });
  });
  after(async () => {
    await backend?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  async function uploadWithBytes(repository: string, bytes: Buffer): Promise<{ id: string; digest: string }> {
    const { id } = await uploads.start(repository);
    await uploads.append(repository, id, { body: Readable.from([bytes]), length: bytes.length });
    return { id, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
  }

  it('by default a dead writer holds the lease for less time than a completion waits', () => {
    assert.ok(DEFAULT_LEASE_MS < DEFAULT_LEASE_WAIT_MS, `lease ${DEFAULT_LEASE_MS} ms must end within the wait of ${DEFAULT_LEASE_WAIT_MS} ms`);
    assert.ok(DEFAULT_LEASE_WAIT_MS - DEFAULT_LEASE_MS >= 1_000, 'with room for the wait to see it end');
  });

  it('a completion outwaits a writer that died holding the lease, and completes', async () => {
    const bytes = Buffer.from('the layer a killed replica was completing');
    const { id, digest } = await uploadWithBytes('lease/dead', bytes);
    // Another process took the lease and died: it never renews or releases it.
    assert.equal((await backend.metadata.leaseUpload(id, 'dead-replica/1', LEASE_MS)).state, 'acquired');
    const started = Date.now();
    const blob = await uploads.complete('lease/dead', id, digest, null, ANONYMOUS_ACTOR);
    assert.equal(blob.digest, digest);
    assert.ok(Date.now() - started >= LEASE_MS - 50, 'it waited for the lease to end');
  });

  it('a completion never takes the upload from a live writer that renews its lease', async () => {
    const { id, digest } = await uploadWithBytes('lease/live', Buffer.from('a layer still being written'));
    assert.equal((await backend.metadata.leaseUpload(id, 'live-replica/1', LEASE_MS)).state, 'acquired');
    const renewal = setInterval(() => void backend.metadata.leaseUpload(id, 'live-replica/1', LEASE_MS), LEASE_MS / 3);
    try {
      await assert.rejects(uploads.complete('lease/live', id, digest, null, ANONYMOUS_ACTOR), (error: { code?: string; message?: string }) => {
        assert.equal(error.code, 'BLOB_UPLOAD_INVALID');
        assert.match(error.message ?? '', /another request is writing/);
        return true;
      });
    } finally {
      clearInterval(renewal);
    }
    await backend.metadata.releaseUpload(id, 'live-replica/1');
    assert.equal((await uploads.complete('lease/live', id, digest, null, ANONYMOUS_ACTOR)).digest, digest, 'completes once the writer let go');
  });
});
