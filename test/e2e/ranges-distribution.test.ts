/**
 * Range GETs of a blob, side by side with CNCF distribution (Debian's `docker-registry`, which
 * serves blobs through Go's http.ServeContent): the real registry process and distribution each
 * hold the same blob, and every Range header below must get the same answer from both: status,
 * Content-Range, and for multipart/byteranges the same parts (Content-Range, Content-Type and
 * bytes) in the same order. Boundaries are random in both and are not compared. Where this
 * registry differs on purpose (test/http/blobs.test.ts) is not asked here.
 *
 * Skipped, with the reason printed, when docker-registry is not installed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDistribution, type BenchServer } from '../../bench/lib/servers.js';
import { MAX_RANGES } from '../../src/http/byte-ranges.js';
import { parseByteranges } from '../helpers/multipart.js';
import { seededBytes } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { hasCommand } from '../helpers/tools.js';

const skip = hasCommand('docker-registry') ? false : 'docker-registry (CNCF distribution) not installed';
if (skip) console.log(`range comparison with distribution skipped: ${skip}`);

// 16 MiB: offsets of eight digits, so MAX_RANGES ranges make a Range header of about 18 KiB,
// past Node's default 16 KiB header limit.
const BLOB = seededBytes('ranges-against-distribution', 16 * 1024 * 1024);
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const REPOSITORY = 'ranges/blob';

async function pushBlob(base: string): Promise<void> {
  const started = await fetch(`${base}/v2/${REPOSITORY}/blobs/uploads/`, { method: 'POST' });
  assert.equal(started.status, 202, `${base}: upload not started`);
  const location = new URL(started.headers.get('location')!, base);
  location.searchParams.set('digest', DIGEST);
  const put = await fetch(location, { method: 'PUT', body: BLOB, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.equal(put.status, 201, `${base}: upload not committed`);
}

/** What a ranged answer says, without what is random (boundaries) or the same by construction (dates). */
async function answer(base: string, range: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}/v2/${REPOSITORY}/blobs/${DIGEST}`, { headers: { Range: range } });
  if (res.status === 416) {
    // distribution's 416 keeps the blob's Content-Length over a short text body, then closes
    // the connection: only the headers can be compared.
    await res.body?.cancel();
    return { status: res.status, contentRange: res.headers.get('content-range') };
  }
  const body = Buffer.from(await res.arrayBuffer());
  const hash = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const summary: Record<string, unknown> = { status: res.status };
  if (res.status === 206 && res.headers.get('content-type')?.startsWith('multipart/')) {
    assert.equal(Number(res.headers.get('content-length')), body.length, `${base}: Content-Length of the multipart body`);
    summary.parts = parseByteranges(res.headers.get('content-type')!, body).map((part) => ({
      contentRange: part.headers['content-range'],
      contentType: part.headers['content-type'],
      bytes: hash(part.body),
    }));
  } else if (res.status === 206) {
    summary.contentRange = res.headers.get('content-range');
    summary.bytes = hash(body);
  } else {
    summary.bytes = hash(body);
  }
  return summary;
}

describe('Range GETs compared with CNCF distribution', { skip }, () => {
  let ours: ServerProcess;
  let distribution: BenchServer;
  let work: string;
  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ranges-distribution-'));
    ours = await startServer();
    distribution = await startDistribution(path.join(work, 'distribution'));
    await pushBlob(ours.url);
    await pushBlob(`http://${distribution.host}`);
  });
  after(async () => {
    await ours?.stop();
    await distribution?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const size = BLOB.length;
  const cases: Array<[string, string]> = [
    ['one range', 'bytes=100-199'],
    ['two ranges', 'bytes=0-9,20-29'],
    ['overlapping ranges', 'bytes=0-9,5-14'],
    ['a suffix range first, out of order', 'bytes=-5,0-1'],
    ['white space and empty list elements', 'bytes= 0-1 , ,3-4,'],
    ['a range past the end beside one inside', `bytes=0-9,${size}-${size + 10}`],
    ['an open range and a range clamped to the end', `bytes=${size - 3}-,${size - 10}-${size + 1000}`],
    ['only ranges past the end', `bytes=${size}-,${size + 5}-${size + 9}`],
    ['ranges adding up to more than the blob', 'bytes=0-,0-'],
    [
      `${MAX_RANGES} ranges with eight-digit offsets (an 18 KiB header)`,
      `bytes=${Array.from({ length: MAX_RANGES }, (_, i) => `${10_000_000 + i * 4000}-${10_000_000 + i * 4000 + 2}`).join(',')}`,
    ],
  ];
  for (const [label, range] of cases) {
    it(`answers ${label} as distribution does`, async () => {
      const theirs = await answer(`http://${distribution.host}`, range);
      assert.deepEqual(await answer(ours.url, range), theirs);
    });
  }
});
