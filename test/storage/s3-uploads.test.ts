/**
 * Uploads on S3, against a real radosgw (which enforces the 5 MiB part minimum as AWS does):
 * 1 MiB chunks, one 100 MiB streamed PATCH, monolithic uploads, resume after a restart, two
 * registries alternating PATCHes on one upload, cancel, expiry (the purge aborts the
 * multipart upload), wrong digests, sha512, and copies above the single-copy limit.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import request from 'supertest';
import { SqliteLifecycleStore } from '../../src/metadata/sqlite/lifecycle-store.js';
import type { SqliteMetadataStore } from '../../src/metadata/sqlite/metadata-store.js';
import { createLifecycle } from '../../src/registry/lifecycle.js';
import { S3BlobStore } from '../../src/storage/s3/blob-store.js';
import { createS3Client } from '../../src/storage/s3/client.js';
import { validateConfig } from '../../src/config/load.js';
import { assertError, binaryParser, createTestApp, sha256, type App, type TestApp } from '../helpers/app.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const PART = 5 * MiB;

/** `size` bytes that differ from MiB to MiB (and from seed to seed). */
function bytesOf(seed: number, size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4096) bytes.fill((seed * 31 + i / 4096) % 251, i, Math.min(i + 4096, size));
  return bytes;
}

