/** `GET /v2/<name>/tags/list` and `GET /v2/_catalog`: lexical order, `n` / `last` pagination, `Link`. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { assertError, createTestApp, pushBlob, pushImage, pushManifest, type TestApp } from '../helpers/app.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';

/** Pushed in shuffled order on purpose; ASCII order puts uppercase before lowercase. */
const TAGS = ['v2', 'latest', 'V1', '1.0', 'beta', 'alpha', '1.1'];
const SORTED = [...TAGS].sort();

for (const backend of METADATA_BACKENDS) describe(`listings (${backend.name})`, { skip: backend.skip }, () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ api: { catalogPageSize: 2, maxPageSize: 3 }, metadata: await backend.metadataConfig() });
    const image = await pushImage(t.app, 'list/tags', 'seed');
    for (const tag of TAGS) await pushManifest(t.app, 'list/tags', tag, image.body);
    await request(t.app).delete('/v2/list/tags/manifests/seed');
  });
  after(() => t.close());

  describe('tags', () => {
    it('lists every tag in lexical order with the repository name when no n is given', async () => {
      const res = await request(t.app).get('/v2/list/tags/tags/list');
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.deepEqual(res.body, { name: 'list/tags', tags: SORTED });
      assert.equal(res.headers.link, undefined);
    });

    it('returns the first n tags with a Link to the next page', async () => {
      const res = await request(t.app).get('/v2/list/tags/tags/list?n=2');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.tags, SORTED.slice(0, 2));
      assert.equal(res.headers.link, `</v2/list/tags/tags/list?n=2&last=${SORTED[1]}>; rel="next"`);
    });

    it('returns the tags after last, and no Link on the final page', async () => {
      const res = await request(t.app).get(`/v2/list/tags/tags/list?n=2&last=${SORTED[4]}`);
      assert.deepEqual(res.body.tags, SORTED.slice(5));
      assert.equal(res.headers.link, undefined);
    });

    it('walks every tag exactly once by following Link headers', async () => {
      const seen: string[] = [];
      let next: string | undefined = '/v2/list/tags/tags/list?n=2';
      for (let page = 0; next !== undefined && page < 10; page++) {
        const res = await request(t.app).get(next);
        assert.equal(res.status, 200);
        seen.push(...(res.body.tags as string[]));
        next = res.headers.link ? /^<([^>]+)>; rel="next"$/.exec(String(res.headers.link))?.[1] : undefined;
      }
      assert.deepEqual(seen, SORTED);
    });

    it('accepts last without n and returns every tag after it', async () => {
      const res = await request(t.app).get(`/v2/list/tags/tags/list?last=${SORTED[3]}`);
      assert.deepEqual(res.body.tags, SORTED.slice(4));
    });

    it('answers n=0 with an empty list and no Link', async () => {
      const res = await request(t.app).get('/v2/list/tags/tags/list?n=0');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { name: 'list/tags', tags: [] });
      assert.equal(res.headers.link, undefined);
    });

    it('serves an n above the maximum page size at that size, with a Link', async () => {
      const res = await request(t.app).get('/v2/list/tags/tags/list?n=100');
      assert.deepEqual(res.body.tags, SORTED.slice(0, 3));
      assert.match(String(res.headers.link), /rel="next"/);
    });

    it('answers 400 PAGINATION_NUMBER_INVALID when n is not a non-negative integer', async () => {
      assertError(await request(t.app).get('/v2/list/tags/tags/list?n=abc'), 400, 'PAGINATION_NUMBER_INVALID');
      assertError(await request(t.app).get('/v2/list/tags/tags/list?n=-1'), 400, 'PAGINATION_NUMBER_INVALID');
    });

    it('answers 404 NAME_UNKNOWN for an unknown repository', async () => {
      assertError(await request(t.app).get('/v2/no/such/repo/tags/list'), 404, 'NAME_UNKNOWN');
    });

    it('answers 200 with an empty list for a repository that has blobs but no tags', async () => {
      await pushBlob(t.app, 'list/untagged', 'blob only');
      const res = await request(t.app).get('/v2/list/untagged/tags/list');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { name: 'list/untagged', tags: [] });
    });
  });

  describe('catalog', () => {
    let all: string[];
    before(async () => {
      for (const name of ['zeta', 'alpha/one', 'alpha', 'mid/dle']) await pushBlob(t.app, name, `content of ${name}`);
      all = ['alpha', 'alpha/one', 'list/tags', 'list/untagged', 'mid/dle', 'zeta'];
    });

    it('serves the configured page size when no n is given, with a Link', async () => {
      const res = await request(t.app).get('/v2/_catalog');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { repositories: all.slice(0, 2) });
      assert.equal(res.headers.link, '</v2/_catalog?n=2&last=alpha%2Fone>; rel="next"');
    });

    it('pages with n and last in lexical order, without a Link on the last page', async () => {
      const first = await request(t.app).get('/v2/_catalog?n=3');
      assert.deepEqual(first.body.repositories, all.slice(0, 3));
      assert.equal(first.headers.link, '</v2/_catalog?n=3&last=list%2Ftags>; rel="next"');
      const second = await request(t.app).get('/v2/_catalog?n=3&last=list%2Ftags');
      assert.deepEqual(second.body.repositories, all.slice(3));
      assert.equal(second.headers.link, undefined);
    });

    it('answers n=0 with an empty list and no Link', async () => {
      const res = await request(t.app).get('/v2/_catalog?n=0');
      assert.deepEqual(res.body, { repositories: [] });
      assert.equal(res.headers.link, undefined);
    });

    it('answers 400 PAGINATION_NUMBER_INVALID when n is not a number', async () => {
      assertError(await request(t.app).get('/v2/_catalog?n=ten'), 400, 'PAGINATION_NUMBER_INVALID');
    });
  });
});
