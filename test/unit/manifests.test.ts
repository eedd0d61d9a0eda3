/** parseManifest: what a pushed manifest must look like, and what the registry records about it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRegistryError } from '../../src/registry/errors.js';
import { parseManifest } from '../../src/registry/manifests.js';
import { MEDIA_TYPES } from '../../src/registry/media-types.js';

const d = (seed: string) => `sha256:${seed.repeat(64).slice(0, 64)}`;
const CONFIG = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('c'), size: 10 };
const LAYER = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('1'), size: 20 };
const DIGEST = d('f');

function parse(json: unknown, contentType?: string) {
  return parseManifest(Buffer.from(JSON.stringify(json)), contentType, DIGEST);
}

function invalid(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isRegistryError(error), `expected a RegistryError, got ${String(error)}`);
    assert.equal(error.code, 'MANIFEST_INVALID');
    assert.equal(error.status, 400);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('parseManifest', () => {
  it('records an OCI image manifest with its config and layers as blob references', () => {
    const body = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [LAYER] };
    const parsed = parse(body, MEDIA_TYPES.ociManifest);
    assert.equal(parsed.mediaType, MEDIA_TYPES.ociManifest);
    assert.equal(parsed.digest, DIGEST);
    assert.equal(parsed.size, JSON.stringify(body).length);
    assert.deepEqual(parsed.references, [
      { digest: CONFIG.digest, kind: 'blob' },
      { digest: LAYER.digest, kind: 'blob' },
    ]);
    assert.equal(parsed.subject, null);
    assert.equal(parsed.annotations, null);
  });

  it('records an index with its children as manifest references', () => {
    const body = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: d('a'), size: 5 }] };
    const parsed = parse(body, MEDIA_TYPES.ociIndex);
    assert.equal(parsed.mediaType, MEDIA_TYPES.ociIndex);
    assert.deepEqual(parsed.references, [{ digest: d('a'), kind: 'manifest' }]);
    assert.equal(parsed.artifactType, null);
  });

  it('takes the media type from Content-Type when the body has none', () => {
    const parsed = parse({ schemaVersion: 2, config: CONFIG, layers: [] }, MEDIA_TYPES.dockerManifest);
    assert.equal(parsed.mediaType, MEDIA_TYPES.dockerManifest);
  });

  it('infers the media type from the shape when neither body nor Content-Type names one', () => {
    assert.equal(parse({ schemaVersion: 2, config: CONFIG, layers: [] }, 'application/json').mediaType, MEDIA_TYPES.ociManifest);
    assert.equal(parse({ schemaVersion: 2, manifests: [] }).mediaType, MEDIA_TYPES.ociIndex);
  });

  it('leaves hosted-elsewhere layers (with urls) out of the references', () => {
    const foreign = { ...LAYER, digest: d('9'), urls: ['https://example.com/l'] };
    const parsed = parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [LAYER, foreign] });
    assert.deepEqual(parsed.references.map((r) => r.digest), [CONFIG.digest, LAYER.digest]);
  });

  it('records subject, artifactType and annotations', () => {
    const parsed = parse({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      artifactType: 'application/vnd.example.sbom',
      config: CONFIG,
      layers: [],
      subject: { mediaType: MEDIA_TYPES.ociManifest, digest: d('5'), size: 99 },
      annotations: { a: 'b' },
    });
    assert.equal(parsed.subject, d('5'));
    assert.equal(parsed.artifactType, 'application/vnd.example.sbom');
    assert.deepEqual(parsed.annotations, { a: 'b' });
  });

  it("uses the config's media type as artifactType when the image manifest has none", () => {
    const parsed = parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...CONFIG, mediaType: 'application/vnd.example.sig' }, layers: [] });
    assert.equal(parsed.artifactType, 'application/vnd.example.sig');
  });

  it("treats an empty artifactType as missing: the config's media type for images, none for indexes", () => {
    const image = parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, artifactType: '', config: { ...CONFIG, mediaType: 'application/vnd.example.sig' }, layers: [] });
    assert.equal(image.artifactType, 'application/vnd.example.sig');
    const index = parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, artifactType: '', manifests: [] });
    assert.equal(index.artifactType, null);
  });

  describe('refuses with MANIFEST_INVALID', () => {
    it('a body that is not JSON', () => invalid(() => parseManifest(Buffer.from('{nope'), MEDIA_TYPES.ociManifest, DIGEST), /JSON/));
    it('a JSON value that is not an object', () => invalid(() => parse([1, 2])));
    it('schemaVersion 1', () => invalid(() => parse({ schemaVersion: 1, fsLayers: [] }), /schema 1/));
    it('a schema 1 Content-Type', () => invalid(() => parse({ schemaVersion: 2, config: CONFIG, layers: [] }, MEDIA_TYPES.dockerSchema1Signed)));
    it('a missing schemaVersion', () => invalid(() => parse({ mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [] }), /schemaVersion/));
    it('an unknown media type', () => invalid(() => parse({ schemaVersion: 2, mediaType: 'application/vnd.example+json', config: CONFIG, layers: [] }), /unsupported/));
    it('a mediaType that is not a string', () => invalid(() => parse({ schemaVersion: 2, mediaType: 7, config: CONFIG, layers: [] })));
    it('a body mediaType that disagrees with Content-Type', () =>
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [] }, MEDIA_TYPES.dockerManifest), /does not match/));
    it('a shape that is neither manifest nor index', () => invalid(() => parse({ schemaVersion: 2 })));
    it('an image manifest without config', () => invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, layers: [] }), /config/));
    it('an image manifest without a layers array', () => invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG }), /layers/));
    it('an index without a manifests array', () => invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex }), /manifests/));
    it('a descriptor with a malformed digest', () =>
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...CONFIG, digest: 'sha256:xyz' }, layers: [] }), /digest/));
    it('a descriptor with a negative or fractional size', () => {
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...CONFIG, size: -1 }, layers: [] }), /size/);
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...CONFIG, size: 1.5 }, layers: [] }), /size/);
    });
    it('a descriptor without mediaType', () =>
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { digest: CONFIG.digest, size: 1 }, layers: [] }), /mediaType/));
    it('annotations that are not strings', () =>
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [], annotations: { a: 1 } }), /annotations/));
    it('a subject that is not a descriptor', () =>
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [], subject: 'sha256:abc' }), /subject/));
    it('urls that are not strings', () =>
      invalid(() => parse({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [{ ...LAYER, urls: [1] }] }), /urls/));
  });
});
