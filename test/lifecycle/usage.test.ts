/**
 * Storage use: per repository as logical bytes (what pulling everything downloads) and unique
 * bytes (what deleting it would free); for the registry, stored (deduplicated) and logical totals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import type { RegistryUsage, RepositoryUsage } from '../../src/registry/lifecycle-store.js';
import { assertError, imageManifest, MEDIA, pushBlob, pushManifest, type App, type Descriptor } from '../helpers/app.js';
import { createLifecycleApp, type LifecycleTestApp } from './helpers.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';

async function pushImageOf(app: App, name: string, tag: string, seed: string, layers: Array<string | Buffer>) {
  const config = await pushBlob(app, name, JSON.stringify({ architecture: 'amd64', os: 'linux', seed }), MEDIA.ociConfig);
  const pushed: Descriptor[] = [];
  for (const layer of layers) pushed.push(await pushBlob(app, name, layer));
  const manifest = await pushManifest(app, name, tag, imageManifest(config, pushed));
  return { manifest, config, layers: pushed };
}

for (const backend of METADATA_BACKENDS) describe(`usage (${backend.name})`, { skip: backend.skip }, () => {
  let t: LifecycleTestApp;
  const shared = Buffer.alloc(4096, 's');
  let a: Awaited<ReturnType<typeof pushImageOf>>;
  let b: Awaited<ReturnType<typeof pushImageOf>>;
  let stray: Descriptor;
  before(async () => {
    t = await createLifecycleApp({ metadata: await backend.metadataConfig() });
    a = await pushImageOf(t.app, 'usage/a', 'v1', 'a', [shared, Buffer.alloc(1000, 'a')]);
    await pushManifest(t.app, 'usage/a', 'also-v1', imageManifest(a.config, a.layers));
    b = await pushImageOf(t.app, 'usage/b', 'v1', 'b', [shared, Buffer.alloc(2000, 'b')]);
    stray = await pushBlob(t.app, 'usage/a', Buffer.alloc(300, 'x'));
  });
  after(() => t.close());

  it('counts a repository logically (everything its manifests use) and uniquely (what only it uses)', async () => {
    const res = await request(t.app).get('/api/v1/usage/usage/a');
    assert.equal(res.status, 200);
    const usage = res.body as RepositoryUsage;
    assert.deepEqual(usage, {
      repository: 'usage/a',
      tags: 2,
      manifests: 1,
      blobs: 3,
      logicalBytes: a.manifest.size + a.config.size + shared.length + 1000,
      uniqueBytes: a.manifest.size + a.config.size + 1000,
      // Quotas also count the blob uploaded without a manifest yet.
      heldBytes: a.manifest.size + a.config.size + shared.length + 1000 + stray.size,
    });
  });

  it('reports registry totals, deduplicated and logical, with every repository', async () => {
    const res = await request(t.app).get('/api/v1/usage');
    assert.equal(res.status, 200);
    const { totals, repositories } = res.body as { totals: RegistryUsage; repositories: RepositoryUsage[] };
    const logicalA = a.manifest.size + a.config.size + shared.length + 1000;
    const logicalB = b.manifest.size + b.config.size + shared.length + 2000;
    assert.deepEqual(totals, {
      repositories: 2,
      manifests: 2,
      blobs: 6,
      storedBytes: a.manifest.size + b.manifest.size + a.config.size + b.config.size + shared.length + 1000 + 2000 + stray.size,
      logicalBytes: logicalA + logicalB,
      unreferencedBlobs: 1,
      unreferencedBytes: stray.size,
    });
    assert.deepEqual(
      repositories.map((r) => [r.repository, r.logicalBytes, r.uniqueBytes]),
      [
        ['usage/a', logicalA, logicalA - shared.length],
        ['usage/b', logicalB, logicalB - shared.length],
      ],
    );
  });

  it('answers 404 NAME_UNKNOWN for a repository it does not know', async () => {
    assertError(await request(t.app).get('/api/v1/usage/no/such'), 404, 'NAME_UNKNOWN');
  });
});
