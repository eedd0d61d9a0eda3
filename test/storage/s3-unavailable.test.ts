/**
 * The object store out of reach (radosgw cut off behind a loopback relay, or hung): what needs
 * it answers 503 with Retry-After in the spec's error format, which clients retry, within
 * seconds, rather than a 500 or a hang; what the database answers alone (blob HEAD, manifest
 * PUT, manifest GET) keeps working; /readyz says not ready; garbage collection stops with a
 * clear error. Once the store is back, the same process serves again, an upload cut half-way
 * resumes, and everything stored before the cut is intact. Also: a commit cut between
 * completing the multipart upload and the copy that follows resumes, without ever storing
 * bytes that were not verified.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import request from 'supertest';
import { binaryParser, createTestApp, imageManifest, MEDIA, pushBlob, pushImage, pushManifest, sha256, type TestApp } from '../helpers/app.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const MiB = 1024 * 1024;
/** Long enough for the registry's own bounds (5 s) on a loaded machine; a hang fails the test instead of stalling it. */
const ANSWER_WITHIN_MS = 20_000;

/** `size` bytes that differ from KiB to KiB (and from seed to seed). */
function bytesOf(seed: number, size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 1024) bytes.fill((seed * 31 + i / 1024) % 251, i, Math.min(i + 1024, size));
  return bytes;
}

/** Asserts the answer of a store out of reach: 503, Retry-After, the spec's JSON error body (none for HEAD). */
function assertUnavailable(res: request.Response, what: string): void {
  assert.equal(res.status, 503, `${what}: ${res.status} ${res.text}`);
  assert.equal(res.headers['retry-after'], '1', what);
  if (res.request.method === 'HEAD') return;
  assert.match(String(res.headers['content-type']), /^application\/json/, what);
  const body = JSON.parse(Buffer.isBuffer(res.body) ? res.body.toString('utf8') : res.text) as { errors: Array<{ code: string; message: string }> };
  assert.equal(body.errors[0]?.code, 'UNKNOWN', what);
  assert.match(body.errors[0]!.message, /object store is unavailable/, what);
}

