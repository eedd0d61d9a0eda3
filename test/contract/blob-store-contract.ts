/**
 * The contract every BlobStore driver must meet, written once and run against each driver
 * (filesystem and S3), so that the registry domain
 * can rely on the port's promises and not on one driver's habits.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isRegistryError } from '../../src/registry/errors.js';
import type { BlobStore, UploadProgress } from '../../src/registry/ports.js';

export interface BlobStoreFixture {
  store: BlobStore;
  /** Releases whatever the store holds (temporary folders, buckets). */
  cleanup(): Promise<void>;
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listAll(store: BlobStore): Promise<string[]> {
  const digests: string[] = [];
  for await (const blob of store.list()) digests.push(blob.digest);
  return digests;
}

async function listUploadIds(store: BlobStore): Promise<string[]> {
  const ids: string[] = [];
  for await (const upload of store.listUploads()) ids.push(upload.id);
  return ids;
}

/** A stream that yields `bytes`, then fails (a client that hung up). */
function failingAfter(bytes: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield bytes;
      throw new Error('client went away');
    })(),
  );
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isRegistryError(error), `expected a RegistryError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** `skip`: why the driver cannot be tested here (its server is missing), printed instead of running. */
export function blobStoreContract(name: string, makeStore: () => Promise<BlobStoreFixture>, skip: string | false = false): void {
  describe(`BlobStore contract: ${name}`, { skip }, () => {
    let fixture: BlobStoreFixture;
    let store: BlobStore;
    before(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });
    after(() => fixture.cleanup());

    /** Appends each piece in its own call (as PATCH requests do); returns the final progress. */
    async function appendAll(id: string, pieces: Buffer[], observe?: (chunk: Buffer) => void): Promise<UploadProgress> {
      let progress = await store.createUpload(id);
      for (const piece of pieces) progress = await store.appendUpload(id, progress, Readable.from([piece]), observe);
      return progress;
    }

    /** Uploads `bytes` in the given pieces and commits them under their digest. */
    async function putBlob(bytes: Buffer, pieces: Buffer[] = [bytes]): Promise<string> {
      const id = randomUUID();
      const progress = await appendAll(id, pieces);
      const digest = sha256(bytes);
      await store.commitUpload(id, progress, digest);
      return digest;
    }

    async function readBack(id: string, progress: UploadProgress): Promise<Buffer> {
      return collect((await store.readUpload(id, progress)).stream);
    }

    describe('uploads', () => {
      it('creates an empty upload', async () => {
        const progress = await store.createUpload(randomUUID());
        assert.equal(progress.size, 0);
      });

      it('appends streams in order, resolving with the new progress and showing every byte to observe', async () => {
        const id = randomUUID();
        let progress = await store.createUpload(id);
        const observed: Buffer[] = [];
        const observe = (chunk: Buffer) => observed.push(Buffer.from(chunk));
        progress = await store.appendUpload(id, progress, Readable.from([Buffer.from('hello '), Buffer.from('there ')]), observe);
        assert.equal(progress.size, 12);
        progress = await store.appendUpload(id, progress, Readable.from([Buffer.from('world')]), observe);
        assert.equal(progress.size, 17);
        assert.equal(Buffer.concat(observed).toString(), 'hello there world');
        assert.equal((await readBack(id, progress)).toString(), 'hello there world');
      });

      it('appends an empty stream without changing the size', async () => {
        const id = randomUUID();
        const progress = await appendAll(id, [Buffer.from('abc')]);
        assert.equal((await store.appendUpload(id, progress, Readable.from([]))).size, 3);
      });

      it('keeps nothing of a failed append: the next one continues from the progress before it', async () => {
        const id = randomUUID();
        const progress = await appendAll(id, [Buffer.from('kept ')]);
        await assert.rejects(store.appendUpload(id, progress, failingAfter(Buffer.from('lost bytes'))));
        const after = await store.appendUpload(id, progress, Readable.from([Buffer.from('and more')]));
        assert.equal(after.size, 'kept and more'.length);
        const digest = sha256(Buffer.from('kept and more'));
        await store.commitUpload(id, after, digest);
        assert.equal((await collect(await store.read(digest))).toString(), 'kept and more');
      });

      it('continues an upload from its progress alone, as another process would', async () => {
        const id = randomUUID();
        const progress = await appendAll(id, [Buffer.from('first ')]);
        // Only the JSON-able progress crosses to the next call: no state may hide in the driver.
        const carried = JSON.parse(JSON.stringify(progress)) as UploadProgress;
        const after = await store.appendUpload(id, carried, Readable.from([Buffer.from('second')]));
        assert.equal((await readBack(id, after)).toString(), 'first second');
      });

      it('deletes an upload, and deleting it again is harmless', async () => {
        const id = randomUUID();
        const progress = await appendAll(id, [Buffer.from('discard me')]);
        assert.ok((await listUploadIds(store)).includes(id));
        await store.deleteUpload(id, progress);
        assert.ok(!(await listUploadIds(store)).includes(id));
        await store.deleteUpload(id, progress);
      });

      it('lists upload data with its size and age, and deletes it without a record', async () => {
        const id = randomUUID();
        const before = Date.now();
        await appendAll(id, [Buffer.from('stray upload data')]);
        const listed = [];
        for await (const upload of store.listUploads()) if (upload.id === id) listed.push(upload);
        assert.equal(listed.length, 1);
        assert.equal(listed[0]!.size, 'stray upload data'.length);
        assert.ok(listed[0]!.modifiedAt >= before - 2_000 && listed[0]!.modifiedAt <= Date.now() + 2_000, 'modifiedAt is now-ish');
        await store.deleteUpload(id, null);
        assert.ok(!(await listUploadIds(store)).includes(id));
      });
    });

    describe('commit', () => {
      it('makes the blob visible under its digest only once committed', async () => {
        const bytes = Buffer.from(`committed ${randomUUID()}`);
        const digest = sha256(bytes);
        const id = randomUUID();
        const progress = await appendAll(id, [bytes]);
        assert.equal(await store.stat(digest), null);
        await rejectsWithCode(store.read(digest), 'BLOB_UNKNOWN');
        assert.ok(!(await listAll(store)).includes(digest));

        await store.commitUpload(id, progress, digest);
        assert.deepEqual(await store.stat(digest), { size: bytes.length });
        assert.ok(bytes.equals(await collect(await store.read(digest))));
        assert.ok((await listAll(store)).includes(digest));
        assert.ok(!(await listUploadIds(store)).includes(id), 'the upload is gone once committed');
      });

      it('commits content appended in several pieces as one blob', async () => {
        const bytes = Buffer.from(`one two three ${randomUUID()}`);
        const digest = await putBlob(bytes, [bytes.subarray(0, 4), bytes.subarray(4, 8), bytes.subarray(8)]);
        assert.ok(bytes.equals(await collect(await store.read(digest))));
      });

      it('commits an empty blob', async () => {
        const digest = await putBlob(Buffer.alloc(0));
        assert.deepEqual(await store.stat(digest), { size: 0 });
        assert.equal((await collect(await store.read(digest))).length, 0);
      });

      it('commits under a sha512 digest, hashing what readUpload gives', async () => {
        const bytes = Buffer.from(`sha512 ${randomUUID()}`);
        const id = randomUUID();
        const progress = await appendAll(id, [bytes]);
        const read = await store.readUpload(id, progress);
        const digest = `sha512:${createHash('sha512').update(await collect(read.stream)).digest('hex')}`;
        assert.equal(digest, `sha512:${createHash('sha512').update(bytes).digest('hex')}`);
        await store.commitUpload(id, read.progress, digest);
        assert.ok(bytes.equals(await collect(await store.read(digest))));
      });

      it('lists committed blobs with their size and last write', async () => {
        const bytes = Buffer.from(`listed ${randomUUID()}`);
        const before = Date.now();
        const digest = await putBlob(bytes);
        let found;
        for await (const blob of store.list()) if (blob.digest === digest) found = blob;
        assert.equal(found?.size, bytes.length);
        assert.ok(found!.modifiedAt >= before - 2_000 && found!.modifiedAt <= Date.now() + 2_000, 'modifiedAt is now-ish');
      });

      it('leaves an already stored blob untouched and discards the new upload', async () => {
        const original = Buffer.from(`original ${randomUUID()}`);
        const digest = await putBlob(original);
        const id = randomUUID();
        const progress = await appendAll(id, [Buffer.from('impostor content of another length')]);
        await store.commitUpload(id, progress, digest);
        assert.deepEqual(await store.stat(digest), { size: original.length });
        assert.ok(original.equals(await collect(await store.read(digest))));
        assert.ok(!(await listUploadIds(store)).includes(id));
      });
    });

    describe('reads', () => {
      let digest: string;
      before(async () => {
        digest = await putBlob(Buffer.from('0123456789'));
      });

      it('reads an inclusive byte range', async () => {
        assert.equal((await collect(await store.read(digest, { start: 2, end: 5 }))).toString(), '2345');
      });

      it('reads a single byte, the first and the last', async () => {
        assert.equal((await collect(await store.read(digest, { start: 0, end: 0 }))).toString(), '0');
        assert.equal((await collect(await store.read(digest, { start: 9, end: 9 }))).toString(), '9');
      });

      it('reads the whole blob as a range', async () => {
        assert.equal((await collect(await store.read(digest, { start: 0, end: 9 }))).toString(), '0123456789');
      });

      it('rejects reading a missing blob with BLOB_UNKNOWN', async () => {
        await rejectsWithCode(store.read(sha256(Buffer.from(`missing ${randomUUID()}`))), 'BLOB_UNKNOWN');
      });

      it('reports no stat for a missing blob', async () => {
        assert.equal(await store.stat(sha256(Buffer.from(`missing ${randomUUID()}`))), null);
      });
    });

    describe('send', () => {
      // More than one chunk of any sensible driver buffer, ending in a partial one.
      const big = Buffer.alloc(5 * 1024 * 1024 + 12345);
      for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
      let bigDigest: string;
      before(async () => {
        bigDigest = await putBlob(big);
      });

      /**
       * A slow sink that reads each chunk only when it calls back (as a socket finishes with
       * it), so a driver that reused a buffer before the callback would be caught.
       */
      function slowSink(): { sink: Writable; received: () => Buffer } {
        const parts: Buffer[] = [];
        const sink = new Writable({
          highWaterMark: 1,
          write(chunk: Buffer, _encoding, callback) {
            setTimeout(() => {
              parts.push(Buffer.from(chunk));
              callback();
            }, 1);
          },
        });
        return { sink, received: () => Buffer.concat(parts) };
      }

      it('writes the whole blob, reporting every byte handed over', async () => {
        const { sink, received } = slowSink();
        let counted = 0;
        await store.send(bigDigest, sink, { onBytes: (bytes) => (counted += bytes) });
        assert.equal(counted, big.length);
        assert.ok(received().equals(big), 'the bytes sent are the blob');
        assert.equal(sink.writableEnded, false, 'the caller ends the sink');
      });

      it('writes a range across chunk boundaries', async () => {
        const { sink, received } = slowSink();
        const range = { start: 1024 * 1024 - 7, end: 3 * 1024 * 1024 + 7 };
        await store.send(bigDigest, sink, { range, expectedSize: big.length });
        assert.ok(received().equals(big.subarray(range.start, range.end + 1)));
      });

      it('refuses a blob of another size than expected before writing anything', async () => {
        const { sink, received } = slowSink();
        await rejectsWithCode(store.send(bigDigest, sink, { expectedSize: big.length + 1 }), 'BLOB_UNKNOWN');
        assert.equal(received().length, 0);
      });

      it('rejects sending a missing blob with BLOB_UNKNOWN', async () => {
        const { sink } = slowSink();
        await rejectsWithCode(store.send(sha256(Buffer.from(`missing ${randomUUID()}`)), sink), 'BLOB_UNKNOWN');
      });

      it('rejects when the sink is destroyed part-way', async () => {
        const { sink } = slowSink();
        let counted = 0;
        const sending = store.send(bigDigest, sink, {
          onBytes: (bytes) => {
            counted += bytes;
            if (counted > 1024 * 1024) sink.destroy();
          },
        });
        await assert.rejects(sending);
        assert.ok(counted < big.length, 'it stopped early');
      });

      it('sends an empty blob as nothing', async () => {
        const empty = await putBlob(Buffer.alloc(0));
        const { sink, received } = slowSink();
        await store.send(empty, sink, { expectedSize: 0 });
        assert.equal(received().length, 0);
      });
    });

    describe('delete and list', () => {
      it('deletes a blob: true, then gone from stat, read and list; false the second time', async () => {
        const digest = await putBlob(Buffer.from(`to delete ${randomUUID()}`));
        assert.equal(await store.delete(digest), true);
        assert.equal(await store.stat(digest), null);
        await rejectsWithCode(store.read(digest), 'BLOB_UNKNOWN');
        assert.ok(!(await listAll(store)).includes(digest));
        assert.equal(await store.delete(digest), false);
      });

      it('lists every committed blob once, and no uploads in progress', async () => {
        const committed = [await putBlob(Buffer.from(`list a ${randomUUID()}`)), await putBlob(Buffer.from(`list b ${randomUUID()}`))];
        await appendAll(randomUUID(), [Buffer.from('pending')]);
        const listed = await listAll(store);
        for (const digest of committed) assert.equal(listed.filter((d) => d === digest).length, 1);
        assert.ok(!listed.includes(sha256(Buffer.from('pending'))));
        for (const digest of listed) assert.match(digest, /^sha(256|512):[a-f0-9]+$/);
      });
    });

    describe('path safety', () => {
      const unsafeDigests = ['../../../etc/passwd', 'sha256:../../x', `sha256:${'a'.repeat(63)}/`, 'sha256:', `../sha256:${'a'.repeat(64)}`];
      const unsafeIds = ['../escape', 'a/b', '..', '', 'x'.repeat(65), 'id with space'];

      it('rejects unsafe digests in stat, read, delete and commit', async () => {
        const id = randomUUID();
        const progress = await store.createUpload(id);
        for (const digest of unsafeDigests) {
          await assert.rejects(store.stat(digest), `stat ${digest}`);
          await assert.rejects(store.read(digest), `read ${digest}`);
          await assert.rejects(store.delete(digest), `delete ${digest}`);
          await assert.rejects(store.commitUpload(id, progress, digest), `commit ${digest}`);
        }
      });

      it('rejects unsafe upload ids everywhere', async () => {
        const progress = { size: 0, driverState: null };
        for (const id of unsafeIds) {
          await assert.rejects(store.createUpload(id), `create ${id}`);
          await assert.rejects(store.appendUpload(id, progress, Readable.from([Buffer.from('x')])), `append ${id}`);
          await assert.rejects(store.readUpload(id, progress), `read ${id}`);
          await assert.rejects(store.deleteUpload(id, progress), `delete ${id}`);
          await assert.rejects(store.commitUpload(id, progress, sha256(Buffer.from('x'))), `commit ${id}`);
        }
      });
    });
  });
}
