/** Manifests with a `subject`: the `OCI-Subject` header and `GET /v2/<name>/referrers/<digest>`. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import {
  assertError,
  createTestApp,
  MEDIA,
  pushBlob,
  pushImage,
  pushManifest,
  sha256,
  type Descriptor,
  type TestApp,
} from '../helpers/app.js';

const SBOM = 'application/vnd.example.sbom.v1';
const SIGNATURE = 'application/vnd.example.signature.v1';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

interface Index {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

describe('referrers', () => {
  let t: TestApp;
  let subject: Descriptor;
  let emptyConfig: Descriptor;
  let layer: Descriptor;
  before(async () => {
    t = await createTestApp();
    subject = await pushImage(t.app, 'ref/repo', 'latest');
    emptyConfig = await pushBlob(t.app, 'ref/repo', '{}', EMPTY_CONFIG);
    layer = await pushBlob(t.app, 'ref/repo', 'sbom contents');
  });
  after(() => t.close());

  function subjectOf(d: Descriptor) {
    return { mediaType: d.mediaType, digest: d.digest, size: d.size };
  }

  async function referrers(digest: string, query = ''): Promise<request.Response> {
    return request(t.app).get(`/v2/ref/repo/referrers/${digest}${query}`);
  }

  it('answers a manifest pushed with a subject with the OCI-Subject header', async () => {
    const artifact = { schemaVersion: 2, mediaType: MEDIA.ociManifest, artifactType: SBOM, config: emptyConfig, layers: [layer], subject: subjectOf(subject) };
    const res = await request(t.app)
      .put('/v2/ref/repo/manifests/' + sha256(JSON.stringify(artifact)))
      .set('Content-Type', MEDIA.ociManifest)
      .send(JSON.stringify(artifact));
    assert.equal(res.status, 201);
    assert.equal(res.headers['oci-subject'], subject.digest);
  });

  it('accepts a manifest whose subject the registry does not hold', async () => {
    const ghost = { mediaType: MEDIA.ociManifest, digest: sha256('ghost subject'), size: 12 };
    const artifact = { schemaVersion: 2, mediaType: MEDIA.ociManifest, artifactType: SBOM, config: emptyConfig, layers: [], subject: ghost };
    const pushed = await pushManifest(t.app, 'ref/repo', sha256(JSON.stringify(artifact)), artifact);
    const res = await referrers(ghost.digest);
    assert.deepEqual((res.body as Index).manifests.map((m) => m.digest), [pushed.digest]);
  });

  describe('listing', () => {
    let sbom: Descriptor;
    let signature: Descriptor;
    let index: Descriptor;
    let target: Descriptor;
    before(async () => {
      target = await pushImage(t.app, 'ref/repo', 'target');
      const sbomManifest = {
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        artifactType: SBOM,
        config: emptyConfig,
        layers: [layer],
        subject: subjectOf(target),
        annotations: { 'org.example.sbom.format': 'json', 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
      };
      sbom = await pushManifest(t.app, 'ref/repo', sha256(JSON.stringify(sbomManifest)), sbomManifest);
      // No artifactType: the config's media type stands in for it.
      const sigConfig = await pushBlob(t.app, 'ref/repo', '{"sig":true}', SIGNATURE);
      const sigManifest = { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: sigConfig, layers: [], subject: subjectOf(target) };
      signature = await pushManifest(t.app, 'ref/repo', 'signature-tag', sigManifest);
      // An index without artifactType: none is reported.
      const indexManifest = {
        schemaVersion: 2,
        mediaType: MEDIA.ociIndex,
        manifests: [{ mediaType: MEDIA.ociManifest, digest: target.digest, size: target.size }],
        subject: subjectOf(target),
        annotations: { kind: 'index' },
      };
      index = await pushManifest(t.app, 'ref/repo', sha256(JSON.stringify(indexManifest)), indexManifest, MEDIA.ociIndex);
    });

    it('answers 200 with an OCI image index of every referrer', async () => {
      const res = await referrers(target.digest);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], MEDIA.ociIndex);
      assert.equal(res.headers['oci-filters-applied'], undefined);
      const body = JSON.parse(res.text) as Index;
      assert.equal(body.schemaVersion, 2);
      assert.equal(body.mediaType, MEDIA.ociIndex);
      const byDigest = new Map(body.manifests.map((m) => [m.digest, m]));
      assert.deepEqual([...byDigest.keys()].sort(), [sbom.digest, signature.digest, index.digest].sort());
      assert.deepEqual(byDigest.get(sbom.digest), {
        mediaType: MEDIA.ociManifest,
        digest: sbom.digest,
        size: sbom.size,
        artifactType: SBOM,
        annotations: { 'org.example.sbom.format': 'json', 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
      });
      assert.deepEqual(byDigest.get(signature.digest), {
        mediaType: MEDIA.ociManifest,
        digest: signature.digest,
        size: signature.size,
        artifactType: SIGNATURE,
      });
      assert.deepEqual(byDigest.get(index.digest), {
        mediaType: MEDIA.ociIndex,
        digest: index.digest,
        size: index.size,
        annotations: { kind: 'index' },
      });
    });

    it('filters by artifactType and says so in OCI-Filters-Applied', async () => {
      const res = await referrers(target.digest, `?artifactType=${encodeURIComponent(SIGNATURE)}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['oci-filters-applied'], 'artifactType');
      assert.deepEqual((JSON.parse(res.text) as Index).manifests.map((m) => m.digest), [signature.digest]);
    });

    it('answers an artifactType nothing has with an empty index and the filter header', async () => {
      const res = await referrers(target.digest, '?artifactType=application%2Fvnd.example.none');
      assert.equal(res.status, 200);
      assert.equal(res.headers['oci-filters-applied'], 'artifactType');
      assert.deepEqual((JSON.parse(res.text) as Index).manifests, []);
    });

    it('drops a referrer once its manifest is deleted', async () => {
      assert.equal((await request(t.app).delete(`/v2/ref/repo/manifests/${signature.digest}`)).status, 202);
      const res = await referrers(target.digest);
      const digests = (JSON.parse(res.text) as Index).manifests.map((m) => m.digest);
      assert.ok(!digests.includes(signature.digest));
      assert.ok(digests.includes(sbom.digest));
    });

    it('lists only referrers pushed to the same repository', async () => {
      const res = await request(t.app).get(`/v2/ref/elsewhere/referrers/${target.digest}`);
      assert.equal(res.status, 200);
      assert.deepEqual((JSON.parse(res.text) as Index).manifests, []);
    });
  });

  it("treats an empty artifactType as absent and reports the config's media type", async () => {
    const target = await pushImage(t.app, 'ref/repo', 'empty-artifact-type');
    const sigConfig = await pushBlob(t.app, 'ref/repo', '{"empty":true}', SIGNATURE);
    const artifact = { schemaVersion: 2, mediaType: MEDIA.ociManifest, artifactType: '', config: sigConfig, layers: [], subject: subjectOf(target) };
    const pushed = await pushManifest(t.app, 'ref/repo', sha256(JSON.stringify(artifact)), artifact);
    const res = await referrers(target.digest, `?artifactType=${encodeURIComponent(SIGNATURE)}`);
    assert.deepEqual((JSON.parse(res.text) as Index).manifests, [
      { mediaType: MEDIA.ociManifest, digest: pushed.digest, size: pushed.size, artifactType: SIGNATURE },
    ]);
  });

  it('lists a referrer pushed by tag as well as by digest', async () => {
    const target = await pushImage(t.app, 'ref/repo', 'tagged-referrer-target');
    const artifact = { schemaVersion: 2, mediaType: MEDIA.ociManifest, artifactType: SBOM, config: emptyConfig, layers: [], subject: subjectOf(target) };
    const pushed = await pushManifest(t.app, 'ref/repo', 'sbom-tag', artifact);
    const res = await referrers(target.digest);
    assert.deepEqual((JSON.parse(res.text) as Index).manifests.map((m) => m.digest), [pushed.digest]);
  });

  it('answers 200 with an empty index for a manifest without referrers', async () => {
    const lonely = await pushImage(t.app, 'ref/repo', 'lonely');
    const res = await referrers(lonely.digest);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], MEDIA.ociIndex);
    assert.deepEqual(JSON.parse(res.text), { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] });
  });

  it('answers 200 with an empty index for an unknown repository (never 404)', async () => {
    const res = await request(t.app).get(`/v2/ref/unknown/referrers/${subject.digest}`);
    assert.equal(res.status, 200);
    assert.deepEqual((JSON.parse(res.text) as Index).manifests, []);
  });

  it('answers 400 DIGEST_INVALID for a malformed digest', async () => {
    assertError(await referrers('sha256:not-hex'), 400, 'DIGEST_INVALID');
    assertError(await referrers('latest'), 400, 'DIGEST_INVALID');
  });
});
