/**
 * Promises no test pinned before (issue 16.15): garbage collection keeps a layer that two live
 * images share, and a push that adds nothing to a repository already over its quota passes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import { assemble } from '../../src/server.js';
import { imageManifest, MEDIA, pushBlob, pushManifest, sha256 } from '../helpers/app.js';
import { assertPulls, blobFile, createLifecycleApp, exists } from './helpers.js';

describe('garbage collection and quotas with live content', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  it('keeps a layer shared by two live images while it collects what neither uses', async () => {
    const t = await createLifecycleApp();
    cleanups.push(() => t.close());
    const shared = await pushBlob(t.app, 'gc/one', 'a layer both images use');
    await pushBlob(t.app, 'gc/two', 'a layer both images use');
    const images = [];
    for (const name of ['gc/one', 'gc/two']) {
      const config = await pushBlob(t.app, name, JSON.stringify({ os: 'linux', architecture: 'amd64', name }), MEDIA.ociConfig);
      const own = await pushBlob(t.app, name, `a layer only ${name} uses`);
      images.push(await pushManifest(t.app, name, 'live', imageManifest(config, [shared, own])));
    }
    // Garbage beside them: an image of gc/one deleted, whose own layer nothing else uses.
    const goneConfig = await pushBlob(t.app, 'gc/one', JSON.stringify({ gone: true }), MEDIA.ociConfig);
    const gone = await pushBlob(t.app, 'gc/one', 'a layer of a deleted image');
    const deleted = await pushManifest(t.app, 'gc/one', 'old', imageManifest(goneConfig, [shared, gone]));
    assert.equal((await request(t.app).delete(`/v2/gc/one/manifests/${deleted.digest}`)).status, 202);

    await t.assembled.lifecycle.gc.run({ gracePeriodSeconds: 0 });
    assert.equal(await exists(blobFile(t.root, gone.digest)), false, 'the deleted image’s own layer is collected');
    assert.equal(await exists(blobFile(t.root, shared.digest)), true, 'the shared layer stays');
    for (const name of ['gc/one', 'gc/two']) assert.ok((await assertPulls(t.app, name, 'live')).includes(shared.digest), `${name}:live pulls whole`);
  });

  it('a push that adds nothing passes in a repository already over its quota', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-quota-'));
    cleanups.push(() => fs.rm(root, { recursive: true, force: true }));
    const settings = (lifecycle: object) => validateConfig({ storage: { root }, auth: { mode: 'none' }, log: { level: 'silent' }, lifecycle });
    // Content pushed before the quota existed (or before it was lowered).
    const before = await assemble(settings({}));
    const config = await pushBlob(before.app, 'quota/app', JSON.stringify({ os: 'linux', architecture: 'amd64' }), MEDIA.ociConfig);
    const layer = await pushBlob(before.app, 'quota/app', Buffer.alloc(4096, 3));
    const manifest = imageManifest(config, [layer]);
    await pushManifest(before.app, 'quota/app', 'v1', manifest);
    await before.close();

    const limited = await assemble(settings({ quotas: [{ name: 'tiny', repositories: ['quota/*'], maxBytes: '1KiB' }] }));
    cleanups.push(() => limited.close());
    const usage = (await request(limited.app).get('/api/v1/usage/quota/app')).body as { logicalBytes: number };
    assert.ok(usage.logicalBytes > 1024, 'the repository is over its quota');
    const body = JSON.stringify(manifest);
    const retag = await request(limited.app).put('/v2/quota/app/manifests/v1-again').set('Content-Type', MEDIA.ociManifest).send(body);
    assert.equal(retag.status, 201, `a new tag for stored content adds nothing: ${retag.text}`);
    const repush = await request(limited.app).put('/v2/quota/app/manifests/v1').set('Content-Type', MEDIA.ociManifest).send(body);
    assert.equal(repush.status, 201, 'the same push again');
    assert.equal((await request(limited.app).head(`/v2/quota/app/blobs/${layer.digest}`)).status, 200);
    const bigger = Buffer.alloc(10, 9);
    const adds = await request(limited.app).post(`/v2/quota/app/blobs/uploads/?digest=${sha256(bigger)}`).send(bigger);
    assert.equal(adds.status, 403, 'while anything that adds is refused');
  });
});
