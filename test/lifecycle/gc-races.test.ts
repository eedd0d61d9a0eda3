/**
 * Garbage collection against concurrent pushes. Interleavings are forced at the point that
 * matters, between a collection marking blobs and deleting their files (GcHooks.afterMark):
 * a manifest push then fails cleanly, a HEAD or mount does not bring the blob back, and an
 * upload of the same content waits and wins. Then a collection runs in a loop while pushes of
 * images sharing layers continue, and every tagged image must still pull whole.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import type { GcHooks } from '../../src/registry/gc.js';
import type { BlobRecord } from '../../src/registry/lifecycle-store.js';
import { createLifecycle, type Lifecycle } from '../../src/registry/lifecycle.js';
import type { MetadataStore } from '../../src/registry/ports.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';
import { imageManifest, MEDIA, pushBlob, pushManifest, sha256, type App, type Descriptor } from '../helpers/app.js';
import { assertPulls, blobFile, blobFiles, createLifecycleApp, exists, type LifecycleTestApp } from './helpers.js';

/** A lifecycle over the test app's stores whose collections call `afterMark` between mark and delete. */
function lifecycleWithHook(t: LifecycleTestApp, afterMark: (blobs: BlobRecord[]) => Promise<void>): Lifecycle {
  const hooks: GcHooks = { afterMark };
  return createLifecycle(t.assembled.registry, t.assembled.backend.lifecycle, t.assembled.lifecycle.settings, { hooks });
}

function uploadWhole(app: App, name: string, bytes: Buffer) {
  return request(app).post(`/v2/${name}/blobs/uploads/?digest=${sha256(bytes)}`).set('Content-Type', 'application/octet-stream').send(bytes);
}

