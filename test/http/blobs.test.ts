/** `/v2/<name>/blobs/<digest>`: HEAD, GET (whole and ranged), DELETE, and linking known blobs on HEAD. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { MAX_RANGES } from '../../src/http/byte-ranges.js';
import { assertError, binaryParser, createTestApp, imageManifest, MEDIA, pushBlob, sha256, type TestApp } from '../helpers/app.js';
import { parseByteranges } from '../helpers/multipart.js';

const CONTENT = Buffer.from('0123456789abcdefghij'); // 20 bytes
const ABSENT = sha256('never pushed');

describe('blobs', () => {
  let t: TestApp;
  let digest: string;
  before(async () => {
    t = await createTestApp();
    digest = (await pushBlob(t.app, 'library/alpine', CONTENT)).digest;
  });
  after(() => t.close());

  describe('HEAD', () => {
    it('answers 200 with Content-Length, Docker-Content-Digest, ETag and Accept-Ranges', async () => {
      const res = await request(t.app).head(`/v2/library/alpine/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], String(CONTENT.length));
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers['etag'], `"${digest}"`);
      assert.equal(res.headers['accept-ranges'], 'bytes');
    });

    it('answers 404 without a body for a blob the registry does not hold', async () => {
      const res = await request(t.app).head(`/v2/library/alpine/blobs/${ABSENT}`);
      assert.equal(res.status, 404);
      assert.equal(res.headers['content-type'], undefined, 'no error body is announced');
      assert.ok(!res.headers['content-length'] || res.headers['content-length'] === '0');
    });
  });

  describe('GET', () => {
    it('streams the exact bytes with Content-Length and Docker-Content-Digest', async () => {
      const res = await request(t.app).get(`/v2/library/alpine/blobs/${digest}`).buffer(true).parse(binaryParser);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], String(CONTENT.length));
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers['accept-ranges'], 'bytes');
      assert.ok(CONTENT.equals(res.body as Buffer));
    });

    it('answers 404 BLOB_UNKNOWN for a digest the repository does not hold', async () => {
      assertError(await request(t.app).get(`/v2/library/alpine/blobs/${ABSENT}`), 404, 'BLOB_UNKNOWN');
    });

    it('does not serve a blob pushed to another repository', async () => {
      assertError(await request(t.app).get(`/v2/library/other/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    });

    it('answers 400 DIGEST_INVALID for a malformed digest', async () => {
      assertError(await request(t.app).get('/v2/library/alpine/blobs/sha256:1234'), 400, 'DIGEST_INVALID');
    });
  });

  describe('GET with Range', () => {
    async function ranged(range: string) {
      return request(t.app).get(`/v2/library/alpine/blobs/${digest}`).set('Range', range).buffer(true).parse(binaryParser);
    }

    it('answers 206 with Content-Range and just the requested bytes', async () => {
      const res = await ranged('bytes=2-5');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes 2-5/${CONTENT.length}`);
      assert.equal(res.headers['content-length'], '4');
      assert.equal((res.body as Buffer).toString(), '2345');
    });

    it('serves an open-ended range to the end of the blob', async () => {
      const res = await ranged('bytes=15-');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes 15-19/${CONTENT.length}`);
      assert.equal((res.body as Buffer).toString(), 'fghij');
    });

    it('serves a suffix range (the last N bytes)', async () => {
      const res = await ranged('bytes=-3');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes 17-19/${CONTENT.length}`);
      assert.equal((res.body as Buffer).toString(), 'hij');
    });

    it('clamps a range that ends past the blob to its last byte', async () => {
      const res = await ranged('bytes=18-1000');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes 18-19/${CONTENT.length}`);
      assert.equal((res.body as Buffer).toString(), 'ij');
    });

    it('answers 416 with Content-Range bytes */size for a range starting past the end', async () => {
      const res = await request(t.app).get(`/v2/library/alpine/blobs/${digest}`).set('Range', 'bytes=20-25');
      assert.equal(res.status, 416);
      assert.equal(res.headers['content-range'], `bytes */${CONTENT.length}`);
      assert.ok(Array.isArray((res.body as { errors?: unknown }).errors));
    });

    it('serves the whole blob (200) when the Range header is malformed', async () => {
      const res = await ranged('bytes=5-2');
      assert.equal(res.status, 200);
      assert.ok(CONTENT.equals(res.body as Buffer));
    });
  });

  describe('GET with several ranges', () => {
    async function ranged(range: string) {
      return request(t.app).get(`/v2/library/alpine/blobs/${digest}`).set('Range', range).buffer(true).parse(binaryParser);
    }
    function partsOf(res: request.Response): Array<[string | undefined, string | undefined, string]> {
      assert.equal(res.status, 206);
      assert.equal(Number(res.headers['content-length']), (res.body as Buffer).length, 'Content-Length is the body length');
      return parseByteranges(res.headers['content-type'], res.body as Buffer).map((part) => [
        part.headers['content-range'],
        part.headers['content-type'],
        part.body.toString(),
      ]);
    }

    it('answers 206 multipart/byteranges, one part per range in the order asked, each with Content-Range and Content-Type', async () => {
      const res = await ranged('bytes=15-17, 0-1,-2');
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(partsOf(res), [
        ['bytes 15-17/20', 'application/octet-stream', 'fgh'],
        ['bytes 0-1/20', 'application/octet-stream', '01'],
        ['bytes 18-19/20', 'application/octet-stream', 'ij'],
      ]);
    });

    it('serves overlapping ranges as asked, without merging them (clients match parts to requests)', async () => {
      assert.deepEqual(partsOf(await ranged('bytes=0-4,2-6')).map(([range, , body]) => [range, body]), [
        ['bytes 0-4/20', '01234'],
        ['bytes 2-6/20', '23456'],
      ]);
    });

    it('drops ranges that start past the end; a single one left is an ordinary 206', async () => {
      const res = await ranged('bytes=30-40,3-4,-0');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 3-4/20');
      assert.equal((res.body as Buffer).toString(), '34');
    });

    it('answers 416 with Content-Range bytes */size when no range overlaps the blob', async () => {
      const res = await request(t.app).get(`/v2/library/alpine/blobs/${digest}`).set('Range', 'bytes=20-,30-31,-0');
      assertError(res, 416, 'RANGE_INVALID');
      assert.equal(res.headers['content-range'], 'bytes */20');
    });

    it('serves the whole blob (200) for ranges adding up to more than the blob, or more than the bound', async () => {
      for (const header of ['bytes=0-15,5-19', `bytes=${Array.from({ length: MAX_RANGES + 1 }, () => '0-0').join(',')}`]) {
        const res = await ranged(header);
        assert.equal(res.status, 200);
        assert.ok(CONTENT.equals(res.body as Buffer));
      }
    });

    it(`serves ${MAX_RANGES} ranges as parts`, async () => {
      const big = Buffer.alloc(MAX_RANGES * 4, 'abcd');
      const pushed = await pushBlob(t.app, 'many/ranges', big);
      const header = `bytes=${Array.from({ length: MAX_RANGES }, (_, i) => `${i * 4 + 1}-${i * 4 + 2}`).join(',')}`;
      const res = await request(t.app).get(`/v2/many/ranges/blobs/${pushed.digest}`).set('Range', header).buffer(true).parse(binaryParser);
      const parts = partsOf(res);
      assert.equal(parts.length, MAX_RANGES);
      assert.deepEqual(parts[MAX_RANGES - 1], [`bytes ${big.length - 3}-${big.length - 2}/${big.length}`, 'application/octet-stream', 'bc']);
      assert.ok(parts.every(([, , body]) => body === 'bc'));
    });
  });

  describe('DELETE', () => {
    it('answers 202, after which HEAD and GET answer 404', async () => {
      const own = await pushBlob(t.app, 'deleting/blob', 'to be deleted');
      const res = await request(t.app).delete(`/v2/deleting/blob/blobs/${own.digest}`);
      assert.equal(res.status, 202);
      assert.equal((await request(t.app).head(`/v2/deleting/blob/blobs/${own.digest}`)).status, 404);
      assertError(await request(t.app).get(`/v2/deleting/blob/blobs/${own.digest}`), 404, 'BLOB_UNKNOWN');
    });

    it('answers 404 BLOB_UNKNOWN for a blob the repository does not hold', async () => {
      assertError(await request(t.app).delete(`/v2/library/alpine/blobs/${ABSENT}`), 404, 'BLOB_UNKNOWN');
    });

    it('makes a later manifest naming the deleted blob fail with MANIFEST_BLOB_UNKNOWN', async () => {
      const config = await pushBlob(t.app, 'deleting/ref', '{}', MEDIA.ociConfig);
      const layer = await pushBlob(t.app, 'deleting/ref', 'deleted layer');
      assert.equal((await request(t.app).delete(`/v2/deleting/ref/blobs/${layer.digest}`)).status, 202);
      const res = await request(t.app)
        .put('/v2/deleting/ref/manifests/latest')
        .set('Content-Type', MEDIA.ociManifest)
        .send(JSON.stringify(imageManifest(config, [layer])));
      assertError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('removes the blob from that repository only', async () => {
      const shared = await pushBlob(t.app, 'keep/one', 'shared content');
      await pushBlob(t.app, 'drop/one', 'shared content');
      assert.equal((await request(t.app).delete(`/v2/drop/one/blobs/${shared.digest}`)).status, 202);
      assert.equal((await request(t.app).get(`/v2/keep/one/blobs/${shared.digest}`)).status, 200);
    });
  });

  describe('HEAD of a blob another repository holds', () => {
    it('answers 200 and links the blob, so a later GET in this repository succeeds', async () => {
      const blob = await pushBlob(t.app, 'source/repo', 'layer known elsewhere');
      assertError(await request(t.app).get(`/v2/target/repo/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
      const head = await request(t.app).head(`/v2/target/repo/blobs/${blob.digest}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers['docker-content-digest'], blob.digest);
      assert.equal(head.headers['content-length'], String(blob.size));
      assert.equal((await request(t.app).get(`/v2/target/repo/blobs/${blob.digest}`)).status, 200);
    });
  });
});

describe('blobs with linkKnownBlobsOnHead false', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ api: { linkKnownBlobsOnHead: false } });
  });
  after(() => t.close());

  it('answers 404 to HEAD for a blob only another repository holds, and does not link it', async () => {
    const blob = await pushBlob(t.app, 'source/repo', 'kept to itself');
    assert.equal((await request(t.app).head(`/v2/target/repo/blobs/${blob.digest}`)).status, 404);
    assertError(await request(t.app).get(`/v2/target/repo/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
  });
});

describe('blobs with deleteEnabled false', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ storage: { deleteEnabled: false } });
  });
  after(() => t.close());

  it('answers DELETE with 405 UNSUPPORTED and keeps the blob', async () => {
    const blob = await pushBlob(t.app, 'kept/repo', 'not deletable');
    assertError(await request(t.app).delete(`/v2/kept/repo/blobs/${blob.digest}`), 405, 'UNSUPPORTED');
    assert.equal((await request(t.app).head(`/v2/kept/repo/blobs/${blob.digest}`)).status, 200);
  });
});
