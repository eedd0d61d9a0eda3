/**
 * Pulls from S3 (a real radosgw): large blobs are copied into the client's connection through
 * reused buffers (src/storage/s3/object-copy.ts) and the copy holds no more than its two
 * buffers when the client is slow; a connection cut part-way, a client hanging up, a damaged
 * or missing object each end the send cleanly; and blob HEADs never reach the object store.
 * The object store sits behind a TCP proxy so the tests can see and cut what passes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import { isRegistryError } from '../../src/registry/errors.js';
import { S3BlobStore } from '../../src/storage/s3/blob-store.js';
import { createS3Client } from '../../src/storage/s3/client.js';
import { createTestApp, pushBlob } from '../helpers/app.js';
import { makeCertificates } from '../helpers/certificates.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';
import { startServer } from '../helpers/server-process.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { hasCommand } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const PREFIX = 'reads/';

function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** `size` bytes that differ from KiB to KiB, so a misplaced or repeated buffer shows. */
function patterned(size: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) bytes.writeUInt32LE(((i >>> 10) * 2654435761 + seed) >>> 0, i);
  bytes.fill(seed & 0xff, size - (size % 4));
  return bytes;
}

/**
 * A sink that keeps each chunk and calls back only when `release` lets it (or at once when
 * `hold` is false): as a socket that has not yet taken the bytes, so a copy that reused a
 * buffer before the callback would corrupt what it kept.
 */
function heldSink(hold: boolean) {
  const parts: Buffer[] = [];
  const waiting: Array<() => void> = [];
  const sink = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      const keep = () => {
        parts.push(Buffer.from(chunk));
        callback();
      };
      if (hold) waiting.push(keep);
      else setImmediate(keep);
    },
  });
  return {
    sink,
    received: () => Buffer.concat(parts),
    release() {
      hold = false;
      for (const keep of waiting.splice(0)) keep();
    },
  };
}

