/** Accept negotiation over manifest media types. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accepts, bareMediaType, manifestKind, MEDIA_TYPES } from '../../src/registry/media-types.js';

const { ociManifest, ociIndex, dockerManifest, dockerManifestList } = MEDIA_TYPES;

describe('bareMediaType', () => {
  it('drops parameters, surrounding space and case', () => {
    assert.equal(bareMediaType(' Application/JSON ; charset=utf-8'), 'application/json');
    assert.equal(bareMediaType(`${ociManifest};q=0.5`), ociManifest);
  });

  it('is undefined for a missing or empty value', () => {
    assert.equal(bareMediaType(undefined), undefined);
    assert.equal(bareMediaType(''), undefined);
    assert.equal(bareMediaType(' ; q=1'), undefined);
  });
});

describe('manifestKind', () => {
  it('knows OCI and Docker image manifests and indexes, and nothing else', () => {
    assert.equal(manifestKind(ociManifest), 'image');
    assert.equal(manifestKind(dockerManifest), 'image');
    assert.equal(manifestKind(ociIndex), 'index');
    assert.equal(manifestKind(dockerManifestList), 'index');
    assert.equal(manifestKind(MEDIA_TYPES.dockerSchema1Signed), undefined);
    assert.equal(manifestKind('application/json'), undefined);
  });
});

describe('accepts', () => {
  it('admits everything without an Accept header, with */* or with application/*', () => {
    for (const accept of [undefined, '', '*/*', 'application/*']) {
      assert.ok(accepts(accept, ociIndex), String(accept));
    }
  });

  it('admits a listed type, whatever the case, parameters or position', () => {
    assert.ok(accepts(ociIndex, ociIndex));
    assert.ok(accepts(`${dockerManifest}, ${ociIndex.toUpperCase()};q=0.5`, ociIndex));
  });

  it('refuses an index to a client listing only image manifest types', () => {
    assert.ok(!accepts(`${ociManifest}, ${dockerManifest}`, ociIndex));
    assert.ok(!accepts(dockerManifest, dockerManifestList));
  });

  it('refuses an OCI manifest to a client listing only Docker types', () => {
    assert.ok(!accepts(`${dockerManifest}, ${dockerManifestList}`, ociManifest));
  });

  it('admits everything when the header names no manifest type at all (curl, simple tools)', () => {
    assert.ok(accepts('application/json', ociIndex));
    assert.ok(accepts('text/html, application/xml;q=0.9', ociManifest));
  });

  it('counts schema 1 types as manifest types, so a schema-1-only client gets no schema 2', () => {
    assert.ok(!accepts(MEDIA_TYPES.dockerSchema1Signed, dockerManifest));
  });
});
