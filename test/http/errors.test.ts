/**
 * The error contract: every failure is `{"errors":[{"code","message","detail"?}]}` with the
 * status of its code, and malformed names, tags and digests get their own codes everywhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { ERROR_CODES } from '../../src/registry/errors.js';
import { assertError, createTestApp, pushImage, sha256, type TestApp } from '../helpers/app.js';

const DIGEST = sha256('anything');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('errors', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
    await pushImage(t.app, 'valid/repo', 'latest');
  });
  after(() => t.close());

  it('answers an unknown /v2 path with a 404 JSON error', async () => {
    const res = await request(t.app).get('/v2/valid/repo/unknown/endpoint');
    assertError(res, 404, 'UNSUPPORTED');
  });

  it('answers an unsupported method on a known path with 405 UNSUPPORTED and Allow', async () => {
    const res = await request(t.app).post('/v2/valid/repo/manifests/latest');
    assertError(res, 405, 'UNSUPPORTED');
    assert.equal(res.headers.allow, 'GET, HEAD, PUT, DELETE');
    const upload = await request(t.app).put('/v2/valid/repo/blobs/uploads/');
    assertError(upload, 405, 'UNSUPPORTED');
    assert.equal(upload.headers.allow, 'POST');
  });

  it('answers a path outside /v2 with a plain 404, without asking for credentials', async () => {
    const res = await request(t.app).get('/favicon.ico');
    assertError(res, 404, 'NOT_FOUND');
  });

  describe('NAME_INVALID', () => {
    const cases: Array<[string, string]> = [
      ['uppercase name, manifest GET', '/v2/Valid/Repo/manifests/latest'],
      ['uppercase name, blob GET', `/v2/UPPER/blobs/${DIGEST}`],
      ['uppercase name, tags list', '/v2/Valid/tags/list'],
      ['trailing separator', `/v2/valid-/blobs/${DIGEST}`],
      ['empty path component', '/v2/valid//repo/tags/list'],
      ['double dot', '/v2/valid..repo/tags/list'],
      ['name of 256 characters', `/v2/${'a'.repeat(256)}/tags/list`],
    ];
    for (const [label, path] of cases) {
      it(`for ${label}`, async () => {
        assertError(await request(t.app).get(path), 400, 'NAME_INVALID');
      });
    }

    it('accepts the separators the grammar allows (., _, __, -, --)', async () => {
      for (const name of ['a.b', 'a_b', 'a__b', 'a-b', 'a--b/c']) {
        assertError(await request(t.app).get(`/v2/${name}/tags/list`), 404, 'NAME_UNKNOWN');
      }
    });

    it('for an uppercase name on a push', async () => {
      assertError(await request(t.app).post('/v2/Bad/blobs/uploads/'), 400, 'NAME_INVALID');
    });
  });

  describe('TAG_INVALID', () => {
    for (const tag of ['-leading-dash', '.leading-dot', 'x'.repeat(129), 'has%20space']) {
      it(`for a push to the tag ${JSON.stringify(tag.length > 20 ? `${tag.slice(0, 10)}… (${tag.length})` : tag)}`, async () => {
        assertError(await request(t.app).put(`/v2/valid/repo/manifests/${tag}`).type(OCI_MANIFEST).send('{}'), 400, 'TAG_INVALID');
      });
    }

    it('accepts a tag of 128 characters', async () => {
      assertError(await request(t.app).get(`/v2/valid/repo/manifests/${'x'.repeat(128)}`), 404, 'MANIFEST_UNKNOWN');
    });
  });

  describe('a manifest reference no manifest can have', () => {
    // The OCI conformance suite pulls `.INVALID_MANIFEST_NAME` and wants 404; distribution answers 404 too.
    const references = ['.INVALID_MANIFEST_NAME', '-leading-dash', 'x'.repeat(129), 'sha256:short', `md5:${'a'.repeat(32)}`];
    for (const reference of references) {
      const label = reference.length > 24 ? `${reference.slice(0, 10)}… (${reference.length})` : reference;
      it(`answers 404 MANIFEST_UNKNOWN to GET, HEAD and DELETE of ${label}, with the reason`, async () => {
        const path = `/v2/valid/repo/manifests/${reference}`;
        const got = await request(t.app).get(path);
        assertError(got, 404, 'MANIFEST_UNKNOWN');
        assert.match((got.body as { errors: Array<{ message: string }> }).errors[0]!.message, /can be named .*: (invalid|unsupported)/);
        const head = await request(t.app).head(path);
        assert.equal(head.status, 404);
        assertError(await request(t.app).delete(path), 404, 'MANIFEST_UNKNOWN');
      });
    }

    it('answers NAME_UNKNOWN when the repository is not there either, as for any reference', async () => {
      assertError(await request(t.app).get('/v2/no/such-repo/manifests/.INVALID_MANIFEST_NAME'), 404, 'NAME_UNKNOWN');
    });
  });

  describe('DIGEST_INVALID', () => {
    const bad = ['sha256:1234', `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, `sha256:${'g'.repeat(64)}`, 'sha256'];
    for (const digest of bad) {
      it(`for the blob digest ${digest.slice(0, 20)}`, async () => {
        assertError(await request(t.app).get(`/v2/valid/repo/blobs/${digest}`), 400, 'DIGEST_INVALID');
      });
    }

    it('for a push to a manifest reference shaped like a digest', async () => {
      assertError(await request(t.app).put('/v2/valid/repo/manifests/sha256:short').type(OCI_MANIFEST).send('{}'), 400, 'DIGEST_INVALID');
    });
  });

  it('repeats of a query parameter are refused with 400', async () => {
    const res = await request(t.app).get('/v2/valid/repo/tags/list?n=1&n=2');
    assert.equal(res.status, 400);
    assert.ok(Array.isArray((res.body as { errors?: unknown }).errors));
  });

  it('every error body has exactly code, message and optionally detail', async () => {
    const res = await request(t.app).get(`/v2/valid/repo/blobs/${DIGEST}`);
    const entries = (res.body as { errors: Array<Record<string, unknown>> }).errors;
    assert.equal(entries.length, 1);
    for (const key of Object.keys(entries[0]!)) assert.ok(['code', 'message', 'detail'].includes(key), `unexpected key ${key}`);
    assert.equal(entries[0]!.code, 'BLOB_UNKNOWN');
    assert.equal(res.status, ERROR_CODES.BLOB_UNKNOWN.status);
  });

  it('codes in the table are upper-case with underscores, as the spec requires', () => {
    for (const code of Object.keys(ERROR_CODES)) assert.match(code, /^[A-Z_]+$/);
  });
});