/** Polls `condition` every `everyMs` until it holds, for at most `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 20_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return isRegistryError(error) ? error.code : `not a RegistryError: ${(error as Error).message}`;
  }
  return 'resolved';
}

describe('pulls from S3 (radosgw)', { skip: radosgwMissing ?? false }, () => {
  let s3: S3Server;
  let bucket: string;
  let proxy: TcpProxy;
  let store: S3BlobStore;
  const big = patterned(24 * MiB + 12345, 7);
  const bigDigest = digestOf(big);

  const put = (digest: string, body: Buffer) =>
    s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`, Body: body }));

  before(async () => {
    s3 = await startRadosgw();
    bucket = await s3.createBucket();
    proxy = await startTcpProxy(new URL(s3.endpoint).host);
    const { storage } = validateConfig({ storage: s3.storage(bucket, { prefix: PREFIX, endpoint: `http://${proxy.host}` }), log: { level: 'silent' } });
    store = new S3BlobStore({ settings: storage.s3, client: createS3Client(storage.s3) });
    await put(bigDigest, big);
  });
  after(async () => {
    await proxy?.close();
    await s3?.stop();
  });

  it('copies a large blob and ranges of it, each byte where it belongs, through a sink that calls back late', async () => {
    for (const range of [undefined, { start: 0, end: MiB }, { start: 3 * MiB - 5, end: 19 * MiB + 3 }, { start: big.length - 10, end: big.length - 1 }]) {
      const { sink, received } = heldSink(false);
      let counted = 0;
      let found = 0;
      await store.send(bigDigest, sink, { range, expectedSize: big.length, onFound: () => found++, onBytes: (bytes) => (counted += bytes) });
      const expected = range ? big.subarray(range.start, range.end + 1) : big;
      assert.equal(found, 1);
      assert.equal(counted, expected.length);
      assert.ok(received().equals(expected), `the bytes of ${range ? `${range.start}-${range.end}` : 'the whole blob'}`);
    }
  });

  it('holds no more than its two buffers while the client does not take the bytes, then sends the rest', async () => {
    const held = heldSink(true);
    proxy.reset();
    let handed = 0;
    const sending = store.send(bigDigest, held.sink, { expectedSize: big.length, onBytes: (bytes) => (handed += bytes) });
    await until(() => handed >= MiB, 'the first MiB handed over');
    // Wait until the object store is stopped by TCP's window: the copy has stopped reading.
    let answered = -1;
    await until(() => {
      const now = proxy.downloaded();
      const still = now === answered;
      answered = now;
      return still;
    }, 'the object store to stall', 20_000, 250);
    assert.ok(answered < big.length, `the object store sent ${answered} of ${big.length} bytes`);
    assert.ok(handed <= 2 * MiB, `handed ${handed} bytes to a sink that took none`);
    held.release();
    await sending;
    assert.ok(held.received().equals(big));
  });

  it('fails the send when the object store cuts the connection part-way, keeping what arrived intact', async () => {
    const { sink, received } = heldSink(false);
    proxy.cutAfter(5 * MiB);
    try {
      await assert.rejects(store.send(bigDigest, sink, { expectedSize: big.length }), /closed the connection after \d+ bytes/);
    } finally {
      proxy.cutAfter(null);
    }
    const got = received();
    assert.ok(got.length > 0 && got.length < big.length, `${got.length} bytes arrived`);
    assert.ok(got.equals(big.subarray(0, got.length)));
  });

  it('closes the connection to the object store when the client hangs up', async () => {
    const { sink } = heldSink(false);
    // Only the SDK's pooled connections (small reads) stay open between sends.
    const pooled = proxy.connections();
    let counted = 0;
    const sending = store.send(bigDigest, sink, {
      expectedSize: big.length,
      onBytes: (bytes) => {
        counted += bytes;
        if (counted >= 2 * MiB) sink.destroy();
      },
    });
    await assert.rejects(sending, /destination closed/);
    await until(() => proxy.connections() <= pooled, 'the object store connection closed');
  });

  it('refuses an object of another size than recorded before writing anything, and a missing one', async () => {
    const short = patterned(3 * MiB, 9);
    const digest = digestOf(short);
    await put(digest, short.subarray(0, 2 * MiB)); // damaged: shorter than the commit recorded
    const { sink, received } = heldSink(false);
    let found = 0;
    const onFound = () => found++;
    assert.equal(await codeOf(store.send(digest, sink, { expectedSize: short.length, onFound })), 'BLOB_UNKNOWN');
    assert.equal(await codeOf(store.send(digest, sink, { expectedSize: short.length, onFound, range: { start: 2 * MiB, end: 3 * MiB - 1 } })), 'BLOB_UNKNOWN');
    assert.equal(await codeOf(store.send(digestOf(Buffer.from('never stored')), sink, { expectedSize: 2 * MiB, onFound })), 'BLOB_UNKNOWN');
    assert.equal(found, 0);
    assert.equal(received().length, 0);
  });

  it('answers blob HEADs from metadata: nothing reaches the object store', async () => {
    const t = await createTestApp({ storage: s3.storage(bucket, { prefix: 'heads/', endpoint: `http://${proxy.host}` }) });
    try {
      const { digest } = await pushBlob(t.app, 'heads/app', Buffer.from('a layer of some bytes'));
      proxy.reset();
      for (let i = 0; i < 20; i++) {
        const res = await request(t.app).head(`/v2/heads/app/blobs/${digest}`);
        assert.equal(res.status, 200);
        assert.equal(res.headers['content-length'], '21');
      }
      assert.equal(proxy.uploaded(), 0, 'bytes sent to the object store for 20 HEADs');
    } finally {
      await t.close();
    }
  });

  it('copies over TLS too (an https endpoint), with the presigned GET of the direct copy', { skip: hasCommand('openssl') ? false : 'openssl not installed' }, async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 's3-tls-'));
    const certificates = await makeCertificates(dir);
    // radosgw behind a TLS terminator that notes every request line it passes on.
    const requestLines: string[] = [];
    const upstreamPort = Number(new URL(s3.endpoint).port);
    const terminator = tls.createServer({ cert: await fs.readFile(certificates.serverCert), key: await fs.readFile(certificates.serverKey) }, (client) => {
      const upstream = net.connect(upstreamPort, '127.0.0.1');
      client.on('data', (chunk: Buffer) => requestLines.push(...chunk.toString('latin1').split('\r\n').filter((line) => /^(GET|HEAD|PUT|POST|DELETE) \S+ HTTP\/1\.1$/.test(line))));
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    await new Promise<void>((resolve) => terminator.listen(0, '127.0.0.1', resolve));
    const endpoint = `https://127.0.0.1:${(terminator.address() as net.AddressInfo).port}`;
    const server = await startServer({ env: { ...s3.env(bucket), REGISTRY_STORAGE_S3_ENDPOINT: endpoint, REGISTRY_STORAGE_S3_PREFIX: 'tls/', NODE_EXTRA_CA_CERTS: certificates.caCert } });
    try {
      const layer = patterned(3 * MiB + 77, 11);
      const digest = digestOf(layer);
      const pushed = await fetch(`${server.url}/v2/tls/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: layer, headers: { 'Content-Type': 'application/octet-stream' } });
      assert.equal(pushed.status, 201, await pushed.text());
      const pulled = await fetch(`${server.url}/v2/tls/app/blobs/${digest}`);
      assert.equal(pulled.status, 200);
      assert.equal(digestOf(Buffer.from(await pulled.arrayBuffer())), digest);
      const key = `tls/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;
      assert.ok(
        requestLines.some((line) => line.startsWith(`GET /${bucket}/${key}?`) && line.includes('X-Amz-Signature=')),
        `a presigned GET of the blob among:\n${requestLines.join('\n')}`,
      );
    } finally {
      await server.stop();
      await new Promise((resolve) => terminator.close(resolve));
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