for (const backend of METADATA_BACKENDS) describe(`garbage collection with concurrent pushes (${backend.name})`, { skip: backend.skip }, () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp({ metadata: await backend.metadataConfig() });
  });
  after(() => t.close());

  it('a manifest push referencing a blob the collection marked fails cleanly; pushing the blob again then succeeds', async () => {
    const config = await pushBlob(t.app, 'race/manifest', JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'race' }), MEDIA.ociConfig);
    const layer = await pushBlob(t.app, 'race/manifest', 'a layer the collection is deleting');
    const manifest = JSON.stringify(imageManifest(config, [layer]));
    let during: request.Response | undefined;
    const lifecycle = lifecycleWithHook(t, async (marked) => {
      if (!marked.some((blob) => blob.digest === layer.digest)) return;
      during = await request(t.app).put('/v2/race/manifest/manifests/v1').set('Content-Type', MEDIA.ociManifest).send(manifest);
    });
    const report = await lifecycle.gc.run({ gracePeriodSeconds: 0 });
    assert.ok(during, 'the collection never marked the layer');
    assert.equal(during.status, 400, `the push during the collection answered ${during.status} ${during.text}`);
    assert.equal(during.body.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
    assert.ok(report.blobsDeleted.items.some((blob) => blob.digest === layer.digest));
    assert.equal(await exists(blobFile(t.root, layer.digest)), false);
    assert.equal((await request(t.app).get('/v2/race/manifest/manifests/v1')).status, 404);

    // What a client does next: upload the blobs again, then the manifest.
    await pushBlob(t.app, 'race/manifest', JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'race' }), MEDIA.ociConfig);
    await pushBlob(t.app, 'race/manifest', 'a layer the collection is deleting');
    await pushManifest(t.app, 'race/manifest', 'v1', Buffer.from(manifest));
    await assertPulls(t.app, 'race/manifest', 'v1');
  });

  it('the push re-checks its references in the transaction that records it: a collection after the early check makes it fail cleanly', async () => {
    const config = await pushBlob(t.app, 'race/late', JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'late' }), MEDIA.ociConfig);
    const layer = await pushBlob(t.app, 'race/late', 'a layer collected between check and commit');
    const metadata = t.assembled.registry.metadata as MetadataStore;
    const original = metadata.missingBlobs.bind(metadata);
    let collectedBetween = false;
    // The early check answers "all present", then a collection runs before the push commits.
    metadata.missingBlobs = async (repository: string, digests: string[]) => {
      const missing = await original(repository, digests);
      if (repository === 'race/late' && !collectedBetween) {
        collectedBetween = (await t.assembled.lifecycle.gc.run({ gracePeriodSeconds: 0 })).blobsDeleted.items.some((b) => b.digest === layer.digest);
      }
      return missing;
    };
    let res: request.Response;
    try {
      res = await request(t.app).put('/v2/race/late/manifests/v1').set('Content-Type', MEDIA.ociManifest).send(JSON.stringify(imageManifest(config, [layer])));
    } finally {
      metadata.missingBlobs = original;
    }
    assert.ok(collectedBetween, 'the collection did not delete the layer between check and commit');
    assert.equal(res.status, 400, `the push answered ${res.status} ${res.text}`);
    assert.equal(res.body.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal((await request(t.app).get('/v2/race/late/manifests/v1')).status, 404);
  });

  it('a HEAD or mount in another repository does not bring back a blob being deleted', async () => {
    const layer = await pushBlob(t.app, 'race/source', 'a layer nobody references');
    let head: number | undefined;
    let mount: request.Response | undefined;
    let claimDuringMark: string | null | undefined;
    const lifecycle = lifecycleWithHook(t, async (marked) => {
      if (!marked.some((blob) => blob.digest === layer.digest)) return;
      head = (await request(t.app).head(`/v2/race/target/blobs/${layer.digest}`)).status;
      mount = await request(t.app).post(`/v2/race/target/blobs/uploads/?mount=${layer.digest}&from=race/source`);
      claimDuringMark = await t.assembled.registry.metadata.claimBlob(layer.digest);
    });
    await lifecycle.gc.run({ gracePeriodSeconds: 0 });
    assert.equal(head, 404, 'HEAD linked a blob that was being deleted');
    assert.equal(mount?.status, 202, 'the mount should fall back to an upload session');
    assert.equal(claimDuringMark, null, 'a claim was granted on a blob being deleted');
    assert.equal(await t.assembled.registry.metadata.getBlob(layer.digest), null, 'the record came back');
    assert.equal(await exists(blobFile(t.root, layer.digest)), false);
    for (const name of ['race/source', 'race/target']) {
      assert.equal((await request(t.app).head(`/v2/${name}/blobs/${layer.digest}`)).status, 404);
    }
  });

  it('an upload of a blob being deleted waits for the deletion and wins', async () => {
    const bytes = Buffer.from('content uploaded again while the collection deletes it');
    await uploadWhole(t.app, 'race/upload', bytes).expect(201);
    const metadata = t.assembled.registry.metadata as MetadataStore;
    // Instrument claims: which ones the upload asked for, and what it got.
    const claims: Array<string | null> = [];
    const original = metadata.claimBlob.bind(metadata);
    metadata.claimBlob = async (digest: string) => {
      const claim = await original(digest);
      if (digest === sha256(bytes)) claims.push(claim);
      return claim;
    };
    let upload: Promise<request.Response> | undefined;
    try {
      const lifecycle = lifecycleWithHook(t, async (marked) => {
        if (!marked.some((blob) => blob.digest === sha256(bytes))) return;
        upload = uploadWhole(t.app, 'race/other', bytes).then((res) => res);
        // Hold the deletion until the upload has been refused a claim at least once.
        for (let i = 0; i < 500 && !claims.includes(null); i++) await sleep(5);
      });
      await lifecycle.gc.run({ gracePeriodSeconds: 0 });
      assert.ok(upload, 'the collection never marked the blob');
      const res = await upload;
      assert.equal(res.status, 201, `the upload answered ${res.status} ${res.text}`);
    } finally {
      metadata.claimBlob = original;
    }
    assert.equal(claims[0], null, 'the upload was not made to wait');
    assert.equal(typeof claims.at(-1), 'string', 'the upload never got its claim');
    assert.equal(await exists(blobFile(t.root, sha256(bytes))), true, 'the re-uploaded content is missing');
    const served = await request(t.app).get(`/v2/race/other/blobs/${sha256(bytes)}`);
    assert.equal(served.status, 200);
    assert.equal(sha256(Buffer.from(served.body as Buffer)), sha256(bytes));
  });

  it('a manifest push racing a collection either wins (blob kept) or fails cleanly, never succeeds with a missing blob', async () => {
    for (let round = 0; round < 15; round++) {
      const name = `race/round-${round}`;
      const config = await pushBlob(t.app, name, JSON.stringify({ architecture: 'amd64', os: 'linux', round }), MEDIA.ociConfig);
      const layer = await pushBlob(t.app, name, `layer of round ${round}`);
      const [push, report] = await Promise.all([
        request(t.app).put(`/v2/${name}/manifests/v1`).set('Content-Type', MEDIA.ociManifest).send(JSON.stringify(imageManifest(config, [layer]))),
        t.assembled.lifecycle.gc.run({ gracePeriodSeconds: 0 }),
      ]);
      const collected = report.blobsDeleted.items.some((blob) => blob.digest === layer.digest);
      if (push.status === 201) {
        assert.equal(collected, false, `round ${round}: the push succeeded and its layer was collected`);
        await assertPulls(t.app, name, 'v1');
      } else {
        assert.equal(push.status, 400, `round ${round}: ${push.status} ${push.text}`);
        assert.equal(push.body.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
        assert.equal((await request(t.app).get(`/v2/${name}/manifests/v1`)).status, 404);
      }
    }
  });

  it('a collection in a loop while pushes of images sharing layers continue: every tagged image pulls whole, nothing unreferenced remains', async () => {
    const name = 'race/loop';
    const base = Buffer.from('base layer shared by every image '.repeat(64));
    const runtime = Buffer.from('runtime layer shared by every image '.repeat(32));
    const pushed: string[] = [];
    const failures: string[] = [];

    /**
     * Pushes image i as a client does, starting over (blobs, then manifest) when the manifest is
     * refused. Each collection can refuse at most one attempt, so 12 attempts outlast 10 collections.
     */
    const pushImage = async (i: number) => {
      for (let attempt = 0; attempt < 12; attempt++) {
        const blobs: Descriptor[] = [];
        for (const bytes of [base, runtime, Buffer.from(`app layer of image ${i}`)]) {
          const res = await uploadWhole(t.app, name, bytes);
          if (res.status !== 201) {
            failures.push(`image ${i}: blob upload ${res.status} ${res.text}`);
            return;
          }
          blobs.push({ mediaType: MEDIA.ociLayer, digest: sha256(bytes), size: bytes.length });
        }
        const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', image: i }));
        const config = await uploadWhole(t.app, name, configBytes);
        if (config.status !== 201) {
          failures.push(`image ${i}: config upload ${config.status}`);
          return;
        }
        const body = JSON.stringify(imageManifest({ mediaType: MEDIA.ociConfig, digest: sha256(configBytes), size: configBytes.length }, blobs));
        const res = await request(t.app).put(`/v2/${name}/manifests/v${i}`).set('Content-Type', MEDIA.ociManifest).send(body);
        if (res.status === 201) {
          pushed.push(`v${i}`);
          return;
        }
        if (res.status !== 400 || res.body.errors?.[0]?.code !== 'MANIFEST_BLOB_UNKNOWN') {
          failures.push(`image ${i}: manifest ${res.status} ${res.text}`);
          return;
        }
      }
      failures.push(`image ${i}: refused 12 times`);
    };

    const pushes = (async () => {
      for (let i = 0; i < 10; i++) await pushImage(i);
    })();
    const collections = (async () => {
      let runs = 0;
      for (let i = 0; i < 10; i++) {
        await t.assembled.lifecycle.gc.run({ gracePeriodSeconds: 0 });
        runs++;
      }
      return runs;
    })();
    const [, runs] = await Promise.all([pushes, collections]);
    assert.equal(runs, 10);
    assert.deepEqual(failures, []);
    assert.equal(pushed.length, 10);

    // Every image that was acknowledged pulls whole.
    const referenced = new Set<string>();
    const tags = (await request(t.app).get(`/v2/${name}/tags/list`)).body.tags as string[];
    assert.deepEqual([...tags].sort(), [...pushed].sort());
    for (const tag of tags) for (const digest of await assertPulls(t.app, name, tag)) referenced.add(digest);

    // Once pushes stop, one more collection leaves exactly what the tagged images of every repository use.
    await t.assembled.lifecycle.gc.run({ gracePeriodSeconds: 0 });
    const everything = new Set(referenced);
    for (const repository of (await request(t.app).get('/v2/_catalog')).body.repositories as string[]) {
      const listed = await request(t.app).get(`/v2/${repository}/tags/list`);
      for (const tag of (listed.body.tags as string[] | null) ?? []) for (const digest of await assertPulls(t.app, repository, tag)) everything.add(digest);
    }
    assert.deepEqual(await blobFiles(t.root), [...everything].sort(), 'blob files on disk differ from what tagged images use');
    const fsck = await t.assembled.lifecycle.fsck.run();
    assert.deepEqual(fsck.findings, []);
  });
});
