/**
 * Deletion: a manifest by digest (with its tags), a tag alone (spec 1.1), a blob link; a child
 * manifest an index of the repository still lists is refused unless forced; and everything
 * answers 405 UNSUPPORTED when deletion is turned off.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { assertError, createTestApp, MEDIA, pushBlob, pushImage, pushManifest, type TestApp } from '../helpers/app.js';

describe('deletion', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it('DELETE by tag removes the tag alone; the manifest stays reachable by digest', async () => {
    const image = await pushImage(t.app, 'del/tag', 'v1');
    await pushManifest(t.app, 'del/tag', 'also', image.body);
    assert.equal((await request(t.app).delete('/v2/del/tag/manifests/v1')).status, 202);
    assertError(await request(t.app).get('/v2/del/tag/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await request(t.app).get(`/v2/del/tag/manifests/${image.digest}`)).status, 200);
    assert.equal((await request(t.app).get('/v2/del/tag/manifests/also')).status, 200);
    assert.deepEqual((await request(t.app).get('/v2/del/tag/tags/list')).body.tags, ['also']);
  });

  it('DELETE by digest removes the manifest with every tag pointing at it', async () => {
    const image = await pushImage(t.app, 'del/digest', 'v1');
    await pushManifest(t.app, 'del/digest', 'v1-alias', image.body);
    assert.equal((await request(t.app).delete(`/v2/del/digest/manifests/${image.digest}`)).status, 202);
    for (const reference of ['v1', 'v1-alias', image.digest]) {
      assertError(await request(t.app).get(`/v2/del/digest/manifests/${reference}`), 404, 'MANIFEST_UNKNOWN');
    }
    assertError(await request(t.app).delete(`/v2/del/digest/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  it('refuses to delete a manifest an index of the repository lists (409 MANIFEST_REFERENCED) unless ?force=true', async () => {
    const amd64 = await pushImage(t.app, 'del/index', 'amd64');
    const arm64 = await pushImage(t.app, 'del/index', 'arm64');
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [
        { mediaType: MEDIA.ociManifest, digest: amd64.digest, size: amd64.size, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: MEDIA.ociManifest, digest: arm64.digest, size: arm64.size, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    };
    const pushed = await pushManifest(t.app, 'del/index', 'multi', index, MEDIA.ociIndex);

    const refused = await request(t.app).delete(`/v2/del/index/manifests/${amd64.digest}`);
    assertError(refused, 409, 'MANIFEST_REFERENCED');
    assert.equal(
      refused.body.errors[0].message,
      `manifest ${amd64.digest} is listed by index ${pushed.digest} in del/index; delete the index first, or delete with ?force=true to leave the index without it`,
    );
    assert.deepEqual(refused.body.errors[0].detail, { digest: amd64.digest, indexes: [pushed.digest] });
    assert.equal((await request(t.app).get(`/v2/del/index/manifests/${amd64.digest}`)).status, 200, 'a refused delete removed the manifest');
    assert.equal((await request(t.app).get('/v2/del/index/manifests/amd64')).status, 200, 'a refused delete removed the tag');
    // The tag alone may go: the index still finds its child by digest.
    assert.equal((await request(t.app).delete('/v2/del/index/manifests/amd64')).status, 202);

    assert.equal((await request(t.app).delete(`/v2/del/index/manifests/${amd64.digest}?force=true`)).status, 202);
    assertError(await request(t.app).get(`/v2/del/index/manifests/${amd64.digest}`), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await request(t.app).get('/v2/del/index/manifests/multi')).status, 200);

    // Once the index is gone, its children may be deleted without force.
    assert.equal((await request(t.app).delete(`/v2/del/index/manifests/${pushed.digest}`)).status, 202);
    assert.equal((await request(t.app).delete(`/v2/del/index/manifests/${arm64.digest}`)).status, 202);
  });

  it('names every index listing the manifest in the message (clients that only know the spec codes show just the message)', async () => {
    const child = await pushImage(t.app, 'del/indexes', 'child');
    const indexes: string[] = [];
    for (const n of [1, 2, 3, 4, 5]) {
      const index = {
        schemaVersion: 2,
        mediaType: MEDIA.ociIndex,
        manifests: [{ mediaType: MEDIA.ociManifest, digest: child.digest, size: child.size }],
        annotations: { n: String(n) },
      };
      indexes.push((await pushManifest(t.app, 'del/indexes', `index-${n}`, index, MEDIA.ociIndex)).digest);
    }
    const refused = await request(t.app).delete(`/v2/del/indexes/manifests/${child.digest}`);
    assertError(refused, 409, 'MANIFEST_REFERENCED');
    const { message, detail } = refused.body.errors[0] as { message: string; detail: { indexes: string[] } };
    assert.equal(
      message,
      `manifest ${child.digest} is listed by 5 indexes (${detail.indexes.slice(0, 3).join(', ')} and 2 more) in del/indexes; ` +
        'delete those indexes first, or delete with ?force=true to leave those indexes without it',
    );
    assert.deepEqual([...detail.indexes].sort(), [...indexes].sort());
  });

  it('an index in another repository does not hold a manifest back', async () => {
    const image = await pushImage(t.app, 'del/elsewhere', 'v1');
    // The same image (same seed, same bytes) in another repository, listed by an index there.
    assert.equal((await pushImage(t.app, 'del/other', 'v1')).digest, image.digest);
    const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.ociManifest, digest: image.digest, size: image.size }] };
    await pushManifest(t.app, 'del/other', 'multi', index, MEDIA.ociIndex);
    assert.equal((await request(t.app).delete(`/v2/del/elsewhere/manifests/${image.digest}`)).status, 202);
    assert.equal((await request(t.app).get('/v2/del/other/manifests/multi')).status, 200);
  });

  it('DELETE of a blob removes the link from that repository only', async () => {
    const shared = await pushBlob(t.app, 'del/blob-a', 'a blob in two repositories');
    await pushBlob(t.app, 'del/blob-b', 'a blob in two repositories');
    const res = await request(t.app).delete(`/v2/del/blob-a/blobs/${shared.digest}`);
    assert.equal(res.status, 202);
    assert.equal(res.headers['docker-content-digest'], shared.digest);
    assertError(await request(t.app).get(`/v2/del/blob-a/blobs/${shared.digest}`), 404, 'BLOB_UNKNOWN');
    assert.equal((await request(t.app).get(`/v2/del/blob-b/blobs/${shared.digest}`)).status, 200);
  });
});

describe('deletion turned off (storage.deleteEnabled: false)', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ storage: { deleteEnabled: false } });
  });
  after(() => t.close());

  it('answers 405 UNSUPPORTED to DELETE of a manifest, a tag and a blob, and deletes nothing', async () => {
    const image = await pushImage(t.app, 'nodel/app', 'v1');
    for (const path of [`/v2/nodel/app/manifests/${image.digest}`, '/v2/nodel/app/manifests/v1', `/v2/nodel/app/blobs/${image.layer.digest}`]) {
      assertError(await request(t.app).delete(path), 405, 'UNSUPPORTED');
    }
    assert.equal((await request(t.app).get('/v2/nodel/app/manifests/v1')).status, 200);
    assert.equal((await request(t.app).get(`/v2/nodel/app/blobs/${image.layer.digest}`)).status, 200);
  });
});
