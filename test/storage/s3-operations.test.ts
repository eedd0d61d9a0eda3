/**
 * Running on S3 (a real radosgw): presigned redirects for pulls (Range honoured by the object
 * store), readiness checking the bucket, start-up refusals that name the setting, and fsck and
 * garbage collection working from one bucket listing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import request from 'supertest';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import type { FsckReport } from '../../src/registry/fsck.js';
import type { GcReport } from '../../src/registry/gc.js';
import { openBlobStore } from '../../src/storage/open.js';
import { createTestApp, pushBlob, pushImage, sha256, type TestApp } from '../helpers/app.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';

const blobKey = (digest: string) => `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

describe('operating on S3 (radosgw)', { skip: radosgwMissing ?? false }, () => {
  let s3: S3Server;
  let bucket: string;
  before(async () => {
    s3 = await startRadosgw();
    bucket = await s3.createBucket();
  });
  after(() => s3?.stop());

  describe('redirects', () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ storage: s3.storage(bucket, { prefix: 'redirects' }) });
    });
    after(() => t?.close());

    it('answers a blob GET with 307 to a presigned URL that serves the blob, and Range there', async () => {
      const content = Buffer.from('0123456789 presigned content');
      const { digest } = await pushBlob(t.app, 'redirect/app', content);
      const redirecting = await createTestApp({ storage: { ...s3.storage(bucket, { prefix: 'redirects' }), redirect: { enabled: true, expirySeconds: 60 } } });
      try {
        await pushBlob(redirecting.app, 'redirect/app', content);
        const res = await request(redirecting.app).get(`/v2/redirect/app/blobs/${digest}`);
        assert.equal(res.status, 307);
        assert.equal(res.headers['docker-content-digest'], digest);
        assert.equal(res.headers['cache-control'], 'no-store');
        const location = String(res.headers.location);
        assert.ok(location.startsWith(`${s3.endpoint}/${bucket}/redirects/blobs/sha256/`), location);
        assert.match(location, /X-Amz-Expires=60/);
        const fetched = await fetch(location);
        assert.equal(fetched.status, 200);
        assert.ok(Buffer.from(await fetched.arrayBuffer()).equals(content));
        const ranged = await fetch(location, { headers: { Range: 'bytes=2-5' } });
        assert.equal(ranged.status, 206);
        assert.equal(await ranged.text(), '2345');
        // HEAD is still answered by the registry; an unknown blob is still 404.
        assert.equal((await request(redirecting.app).head(`/v2/redirect/app/blobs/${digest}`)).status, 200);
        assert.equal((await request(redirecting.app).get(`/v2/redirect/app/blobs/${sha256('absent')}`)).status, 404);
      } finally {
        await redirecting.close();
      }
      // Without redirects the registry streams it.
      const streamed = await request(t.app).get(`/v2/redirect/app/blobs/${digest}`);
      assert.equal(streamed.status, 200);
    });

    it('signs for the public endpoint when one is set', async () => {
      const content = Buffer.from('public endpoint');
      const redirecting = await createTestApp({
        storage: { ...s3.storage(bucket, { prefix: 'redirects' }), redirect: { enabled: true, publicEndpoint: 'https://objects.example.com' } },
      });
      try {
        const { digest } = await pushBlob(redirecting.app, 'redirect/public', content);
        const res = await request(redirecting.app).get(`/v2/redirect/public/blobs/${digest}`);
        assert.equal(res.status, 307);
        assert.ok(String(res.headers.location).startsWith(`https://objects.example.com/${bucket}/redirects/`), String(res.headers.location));
      } finally {
        await redirecting.close();
      }
    });
  });

  describe('start-up and readiness', () => {
    const settings = (extra: Record<string, unknown>) => validateConfig({ storage: { ...s3.storage(bucket), ...{ s3: { ...s3.storage(bucket).s3, ...extra } } } }).storage;

    async function refusal(extra: Record<string, unknown>): Promise<string> {
      try {
        await openBlobStore(settings(extra));
      } catch (error) {
        assert.ok(error instanceof ConfigError, `a ConfigError, not ${String(error)}`);
        return error.message;
      }
      assert.fail('the store opened');
    }

    it('refuses a missing bucket, naming storage.s3.bucket and what S3 answered', async () => {
      assert.match(await refusal({ bucket: 'no-such-bucket' }), /storage\.s3\.bucket \(REGISTRY_STORAGE_S3_BUCKET\): bucket "no-such-bucket" at http:\/\/127\.0\.0\.1:\d+ does not exist .*S3 answered 404/);
    });

    it('refuses wrong credentials, naming the keys', async () => {
      assert.match(await refusal({ secretKey: 'wrong-secret' }), /storage\.s3\.accessKey \(REGISTRY_STORAGE_S3_ACCESS_KEY\) \/ storage\.s3\.secretKey \(REGISTRY_STORAGE_S3_SECRET_KEY\): S3 refused access .*S3 answered 403/);
    });

    it('refuses an endpoint nothing answers on, naming storage.s3.endpoint', async () => {
      assert.match(await refusal({ endpoint: 'http://127.0.0.1:9' }), /storage\.s3\.endpoint \(REGISTRY_STORAGE_S3_ENDPOINT\): cannot reach bucket ".*" at http:\/\/127\.0\.0\.1:9: ECONNREFUSED/);
    });

    it('reports the bucket in /readyz', async () => {
      const t = await createTestApp({ storage: s3.storage(bucket, { prefix: 'ready' }) });
      try {
        const ready = await request(t.app).get('/readyz');
        assert.equal(ready.status, 200, ready.text);
        assert.match(ready.text, /blob storage/);
      } finally {
        await t.close();
      }
    });
  });

  describe('fsck and garbage collection', () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ storage: s3.storage(bucket, { prefix: '' }) });
    });
    after(() => t?.close());

    it('fsck verifies sizes and digests of objects and finds orphans in one listing', async () => {
      const image = await pushImage(t.app, 'fsck/app', 'v1');
      const damagedContent = Buffer.from('layer of v1'.replace('v1', 'v2'));
      assert.equal(damagedContent.length, image.layer.size);
      // Same size, other bytes: only hashing finds it.
      await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: blobKey(image.layer.digest), Body: damagedContent }));
      const orphan = Buffer.from('an object no record points at');
      await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: blobKey(sha256(orphan)), Body: orphan }));
      await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: blobKey(image.config.digest) }));

      const res = await request(t.app).post('/api/v1/fsck').send({ gracePeriodSeconds: 0 });
      assert.equal(res.status, 200, res.text);
      const report = res.body as FsckReport;
      const kinds = Object.fromEntries(report.findings.map((f) => [f.digest, f.kind]));
      assert.equal(kinds[image.layer.digest], 'blob-damaged');
      assert.equal(kinds[image.config.digest], 'blob-missing');
      assert.equal(kinds[sha256(orphan)], 'file-orphan');
    });

    it('garbage collection deletes orphan objects past the grace period, found by listing', async () => {
      const orphan = Buffer.from('another object no record points at');
      await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: blobKey(sha256(orphan)), Body: orphan }));
      const kept = await pushBlob(t.app, 'gc/app', 'a blob with a record');
      const res = await request(t.app).post('/api/v1/gc').send({ gracePeriodSeconds: 0 });
      assert.equal(res.status, 200, res.text);
      const report = res.body as GcReport;
      assert.ok(report.orphanFilesDeleted.items.some((item) => item.digest === sha256(orphan)));
      assert.equal((await openBlobStore(validateConfig({ storage: s3.storage(bucket) }).storage).then((store) => store.stat(sha256(orphan)))), null);
      assert.ok(!report.orphanFilesDeleted.items.some((item) => item.digest === kept.digest));
    });
  });
});
