/**
 * `/v2/<name>/blobs/uploads/`: starting sessions (plain, monolithic `?digest=`, `?mount=`),
 * streamed and chunked PATCH, completing PUT, status GET and cancelling DELETE.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { assertError, binaryParser, createTestApp, pushBlob, sendChunked, sha256, type TestApp } from '../helpers/app.js';
import { blobFile } from '../lifecycle/helpers.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

for (const backend of METADATA_BACKENDS) describe(`uploads (${backend.name})`, { skip: backend.skip }, () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ metadata: await backend.metadataConfig() });
  });
  after(() => t.close());

  /** Starts a session and returns its Location. */
  async function start(name: string): Promise<string> {
    const res = await request(t.app).post(`/v2/${name}/blobs/uploads/`).set('Content-Length', '0');
    assert.equal(res.status, 202, res.text);
    return String(res.headers.location);
  }

  /** GETs a blob's bytes from a repository, asserting 200. */
  async function blobBytes(name: string, digest: string): Promise<Buffer> {
    const res = await request(t.app).get(`/v2/${name}/blobs/${digest}`).buffer(true).parse(binaryParser);
    assert.equal(res.status, 200, `GET ${digest}: ${res.status}`);
    return res.body as Buffer;
  }

  describe('POST (start a session)', () => {
    it('answers 202 with a Location holding the session UUID, Docker-Upload-UUID and Range 0-0', async () => {
      const res = await request(t.app).post('/v2/library/alpine/blobs/uploads/');
      assert.equal(res.status, 202);
      const uuid = String(res.headers['docker-upload-uuid']);
      assert.match(uuid, UUID);
      assert.equal(res.headers.location, `/v2/library/alpine/blobs/uploads/${uuid}`);
      assert.equal(res.headers.range, '0-0');
      assert.equal(res.headers['content-length'], '0');
    });

    it('gives every session its own UUID', async () => {
      assert.notEqual(await start('library/alpine'), await start('library/alpine'));
    });

    it('answers 400 NAME_INVALID for an invalid repository name', async () => {
      assertError(await request(t.app).post('/v2/Library/Alpine/blobs/uploads/'), 400, 'NAME_INVALID');
    });
  });

  describe('monolithic POST ?digest=', () => {
    it('answers 201 with Location and Docker-Content-Digest, and the blob is readable', async () => {
      const content = Buffer.from('monolithic blob');
      const digest = sha256(content);
      const res = await request(t.app)
        .post(`/v2/mono/repo/blobs/uploads/?digest=${digest}`)
        .set('Content-Type', 'application/octet-stream')
        .send(content);
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/mono/repo/blobs/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.ok(content.equals(await blobBytes('mono/repo', digest)));
    });

    it('accepts an empty blob', async () => {
      const digest = sha256('');
      const res = await request(t.app).post(`/v2/mono/empty/blobs/uploads/?digest=${digest}`).send(Buffer.alloc(0));
      assert.equal(res.status, 201);
      const head = await request(t.app).head(`/v2/mono/empty/blobs/${digest}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '0');
    });

    it('verifies sha512 digests too', async () => {
      const content = Buffer.from('hashed with sha512');
      const digest = `sha512:${createHash('sha512').update(content).digest('hex')}`;
      const res = await request(t.app).post(`/v2/mono/sha512/blobs/uploads/?digest=${digest}`).send(content);
      assert.equal(res.status, 201);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.ok(content.equals(await blobBytes('mono/sha512', digest)));
    });

    it('answers 400 DIGEST_INVALID when the content does not match, and stores nothing', async () => {
      const wrong = sha256('something else');
      assertError(
        await request(t.app).post(`/v2/mono/wrong/blobs/uploads/?digest=${wrong}`).send(Buffer.from('actual content')),
        400,
        'DIGEST_INVALID',
      );
      assert.equal((await request(t.app).head(`/v2/mono/wrong/blobs/${wrong}`)).status, 404);
      assert.equal((await request(t.app).head(`/v2/mono/wrong/blobs/${sha256('actual content')}`)).status, 404);
    });

    it('answers 400 DIGEST_INVALID for a malformed digest', async () => {
      assertError(await request(t.app).post('/v2/mono/repo/blobs/uploads/?digest=sha256:xyz').send('x'), 400, 'DIGEST_INVALID');
    });

    it('leaves a blob that is already stored untouched when it is pushed again', async () => {
      const content = Buffer.from('pushed twice');
      await pushBlob(t.app, 'mono/first', content);
      const stored = await fs.stat(blobFile(t.root, sha256(content)));
      await pushBlob(t.app, 'mono/second', content);
      const after = await fs.stat(blobFile(t.root, sha256(content)));
      assert.deepEqual([after.ino, after.mtimeMs], [stored.ino, stored.mtimeMs], 'the stored file was neither replaced nor rewritten');
      assert.ok(content.equals(await blobBytes('mono/first', sha256(content))));
      assert.ok(content.equals(await blobBytes('mono/second', sha256(content))));
    });
  });

  describe('streamed upload (PATCH without Content-Range, then PUT)', () => {
    it('appends each PATCH body, reports the Range, and completes with PUT ?digest=', async () => {
      const location = await start('stream/repo');
      const first = await request(t.app).patch(location).set('Content-Type', 'application/octet-stream').send(Buffer.from('hello '));
      assert.equal(first.status, 202);
      assert.equal(first.headers.range, '0-5');
      assert.equal(first.headers.location, location);
      assert.equal(first.headers['docker-upload-uuid'], location.split('/').pop());
      const second = await request(t.app).patch(String(first.headers.location)).send(Buffer.from('world'));
      assert.equal(second.status, 202);
      assert.equal(second.headers.range, '0-10');

      const digest = sha256('hello world');
      const done = await request(t.app).put(`${second.headers.location}?digest=${digest}`);
      assert.equal(done.status, 201);
      assert.equal(done.headers.location, `/v2/stream/repo/blobs/${digest}`);
      assert.equal(done.headers['docker-content-digest'], digest);
      assert.equal((await blobBytes('stream/repo', digest)).toString(), 'hello world');
    });

    it('accepts a PATCH streamed without Content-Length (chunked transfer), as Docker sends layers', async () => {
      const location = await start('stream/chunked');
      const pieces = ['layer ', 'streamed ', 'in pieces'].map((p) => Buffer.from(p));
      const patched = await sendChunked(t.app, { method: 'PATCH', path: location, headers: { 'Content-Type': 'application/octet-stream' } }, pieces);
      assert.equal(patched.status, 202);
      assert.equal(patched.headers.range, `0-${Buffer.concat(pieces).length - 1}`);
      const digest = sha256(Buffer.concat(pieces));
      assert.equal((await request(t.app).put(`${location}?digest=${digest}`)).status, 201);
      assert.equal((await blobBytes('stream/chunked', digest)).toString(), 'layer streamed in pieces');
    });

    it('ends the session once completed', async () => {
      const location = await start('stream/repo');
      await request(t.app).patch(location).send(Buffer.from('once'));
      assert.equal((await request(t.app).put(`${location}?digest=${sha256('once')}`)).status, 201);
      assertError(await request(t.app).get(location), 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });

  describe('chunked upload (PATCH with Content-Range)', () => {
    function chunk(location: string, start: number, bytes: string) {
      return request(t.app)
        .patch(location)
        .set('Content-Type', 'application/octet-stream')
        .set('Content-Range', `${start}-${start + bytes.length - 1}`)
        .send(Buffer.from(bytes));
    }

    it('accepts in-order chunks, answering each with 202 and the Range received so far', async () => {
      const location = await start('chunked/repo');
      const a = await chunk(location, 0, 'abc');
      assert.equal(a.status, 202);
      assert.equal(a.headers.range, '0-2');
      const b = await chunk(String(a.headers.location), 3, 'defg');
      assert.equal(b.status, 202);
      assert.equal(b.headers.range, '0-6');
      const digest = sha256('abcdefg');
      assert.equal((await request(t.app).put(`${b.headers.location}?digest=${digest}`)).status, 201);
      assert.equal((await blobBytes('chunked/repo', digest)).toString(), 'abcdefg');
    });

    it('answers 416 with the current Range to a chunk that skips ahead, and keeps the session usable', async () => {
      const location = await start('chunked/repo');
      await chunk(location, 0, 'abc');
      const gap = await chunk(location, 5, 'xyz');
      assert.equal(gap.status, 416);
      assert.equal(gap.body.errors[0].code, 'BLOB_UPLOAD_INVALID');
      assert.equal(gap.headers.range, '0-2');
      assert.equal(gap.headers.location, undefined);
      assert.ok(Array.isArray((gap.body as { errors?: unknown }).errors));
      assert.equal((await chunk(location, 3, 'def')).status, 202);
      assert.equal((await request(t.app).put(`${location}?digest=${sha256('abcdef')}`)).status, 201);
    });

    it('answers 416 to a chunk overlapping bytes already received', async () => {
      const location = await start('chunked/repo');
      await chunk(location, 0, 'abcd');
      const overlap = await chunk(location, 2, 'cdef');
      assert.equal(overlap.status, 416);
      assert.equal(overlap.headers.range, '0-3');
      const status = await request(t.app).get(location);
      assert.equal(status.headers.range, '0-3');
    });

    it('answers 416 to a first chunk that does not start at 0', async () => {
      const location = await start('chunked/repo');
      const res = await chunk(location, 1, 'abc');
      assert.equal(res.status, 416);
      assert.equal(res.headers.range, '0-0');
    });

    it('answers 416 when Content-Range disagrees with Content-Length', async () => {
      const location = await start('chunked/repo');
      const res = await request(t.app).patch(location).set('Content-Range', '0-9').send(Buffer.from('abc'));
      assert.equal(res.status, 416);
    });

    it('answers 400 BLOB_UPLOAD_INVALID with the Range kept when fewer bytes arrive than Content-Range declared', async () => {
      const location = await start('chunked/repo');
      const short = await sendChunked(
        t.app,
        { method: 'PATCH', path: location, headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '0-9' } },
        [Buffer.from('abc')],
      );
      assert.equal(short.status, 400);
      assert.equal(JSON.parse(short.body).errors[0].code, 'BLOB_UPLOAD_INVALID');
      assert.equal(short.headers.range, '0-2');
    });

    it('accepts the last chunk in the completing PUT', async () => {
      const location = await start('chunked/repo');
      await chunk(location, 0, 'first-');
      const digest = sha256('first-last');
      const done = await request(t.app)
        .put(`${location}?digest=${digest}`)
        .set('Content-Type', 'application/octet-stream')
        .set('Content-Range', '6-9')
        .send(Buffer.from('last'));
      assert.equal(done.status, 201);
      assert.equal((await blobBytes('chunked/repo', digest)).toString(), 'first-last');
    });

    it('accepts the whole blob in the PUT after an empty POST (POST then PUT)', async () => {
      const location = await start('chunked/repo');
      const digest = sha256('all at once');
      const done = await request(t.app).put(`${location}?digest=${digest}`).send(Buffer.from('all at once'));
      assert.equal(done.status, 201);
      assert.equal((await blobBytes('chunked/repo', digest)).toString(), 'all at once');
    });
  });

  describe('after a restart', () => {
    it('resumes a chunked upload: the status survives and the digest covers bytes from before and after', async () => {
      const location = await start('restart/repo');
      await request(t.app).patch(location).set('Content-Range', '0-5').send(Buffer.from('before'));
      const restarted = await t.restart();
      const status = await request(restarted).get(location);
      assert.equal(status.status, 204);
      assert.equal(status.headers.range, '0-5');
      assert.equal((await request(restarted).patch(location).set('Content-Range', '6-11').send(Buffer.from('+after'))).status, 202);
      const digest = sha256('before+after');
      assert.equal((await request(restarted).put(`${location}?digest=${digest}`)).status, 201);
      assert.equal((await request(restarted).get(`/v2/restart/repo/blobs/${digest}`).buffer(true).parse(binaryParser)).body.toString(), 'before+after');
    });
  });

  describe('cancel against complete (one wins cleanly, never 5xx)', () => {
    /** Holds the next call of a BlobStore method until released; `entered` settles when it is called. */
    function gate(method: 'commitUpload' | 'deleteUpload') {
      const store = t.registry.store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      const original = store[method]!;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let entered!: () => void;
      const reached = new Promise<void>((resolve) => (entered = resolve));
      store[method] = async (...args: unknown[]) => {
        store[method] = original;
        entered();
        await released;
        return original.apply(t.registry.store, args);
      };
      return { entered: reached, release };
    }

    it('a cancel arriving while the upload commits waits, and finds it gone: 201 then 404 BLOB_UPLOAD_UNKNOWN', async () => {
      const location = await start('race/cancel-late');
      await request(t.app).patch(location).send(Buffer.from('committing'));
      const commit = gate('commitUpload');
      const completing = request(t.app).put(`${location}?digest=${sha256('committing')}`).then((res) => res);
      await commit.entered;
      const cancelling = request(t.app).delete(location).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the cancel is waiting for the lease
      commit.release();
      const [completed, cancelled] = await Promise.all([completing, cancelling]);
      assert.equal(completed.status, 201, completed.text);
      assertError(cancelled, 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.equal((await blobBytes('race/cancel-late', sha256('committing'))).toString(), 'committing');
    });

    it('a complete arriving while the upload is cancelled waits, and finds it gone: 204 then 404 BLOB_UPLOAD_UNKNOWN', async () => {
      const location = await start('race/complete-late');
      await request(t.app).patch(location).send(Buffer.from('cancelled'));
      const removal = gate('deleteUpload');
      const cancelling = request(t.app).delete(location).then((res) => res);
      await removal.entered;
      const completing = request(t.app).put(`${location}?digest=${sha256('cancelled')}`).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100));
      removal.release();
      const [cancelled, completed] = await Promise.all([cancelling, completing]);
      assert.equal(cancelled.status, 204, cancelled.text);
      assertError(completed, 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.equal((await request(t.app).head(`/v2/race/complete-late/blobs/${sha256('cancelled')}`)).status, 404, 'nothing of the cancelled upload is visible');
    });
  });

  describe('GET (status)', () => {
    it('answers 204 with Location, Docker-Upload-UUID and the Range received', async () => {
      const location = await start('status/repo');
      await request(t.app).patch(location).send(Buffer.from('12345'));
      const res = await request(t.app).get(location);
      assert.equal(res.status, 204);
      assert.equal(res.headers.location, location);
      assert.equal(res.headers['docker-upload-uuid'], location.split('/').pop());
      assert.equal(res.headers.range, '0-4');
    });

    it('answers 404 BLOB_UPLOAD_UNKNOWN for an unknown session id', async () => {
      assertError(
        await request(t.app).get('/v2/status/repo/blobs/uploads/00000000-0000-4000-8000-000000000000'),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      assertError(await request(t.app).get('/v2/status/repo/blobs/uploads/not-a-uuid'), 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });

  describe('DELETE (cancel)', () => {
    it('answers 204, after which the session is 404 BLOB_UPLOAD_UNKNOWN', async () => {
      const location = await start('cancel/repo');
      await request(t.app).patch(location).send(Buffer.from('partial'));
      assert.equal((await request(t.app).delete(location)).status, 204);
      assertError(await request(t.app).get(location), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await request(t.app).patch(location).send(Buffer.from('more')), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await request(t.app).delete(location), 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });

  describe('PUT (complete) errors', () => {
    it('answers 400 DIGEST_INVALID to a wrong digest, exposes nothing, and ends the session', async () => {
      const location = await start('wrong/repo');
      await request(t.app).patch(location).send(Buffer.from('real bytes'));
      const claimed = sha256('claimed bytes');
      assertError(await request(t.app).put(`${location}?digest=${claimed}`), 400, 'DIGEST_INVALID');
      assert.equal((await request(t.app).head(`/v2/wrong/repo/blobs/${claimed}`)).status, 404);
      assert.equal((await request(t.app).head(`/v2/wrong/repo/blobs/${sha256('real bytes')}`)).status, 404);
      assertError(await request(t.app).get(location), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('answers 400 DIGEST_INVALID when the digest parameter is missing', async () => {
      const location = await start('wrong/repo');
      assertError(await request(t.app).put(location).send(Buffer.from('x')), 400, 'DIGEST_INVALID');
    });
  });

  describe('a session of another repository', () => {
    it('is 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH, PUT and DELETE, and stays usable where it belongs', async () => {
      const location = await start('owner/repo');
      const foreign = location.replace('/v2/owner/repo/', '/v2/intruder/repo/');
      assertError(await request(t.app).get(foreign), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await request(t.app).patch(foreign).send(Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await request(t.app).put(`${foreign}?digest=${sha256('x')}`).send(Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await request(t.app).delete(foreign), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.equal((await request(t.app).get(location)).status, 204);
    });
  });

  describe('mount (POST ?mount=)', () => {
    it('mounts from the named repository: 201 with Location and Docker-Content-Digest', async () => {
      const blob = await pushBlob(t.app, 'mount/source', 'mountable');
      const res = await request(t.app).post(`/v2/mount/target/blobs/uploads/?mount=${blob.digest}&from=mount/source`);
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/mount/target/blobs/${blob.digest}`);
      assert.equal(res.headers['docker-content-digest'], blob.digest);
      assert.equal((await blobBytes('mount/target', blob.digest)).toString(), 'mountable');
    });

    it('starts an upload session (202) when the named repository lacks the blob', async () => {
      const blob = await pushBlob(t.app, 'mount/holder', 'held elsewhere');
      const res = await request(t.app).post(`/v2/mount/target2/blobs/uploads/?mount=${blob.digest}&from=mount/empty`);
      assert.equal(res.status, 202);
      assert.match(String(res.headers['docker-upload-uuid']), UUID);
      assert.equal(res.headers.location, `/v2/mount/target2/blobs/uploads/${res.headers['docker-upload-uuid']}`);
      assertError(await request(t.app).get(`/v2/mount/target2/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
    });

    it('mounts without from when another repository holds the blob', async () => {
      const blob = await pushBlob(t.app, 'mount/anywhere', 'found without from');
      const res = await request(t.app).post(`/v2/mount/target3/blobs/uploads/?mount=${blob.digest}`);
      assert.equal(res.status, 201);
      assert.equal(res.headers['docker-content-digest'], blob.digest);
      assert.equal((await blobBytes('mount/target3', blob.digest)).toString(), 'found without from');
    });

    it('starts an upload session (202) when no repository holds the blob', async () => {
      const res = await request(t.app).post(`/v2/mount/target4/blobs/uploads/?mount=${sha256('nowhere')}`);
      assert.equal(res.status, 202);
      assert.match(String(res.headers['docker-upload-uuid']), UUID);
    });

    it('answers 400 DIGEST_INVALID for a malformed mount digest', async () => {
      assertError(await request(t.app).post('/v2/mount/target/blobs/uploads/?mount=sha256:nope&from=mount/source'), 400, 'DIGEST_INVALID');
    });
  });
});