describe('uploads on S3 (radosgw)', { skip: radosgwMissing ?? false }, () => {
  let s3: S3Server;
  let bucket: string;
  let t: TestApp;
  before(async () => {
    s3 = await startRadosgw();
    bucket = await s3.createBucket();
    t = await createTestApp({ storage: s3.storage(bucket, { partSize: '5MiB' }) });
  });
  after(async () => {
    await t?.close();
    await s3?.stop();
  });

  async function keys(prefix: string): Promise<string[]> {
    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (listed.Contents ?? []).map((object) => object.Key!);
  }

  async function multipartUploads(): Promise<string[]> {
    const listed = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'uploads/' }));
    return (listed.Uploads ?? []).map((upload) => upload.Key!);
  }

  async function start(app: App, name: string): Promise<string> {
    const res = await request(app).post(`/v2/${name}/blobs/uploads/`).set('Content-Length', '0');
    assert.equal(res.status, 202, res.text);
    return String(res.headers.location);
  }

  async function patch(app: App, location: string, bytes: Buffer, offset: number): Promise<string> {
    const res = await request(app)
      .patch(location)
      .set('Content-Type', 'application/octet-stream')
      .set('Content-Range', `${offset}-${offset + bytes.length - 1}`)
      .send(bytes);
    assert.equal(res.status, 202, res.text);
    assert.equal(res.headers.range, `0-${offset + bytes.length - 1}`);
    return String(res.headers.location);
  }

  async function pulled(app: App, name: string, digest: string, range?: string): Promise<request.Response> {
    const req = request(app).get(`/v2/${name}/blobs/${digest}`);
    if (range) req.set('Range', range);
    return req.buffer(true).parse(binaryParser);
  }

  it('takes 1 MiB chunks across part boundaries and serves the blob whole and in ranges', async () => {
    const content = bytesOf(1, 12 * MiB + 123);
    const location = await start(t.app, 's3/chunks');
    for (let offset = 0; offset < content.length; offset += MiB) await patch(t.app, location, content.subarray(offset, offset + MiB), offset);
    const digest = sha256(content);
    assert.equal((await request(t.app).put(`${location}?digest=${digest}`)).status, 201);
    const whole = await pulled(t.app, 's3/chunks', digest);
    assert.equal(whole.status, 200);
    assert.ok((whole.body as Buffer).equals(content));
    const ranged = await pulled(t.app, 's3/chunks', digest, `bytes=${PART - 10}-${PART + 9}`);
    assert.equal(ranged.status, 206);
    assert.ok((ranged.body as Buffer).equals(content.subarray(PART - 10, PART + 10)));
    assert.deepEqual(await keys('uploads/'), [], 'nothing of the upload is left');
    assert.deepEqual(await multipartUploads(), []);
  });

  it('takes one 100 MiB streamed PATCH and commits it', async () => {
    const size = 100 * MiB;
    const hash = createHash('sha256');
    const location = await start(t.app, 's3/stream');
    const server = http.createServer(t.app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'PATCH', path: location, headers: { 'Content-Type': 'application/octet-stream' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        Readable.from(
          (function* () {
            for (let i = 0; i < size / MiB; i++) {
              const chunk = bytesOf(1000 + i, MiB);
              hash.update(chunk);
              yield chunk;
            }
          })(),
        ).pipe(req);
      });
      assert.equal(status, 202);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    const digest = `sha256:${hash.digest('hex')}`;
    assert.equal((await request(t.app).put(`${location}?digest=${digest}`)).status, 201);
    const head = await request(t.app).head(`/v2/s3/stream/blobs/${digest}`);
    assert.equal(head.headers['content-length'], String(size));
    const tail = await pulled(t.app, 's3/stream', digest, `bytes=-${MiB}`);
    assert.ok((tail.body as Buffer).equals(bytesOf(1000 + size / MiB - 1, MiB)));
  });

  it('takes monolithic uploads: POST ?digest= and a PUT carrying the whole blob', async () => {
    const small = Buffer.from('a small monolithic blob');
    const posted = await request(t.app).post(`/v2/s3/mono/blobs/uploads/?digest=${sha256(small)}`).set('Content-Type', 'application/octet-stream').send(small);
    assert.equal(posted.status, 201);
    const big = bytesOf(2, 7 * MiB);
    const location = await start(t.app, 's3/mono');
    const put = await request(t.app).put(`${location}?digest=${sha256(big)}`).set('Content-Type', 'application/octet-stream').send(big);
    assert.equal(put.status, 201, put.text);
    assert.ok(((await pulled(t.app, 's3/mono', sha256(small))).body as Buffer).equals(small));
    assert.ok(((await pulled(t.app, 's3/mono', sha256(big))).body as Buffer).equals(big));
  });

  it('resumes after a restart: the next PATCH and the PUT in a fresh registry, with nothing read back', async () => {
    const content = bytesOf(3, 8 * MiB);
    const location = await start(t.app, 's3/restart');
    await patch(t.app, location, content.subarray(0, 6 * MiB), 0);
    const restarted = await t.restart();
    const status = await request(restarted).get(location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, `0-${6 * MiB - 1}`);
    await patch(restarted, location, content.subarray(6 * MiB), 6 * MiB);
    const digest = sha256(content);
    assert.equal((await request(restarted).put(`${location}?digest=${digest}`)).status, 201);
    assert.ok(((await pulled(t.app, 's3/restart', digest)).body as Buffer).equals(content));
  });

  it('lets two registries alternate PATCHes on one upload', async () => {
    const other = await t.restart();
    const apps = [t.app, other];
    const content = bytesOf(4, 17 * MiB + 5);
    const chunk = 3 * MiB + 1; // never a multiple of the part size: every PATCH leaves a tail
    const location = await start(t.app, 's3/alternate');
    for (let offset = 0, turn = 0; offset < content.length; offset += chunk, turn++) {
      await patch(apps[turn % 2]!, location, content.subarray(offset, offset + chunk), offset);
    }
    const digest = sha256(content);
    assert.equal((await request(other).put(`${location}?digest=${digest}`)).status, 201);
    assert.ok(((await pulled(t.app, 's3/alternate', digest)).body as Buffer).equals(content));
  });

  it('cancels: the multipart upload is aborted and its objects removed', async () => {
    const location = await start(t.app, 's3/cancel');
    await patch(t.app, location, bytesOf(5, 6 * MiB), 0);
    const id = location.split('/').pop()!;
    assert.ok((await multipartUploads()).some((key) => key.includes(id)), 'a part was uploaded');
    assert.ok((await keys(`uploads/${id}/`)).length > 0, 'the tail is stored');
    assert.equal((await request(t.app).delete(location)).status, 204);
    assert.ok(!(await multipartUploads()).some((key) => key.includes(id)));
    assert.deepEqual(await keys(`uploads/${id}/`), []);
    assertError(await request(t.app).get(location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('expires idle uploads: the purge aborts their multipart uploads', async () => {
    const location = await start(t.app, 's3/expire');
    await patch(t.app, location, bytesOf(6, 6 * MiB), 0);
    const id = location.split('/').pop()!;
    const assembled = t.registry;
    const db = (assembled.metadata as SqliteMetadataStore).db;
    const tomorrow = createLifecycle(assembled, new SqliteLifecycleStore(db), { gracePeriodSeconds: 3600, untaggedManifestAgeSeconds: 0, uploadMaxAgeSeconds: 86_400, intervalSeconds: 0 }, {
      clock: () => Date.now() + 25 * 3600_000,
    });
    const report = await tomorrow.gc.run({ gracePeriodSeconds: 3600 });
    assert.ok(report.uploadsPurged.items.some((upload) => upload.id === id));
    assert.ok(!(await multipartUploads()).some((key) => key.includes(id)));
    assert.deepEqual(await keys(`uploads/${id}/`), []);
    assertError(await request(t.app).get(location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('refuses a wrong digest: nothing becomes visible and the upload is swept', async () => {
    const content = bytesOf(7, 6 * MiB);
    const location = await start(t.app, 's3/wrong');
    await patch(t.app, location, content, 0);
    const wrong = sha256('something else');
    assertError(await request(t.app).put(`${location}?digest=${wrong}`), 400, 'DIGEST_INVALID');
    const id = location.split('/').pop()!;
    assert.deepEqual(await keys(`uploads/${id}/`), []);
    assert.ok(!(await multipartUploads()).some((key) => key.includes(id)));
    for (const digest of [wrong, sha256(content)]) assert.deepEqual(await keys(`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`), []);
  });

  it('verifies a sha512 digest by reading the assembled upload once', async () => {
    const content = bytesOf(8, 6 * MiB + 7);
    const location = await start(t.app, 's3/sha512');
    await patch(t.app, location, content, 0);
    const digest = `sha512:${createHash('sha512').update(content).digest('hex')}`;
    assert.equal((await request(t.app).put(`${location}?digest=${digest}`)).status, 201);
    assert.ok(((await pulled(t.app, 's3/sha512', digest)).body as Buffer).equals(content));
  });

  it('answers HEAD from metadata, without asking S3', async () => {
    const content = Buffer.from('head from metadata');
    await request(t.app).post(`/v2/s3/head/blobs/uploads/?digest=${sha256(content)}`).set('Content-Type', 'application/octet-stream').send(content);
    // Point the registry's client at nothing: a HEAD that asked S3 would fail.
    const store = t.registry.store as unknown as { client: { send: unknown } };
    const send = store.client.send;
    store.client.send = () => Promise.reject(new Error('HEAD asked S3'));
    try {
      const head = await request(t.app).head(`/v2/s3/head/blobs/${sha256(content)}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(content.length));
    } finally {
      store.client.send = send;
    }
  });

  it('copies a blob above the single-copy limit to its content address in parts', async () => {
    const config = validateConfig({ storage: s3.storage(bucket, { partSize: '5MiB', prefix: `copy-${randomUUID().slice(0, 8)}` }) });
    const store = new S3BlobStore({ settings: config.storage.s3, client: createS3Client(config.storage.s3), copyLimit: PART, copyPartSize: PART });
    const content = bytesOf(9, 12 * MiB + 1);
    const id = randomUUID();
    let progress = await store.createUpload(id);
    progress = await store.appendUpload(id, progress, Readable.from([content]));
    await store.commitUpload(id, progress, sha256(content));
    const chunks: Buffer[] = [];
    for await (const chunk of await store.read(sha256(content), undefined, content.length)) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(content));
  });
});
