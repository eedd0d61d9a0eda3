/** `/v2/<name>/manifests/<reference>`: PUT, GET, HEAD and DELETE by tag and by digest. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import {
  assertError,
  binaryParser,
  createTestApp,
  imageManifest,
  MEDIA,
  pushBlob,
  pushImage,
  pushManifest,
  sendChunked,
  sha256,
  type Descriptor,
  type TestApp,
} from '../helpers/app.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';

/** GET a manifest as raw bytes. */
function getManifest(t: TestApp, name: string, reference: string, accept?: string) {
  const req = request(t.app).get(`/v2/${name}/manifests/${reference}`);
  if (accept) req.set('Accept', accept);
  return req.buffer(true).parse(binaryParser);
}

for (const backend of METADATA_BACKENDS) describe(`manifests (${backend.name})`, { skip: backend.skip }, () => {
  let t: TestApp;
  let config: Descriptor;
  let layer: Descriptor;
  before(async () => {
    t = await createTestApp({ metadata: await backend.metadataConfig() });
    config = await pushBlob(t.app, 'library/app', JSON.stringify({ architecture: 'amd64', os: 'linux' }), MEDIA.ociConfig);
    layer = await pushBlob(t.app, 'library/app', 'layer bytes');
  });
  after(() => t.close());

  /** Sends the body as a string: superagent would JSON-encode a Buffer under a `+json` type. */
  function put(reference: string, body: string, contentType: string = MEDIA.ociManifest, name = 'library/app') {
    return request(t.app).put(`/v2/${name}/manifests/${reference}`).set('Content-Type', contentType).send(body);
  }

  describe('PUT', () => {
    it('by tag answers 201 with Location and Docker-Content-Digest', async () => {
      const body = JSON.stringify(imageManifest(config, [layer]));
      const digest = sha256(body);
      const res = await put('v1', body);
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/library/app/manifests/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers['oci-subject'], undefined);
    });

    it('by digest answers 201 with Location and Docker-Content-Digest', async () => {
      const body = JSON.stringify(imageManifest(config, [layer], { annotations: { by: 'digest' } }));
      const digest = sha256(body);
      const res = await put(digest, body);
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/library/app/manifests/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal((await getManifest(t, 'library/app', digest)).status, 200);
    });

    it('by a digest that does not match the body answers 400 DIGEST_INVALID', async () => {
      const body = JSON.stringify(imageManifest(config, [layer], { annotations: { mismatch: 'yes' } }));
      assertError(await put(sha256('other'), body), 400, 'DIGEST_INVALID');
      assertError(await getManifest(t, 'library/app', sha256(body)), 404, 'MANIFEST_UNKNOWN');
    });

    it('ignores parameters on the Content-Type', async () => {
      const body = JSON.stringify(imageManifest(config, [layer], { annotations: { params: 'yes' } }));
      assert.equal((await put('params', body, `${MEDIA.ociManifest}; charset=utf-8`)).status, 201);
      assert.equal((await getManifest(t, 'library/app', 'params')).headers['content-type'], MEDIA.ociManifest);
    });

    it('re-tagging the same manifest keeps one digest for both tags', async () => {
      const body = JSON.stringify(imageManifest(config, [layer], { annotations: { retag: 'yes' } }));
      assert.equal((await put('first', body)).status, 201);
      assert.equal((await put('second', body)).status, 201);
      const a = await getManifest(t, 'library/app', 'first');
      const b = await getManifest(t, 'library/app', 'second');
      assert.equal(a.headers['docker-content-digest'], sha256(body));
      assert.equal(b.headers['docker-content-digest'], sha256(body));
    });

    it('answers 400 MANIFEST_INVALID to a body that is not JSON', async () => {
      assertError(await put('broken', '{"schemaVersion": 2,'), 400, 'MANIFEST_INVALID');
    });

    it('answers 400 MANIFEST_INVALID to a schema 1 manifest', async () => {
      const body = JSON.stringify({ schemaVersion: 1, name: 'library/app', tag: 'old', fsLayers: [], history: [] });
      assertError(await put('old', body, 'application/vnd.docker.distribution.manifest.v1+prettyjws'), 400, 'MANIFEST_INVALID');
    });

    it('answers 400 MANIFEST_INVALID to an unknown media type', async () => {
      const body = JSON.stringify({ ...imageManifest(config, [layer]), mediaType: 'application/vnd.example.unknown+json' });
      assertError(await put('unknown', body, 'application/vnd.example.unknown+json'), 400, 'MANIFEST_INVALID');
    });

    it('answers 400 MANIFEST_INVALID when Content-Type and mediaType disagree', async () => {
      const body = JSON.stringify(imageManifest(config, [layer]));
      assertError(await put('disagree', body, MEDIA.ociIndex), 400, 'MANIFEST_INVALID');
    });

    it('answers 400 MANIFEST_BLOB_UNKNOWN to a manifest whose layer was never pushed', async () => {
      const missing = { mediaType: MEDIA.ociLayer, digest: sha256('missing layer'), size: 13 };
      assertError(await put('missing-layer', JSON.stringify(imageManifest(config, [missing]))), 400, 'MANIFEST_BLOB_UNKNOWN');
      assertError(await getManifest(t, 'library/app', 'missing-layer'), 404, 'MANIFEST_UNKNOWN');
    });

    it('answers 400 MANIFEST_BLOB_UNKNOWN when a layer is only in another repository', async () => {
      const elsewhere = await pushBlob(t.app, 'other/repo', 'layer of another repository');
      assertError(await put('foreign-layer', JSON.stringify(imageManifest(config, [elsewhere]))), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('accepts a layer with urls (non-distributable) that the registry does not hold', async () => {
      const foreign = { mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: sha256('far away'), size: 8, urls: ['https://example.com/layer'] };
      assert.equal((await put('with-urls', JSON.stringify(imageManifest(config, [layer, foreign])))).status, 201);
    });

    it('answers 400 MANIFEST_BLOB_UNKNOWN to an index whose child manifest is not in the repository', async () => {
      const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.ociManifest, digest: sha256('no child'), size: 10 }] };
      assertError(await put('orphan-index', JSON.stringify(index), MEDIA.ociIndex), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('answers 400 TAG_INVALID to an invalid tag', async () => {
      assertError(await put('-bad', JSON.stringify(imageManifest(config, [layer]))), 400, 'TAG_INVALID');
    });

    it('accepts a manifest of exactly the size limit', async () => {
      const limited = await createTestApp({ api: { maxManifestBytes: 2048 } });
      try {
        const cfg = await pushBlob(limited.app, 'small/repo', '{}', MEDIA.ociConfig);
        const skeleton = JSON.stringify(imageManifest(cfg, [], { annotations: { pad: '' } }));
        const body = JSON.stringify(imageManifest(cfg, [], { annotations: { pad: 'x'.repeat(2048 - skeleton.length) } }));
        assert.equal(body.length, 2048);
        const res = await request(limited.app).put('/v2/small/repo/manifests/edge').set('Content-Type', MEDIA.ociManifest).send(body);
        assert.equal(res.status, 201, res.text);
      } finally {
        await limited.close();
      }
    });

    it('answers 413 to a manifest of 4 MiB + 1 byte', async () => {
      const body = ' '.repeat(4 * 1024 * 1024 + 1);
      const res = await put('huge', body);
      assert.equal(res.status, 413);
      assert.ok(Array.isArray((res.body as { errors?: unknown }).errors));
    });

    it('answers 413 to an oversized manifest sent without Content-Length (chunked)', async () => {
      const limited = await createTestApp({ api: { maxManifestBytes: 1024 } });
      try {
        // 64 KiB in 16 chunks: far past the 1 KiB limit, and still bounded.
        const chunks = Array.from({ length: 16 }, () => Buffer.alloc(4096, 0x20));
        const res = await sendChunked(limited.app, { method: 'PUT', path: '/v2/small/repo/manifests/chunked', headers: { 'Content-Type': MEDIA.ociManifest } }, chunks);
        assert.equal(res.status, 413);
        assert.equal((JSON.parse(res.body) as { errors: Array<{ code: string }> }).errors[0]?.code, 'MANIFEST_INVALID');
      } finally {
        await limited.close();
      }
    });
  });

  describe('GET and HEAD', () => {
    let image: Awaited<ReturnType<typeof pushImage>>;
    before(async () => {
      image = await pushImage(t.app, 'pull/repo', 'latest');
    });

    it('returns the pushed bytes exactly, with the pushed Content-Type and digest headers', async () => {
      const res = await getManifest(t, 'pull/repo', 'latest');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], MEDIA.ociManifest);
      assert.equal(res.headers['docker-content-digest'], image.digest);
      assert.equal(res.headers['content-length'], String(image.size));
      assert.equal(res.headers['etag'], `"${image.digest}"`);
      assert.ok(image.body.equals(res.body as Buffer));
    });

    it('returns the same bytes by digest', async () => {
      const res = await getManifest(t, 'pull/repo', image.digest);
      assert.equal(res.status, 200);
      assert.ok(image.body.equals(res.body as Buffer));
    });

    it('keeps whitespace and key order exactly as pushed', async () => {
      const body = Buffer.from(`{\n  "schemaVersion": 2,\n  "layers": [],\n  "mediaType": "${MEDIA.ociManifest}",\n  "config": ${JSON.stringify(image.config)}\n}\n`);
      await pushManifest(t.app, 'pull/repo', 'pretty', body);
      const res = await getManifest(t, 'pull/repo', 'pretty');
      assert.ok(body.equals(res.body as Buffer));
      assert.equal(res.headers['docker-content-digest'], sha256(body));
    });

    it('answers HEAD with 200, the headers of GET and no body', async () => {
      const res = await request(t.app).head(`/v2/pull/repo/manifests/latest`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], MEDIA.ociManifest);
      assert.equal(res.headers['docker-content-digest'], image.digest);
      assert.equal(res.headers['content-length'], String(image.size));
    });

    it('answers HEAD for an unknown tag with 404 and no body', async () => {
      const res = await request(t.app).head('/v2/pull/repo/manifests/nope');
      assert.equal(res.status, 404);
      assert.equal(res.headers['content-type'], undefined, 'no error body is announced');
      assert.ok(!res.headers['content-length'] || res.headers['content-length'] === '0');
    });

    it('answers 404 MANIFEST_UNKNOWN for an unknown tag or digest', async () => {
      assertError(await getManifest(t, 'pull/repo', 'nope'), 404, 'MANIFEST_UNKNOWN');
      assertError(await getManifest(t, 'pull/repo', sha256('nope')), 404, 'MANIFEST_UNKNOWN');
    });

    it('answers 404 NAME_UNKNOWN for an unknown repository', async () => {
      assertError(await getManifest(t, 'no/such/repo', 'latest'), 404, 'NAME_UNKNOWN');
    });

    it('does not serve a manifest of another repository by digest', async () => {
      await pushImage(t.app, 'pull/other', 'x');
      assertError(await getManifest(t, 'pull/other', image.digest), 404, 'MANIFEST_UNKNOWN');
    });

    it('answers 304 to If-None-Match with the current ETag', async () => {
      const res = await request(t.app).get('/v2/pull/repo/manifests/latest').set('If-None-Match', `"${image.digest}"`);
      assert.equal(res.status, 304);
      assert.equal(res.text, '');
    });

    it('answers 304 when the current ETag is one of several in If-None-Match, weak or not, or to *', async () => {
      for (const header of [`"${sha256('old')}", "${image.digest}"`, `W/"${image.digest}"`, '*']) {
        const res = await request(t.app).get('/v2/pull/repo/manifests/latest').set('If-None-Match', header);
        assert.equal(res.status, 304, header);
      }
    });

    it('answers HEAD with 304 to If-None-Match with the current ETag', async () => {
      const res = await request(t.app).head('/v2/pull/repo/manifests/latest').set('If-None-Match', `"${image.digest}"`);
      assert.equal(res.status, 304);
    });

    it('answers 200 to If-None-Match with another ETag', async () => {
      const res = await request(t.app).get('/v2/pull/repo/manifests/latest').set('If-None-Match', `"${sha256('old')}"`);
      assert.equal(res.status, 200);
    });

    it('follows a tag moved to another manifest', async () => {
      const moved = await pushImage(t.app, 'pull/repo', 'moving', 'first');
      const again = await pushImage(t.app, 'pull/repo', 'moving', 'second');
      assert.notEqual(moved.digest, again.digest);
      const res = await getManifest(t, 'pull/repo', 'moving');
      assert.equal(res.headers['docker-content-digest'], again.digest);
    });
  });

  describe('Accept negotiation', () => {
    let index: Descriptor;
    before(async () => {
      const child = await pushImage(t.app, 'negotiate/repo', 'child');
      index = await pushManifest(
        t.app,
        'negotiate/repo',
        'multi',
        { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.ociManifest, digest: child.digest, size: child.size }] },
        MEDIA.ociIndex,
      );
    });

    it('serves an index to a client that accepts indexes', async () => {
      const res = await getManifest(t, 'negotiate/repo', 'multi', `${MEDIA.ociManifest}, ${MEDIA.ociIndex}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], MEDIA.ociIndex);
      assert.equal(res.headers['docker-content-digest'], index.digest);
    });

    it('answers 404 MANIFEST_UNKNOWN when the client accepts only image manifests', async () => {
      assertError(await getManifest(t, 'negotiate/repo', 'multi', MEDIA.ociManifest), 404, 'MANIFEST_UNKNOWN');
    });

    it('serves anything to a client with no Accept header or a wildcard', async () => {
      assert.equal((await getManifest(t, 'negotiate/repo', 'multi')).status, 200);
      assert.equal((await getManifest(t, 'negotiate/repo', 'multi', '*/*')).status, 200);
    });

    it('ignores parameters such as q in the Accept header', async () => {
      const res = await getManifest(t, 'negotiate/repo', 'multi', `${MEDIA.ociManifest};q=0.9, ${MEDIA.ociIndex};q=0.5`);
      assert.equal(res.status, 200);
    });
  });

  describe('Docker media types', () => {
    it('stores and serves a Docker schema 2 manifest and a manifest list with their own Content-Type', async () => {
      const cfg = await pushBlob(t.app, 'docker/repo', '{"architecture":"arm64","os":"linux"}', MEDIA.dockerConfig);
      const lyr = await pushBlob(t.app, 'docker/repo', 'docker layer', MEDIA.dockerLayer);
      const manifest = { schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: cfg, layers: [lyr] };
      const image = await pushManifest(t.app, 'docker/repo', 'image', manifest, MEDIA.dockerManifest);
      const list = {
        schemaVersion: 2,
        mediaType: MEDIA.dockerManifestList,
        manifests: [{ mediaType: MEDIA.dockerManifest, digest: image.digest, size: image.size, platform: { architecture: 'arm64', os: 'linux' } }],
      };
      const listed = await pushManifest(t.app, 'docker/repo', 'list', list, MEDIA.dockerManifestList);

      const gotImage = await getManifest(t, 'docker/repo', 'image', MEDIA.dockerManifest);
      assert.equal(gotImage.status, 200);
      assert.equal(gotImage.headers['content-type'], MEDIA.dockerManifest);
      const gotList = await getManifest(t, 'docker/repo', 'list', `${MEDIA.dockerManifest}, ${MEDIA.dockerManifestList}`);
      assert.equal(gotList.status, 200);
      assert.equal(gotList.headers['content-type'], MEDIA.dockerManifestList);
      assert.equal(gotList.headers['docker-content-digest'], listed.digest);
      assertError(await getManifest(t, 'docker/repo', 'list', MEDIA.dockerManifest), 404, 'MANIFEST_UNKNOWN');
    });
  });

  describe('DELETE', () => {
    it('by tag removes only the tag: 202, the manifest stays reachable by digest', async () => {
      const image = await pushImage(t.app, 'delete/tag', 'doomed');
      await pushManifest(t.app, 'delete/tag', 'kept', image.body);
      const res = await request(t.app).delete('/v2/delete/tag/manifests/doomed');
      assert.equal(res.status, 202);
      assertError(await getManifest(t, 'delete/tag', 'doomed'), 404, 'MANIFEST_UNKNOWN');
      assert.equal((await getManifest(t, 'delete/tag', image.digest)).status, 200);
      assert.equal((await getManifest(t, 'delete/tag', 'kept')).status, 200);
    });

    it('by digest removes the manifest and every tag pointing at it', async () => {
      const image = await pushImage(t.app, 'delete/digest', 'a');
      await pushManifest(t.app, 'delete/digest', 'b', image.body);
      const res = await request(t.app).delete(`/v2/delete/digest/manifests/${image.digest}`);
      assert.equal(res.status, 202);
      assertError(await getManifest(t, 'delete/digest', image.digest), 404, 'MANIFEST_UNKNOWN');
      assertError(await getManifest(t, 'delete/digest', 'a'), 404, 'MANIFEST_UNKNOWN');
      assertError(await getManifest(t, 'delete/digest', 'b'), 404, 'MANIFEST_UNKNOWN');
      const tags = await request(t.app).get('/v2/delete/digest/tags/list');
      assert.deepEqual((tags.body as { tags: string[] }).tags, []);
    });

    it('answers 404 MANIFEST_UNKNOWN for an unknown tag or digest', async () => {
      await pushImage(t.app, 'delete/unknown', 'present');
      assertError(await request(t.app).delete('/v2/delete/unknown/manifests/absent'), 404, 'MANIFEST_UNKNOWN');
      assertError(await request(t.app).delete(`/v2/delete/unknown/manifests/${sha256('absent')}`), 404, 'MANIFEST_UNKNOWN');
    });

    it('answers 404 NAME_UNKNOWN for an unknown repository', async () => {
      assertError(await request(t.app).delete(`/v2/delete/nowhere/manifests/${sha256('x')}`), 404, 'NAME_UNKNOWN');
    });
  });
});

describe('manifests with deleteEnabled false', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ storage: { deleteEnabled: false } });
  });
  after(() => t.close());

  it('answers DELETE by tag and by digest with 405 UNSUPPORTED and keeps the manifest', async () => {
    const image = await pushImage(t.app, 'kept/repo', 'latest');
    assertError(await request(t.app).delete('/v2/kept/repo/manifests/latest'), 405, 'UNSUPPORTED');
    assertError(await request(t.app).delete(`/v2/kept/repo/manifests/${image.digest}`), 405, 'UNSUPPORTED');
    assert.equal((await getManifest(t, 'kept/repo', 'latest')).status, 200);
  });
});