describe('the object store out of reach (radosgw behind a relay)', { skip: radosgwMissing ?? false }, () => {
  let s3: S3Server;
  let bucket: string;
  let relay: TcpProxy;
  let t: TestApp;

  before(async () => {
    s3 = await startRadosgw();
    bucket = await s3.createBucket();
    relay = await startTcpProxy(new URL(s3.endpoint).host);
    t = await createTestApp({ storage: s3.storage(bucket, { endpoint: `http://${relay.host}`, partSize: '5MiB' }) });
  });
  after(async () => {
    relay?.restore();
    await t?.close();
    await relay?.close();
    await s3?.stop();
  });

  const pull = (name: string, digest: string) => request(t.app).get(`/v2/${name}/blobs/${digest}`).timeout(ANSWER_WITHIN_MS).buffer(true).parse(binaryParser);
  const patch = (location: string, bytes: Buffer, offset: number) =>
    request(t.app)
      .patch(location)
      .timeout(ANSWER_WITHIN_MS)
      .set('Content-Type', 'application/octet-stream')
      .set('Content-Range', `${offset}-${offset + bytes.length - 1}`)
      .send(bytes);
  async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
    const started = performance.now();
    const result = await work();
    return { result, ms: Math.round(performance.now() - started) };
  }

  it('answers 503 with Retry-After while the store is cut off, and serves everything again once it is back', async (test) => {
    const image = await pushImage(t.app, 'team/app', 'v1');
    // Above the direct copy's threshold (1 MiB): pulled through the driver's own transport.
    const large = bytesOf(1, 3 * MiB);
    const largeBlob = await pushBlob(t.app, 'team/app', large);
    // An upload half-way: one 5 MiB part in the bucket and 1 MiB in its tail object.
    const first = bytesOf(2, 6 * MiB);
    const second = bytesOf(3, 6 * MiB);
    const started = await request(t.app).post('/v2/team/app/blobs/uploads/');
    assert.equal(started.status, 202);
    let location = String(started.headers.location);
    const patched = await patch(location, first, 0);
    assert.equal(patched.status, 202, patched.text);
    location = String(patched.headers.location);
    assert.equal((await request(t.app).get('/readyz')).status, 200);

    relay.cut();
    test.after(() => relay.restore());
    const small = await timed(() => pull('team/app', image.layer.digest));
    assertUnavailable(small.result, 'GET of a small blob');
    const direct = await timed(() => pull('team/app', largeBlob.digest));
    assertUnavailable(direct.result, 'GET of a large blob');
    const chunk = await timed(() => patch(location, second, first.length));
    assertUnavailable(chunk.result, 'PATCH');
    const whole = bytesOf(4, 64 * 1024);
    const monolithic = await request(t.app).post(`/v2/team/app/blobs/uploads/?digest=${sha256(whole)}`).timeout(ANSWER_WITHIN_MS).set('Content-Type', 'application/octet-stream').send(whole);
    assertUnavailable(monolithic, 'POST ?digest=');
    const finish = await request(t.app)
      .put(`${location}?digest=${sha256(Buffer.concat([first, second]))}`)
      .timeout(ANSWER_WITHIN_MS)
      .set('Content-Type', 'application/octet-stream')
      .send(second);
    assertUnavailable(finish, 'PUT with the last chunk');
    test.diagnostic(`store cut off: 503 after ${small.ms} ms (GET, small blob), ${direct.ms} ms (GET, 3 MiB blob), ${chunk.ms} ms (PATCH, 6 MiB)`);

    // What the database answers alone needs no object store (S3 writes objects whole: metadata tells).
    const head = await timed(() => request(t.app).head(`/v2/team/app/blobs/${image.layer.digest}`).timeout(ANSWER_WITHIN_MS));
    assert.equal(head.result.status, 200, 'blob HEAD is answered from metadata');
    test.diagnostic(`store cut off: blob HEAD 200 after ${head.ms} ms (no object store request)`);
    const v2 = await pushManifest(t.app, 'team/app', 'v2', imageManifest(image.config, [image.layer, largeBlob]));
    assert.equal((await request(t.app).get('/v2/team/app/manifests/v1').set('Accept', MEDIA.ociManifest)).status, 200);
    const status = await request(t.app).get(location);
    assert.equal(status.status, 204, 'the upload is still there');
    assert.equal(status.headers.range, `0-${first.length - 1}`, 'at the offset recorded before the cut: nothing half-written counts');

    const ready = await request(t.app).get('/readyz').timeout(ANSWER_WITHIN_MS);
    assert.equal(ready.status, 503);
    assert.match(String(ready.body.checks['blob storage']), /storage\.s3\.endpoint .*cannot reach bucket/);
    const gc = await request(t.app).post('/api/v1/gc').timeout(ANSWER_WITHIN_MS).send({ gracePeriodSeconds: 0 });
    assert.equal(gc.status, 503, gc.text);
    assert.equal(gc.headers['retry-after'], '1');
    assert.match(gc.body.errors[0].message, /^garbage collection stopped: the object store is unavailable/);

    relay.restore();
    assert.equal((await request(t.app).get('/readyz')).status, 200, 'ready again, without a restart');
    for (const blob of [image.config, image.layer, largeBlob]) {
      const res = await pull('team/app', blob.digest);
      assert.equal(res.status, 200, `${blob.digest}: ${res.status}`);
      assert.equal(sha256(res.body as Buffer), blob.digest, 'intact');
    }
    // The upload resumes where its record says.
    const resumed = await patch(location, second, first.length);
    assert.equal(resumed.status, 202, resumed.text);
    location = String(resumed.headers.location);
    const digest = sha256(Buffer.concat([first, second]));
    const done = await request(t.app).put(`${location}?digest=${digest}`);
    assert.equal(done.status, 201, done.text);
    assert.equal(sha256((await pull('team/app', digest)).body as Buffer), digest);
    const manifest = await request(t.app).get(`/v2/team/app/manifests/${v2.digest}`).set('Accept', MEDIA.ociManifest).buffer(true).parse(binaryParser);
    assert.equal(sha256(manifest.body as Buffer), v2.digest);
    const collected = await request(t.app).post('/api/v1/gc').send({ gracePeriodSeconds: 0 });
    assert.equal(collected.status, 200, collected.text);
    for (const blob of [image.config, image.layer, largeBlob]) assert.equal(sha256((await pull('team/app', blob.digest)).body as Buffer), blob.digest);
  });

  it('answers 503 within seconds when the store hangs (connections accepted, never answered)', async (test) => {
    const blob = await pushBlob(t.app, 'team/hung', bytesOf(5, 3 * MiB));
    const smallBlob = await pushBlob(t.app, 'team/hung', 'a small one');
    relay.stall();
    test.after(() => relay.restore());
    for (const [what, digest] of [['3 MiB blob', blob.digest], ['small blob', smallBlob.digest]] as const) {
      const { result, ms } = await timed(() => pull('team/hung', digest));
      assertUnavailable(result, `GET of a ${what} from a hung store`);
      test.diagnostic(`store hung: GET of a ${what} answered 503 after ${ms} ms`);
    }
    relay.restore();
    assert.equal(sha256((await pull('team/hung', blob.digest)).body as Buffer), blob.digest);
  });

  it('resumes a commit cut between completing the multipart upload and the copy, and never stores bytes that were not verified', async () => {
    const store = t.registry.store;
    const first = bytesOf(6, 6 * MiB);
    const last = bytesOf(7, 1000);
    /** An upload with one part and a tail, then completed (as the commit does) without its record learning of it. */
    async function completedBehindItsRecord(name: string): Promise<string> {
      const started = await request(t.app).post(`/v2/${name}/blobs/uploads/`);
      const patched = await patch(String(started.headers.location), first, 0);
      assert.equal(patched.status, 202, patched.text);
      const location = String(patched.headers.location);
      const id = location.split('/').pop()!;
      const record = (await t.registry.metadata.getUpload(id))!;
      const appended = await store.appendUpload(id, record, Readable.from([last]));
      await store.readUpload(id, appended); // completes the multipart upload; the store is "cut" before the record is saved
      return location;
    }

    // The client sends its last chunk again: the upload completes from what is in the bucket.
    const again = await completedBehindItsRecord('team/resume');
    const digest = sha256(Buffer.concat([first, last]));
    const done = await request(t.app).put(`${again}?digest=${digest}`).set('Content-Type', 'application/octet-stream').send(last);
    assert.equal(done.status, 201, done.text);
    assert.equal(sha256((await pull('team/resume', digest)).body as Buffer), digest);

    // Other bytes of the same length: the completed object is not theirs, so it is not stored under their digest.
    const other = await completedBehindItsRecord('team/other');
    const changed = Buffer.from(last).fill(9, 0, 10);
    const otherDigest = sha256(Buffer.concat([first, changed]));
    const refused = await request(t.app).put(`${other}?digest=${otherDigest}`).set('Content-Type', 'application/octet-stream').send(changed);
    assert.equal(refused.status, 404, refused.text);
    assert.equal(refused.body.errors[0].code, 'BLOB_UPLOAD_UNKNOWN');
    const stored = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `blobs/sha256/${otherDigest.slice(7, 9)}/${otherDigest.slice(7)}` }));
    assert.equal(stored.KeyCount ?? 0, 0, 'nothing under the unverified digest');
  });
});
