/**
 * `registry migrate-blobs --to s3` against a real radosgw: killed in the middle of a run and run
 * again, it copies only what is missing and ends with every blob in the bucket, each hashing to
 * its digest; a blob file whose content no longer matches its digest is reported and never
 * appears in the bucket (nor anything of its upload), and an object of the wrong size already in
 * the bucket is replaced.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import YAML from 'yaml';
import { FilesystemBlobStore } from '../../src/storage/filesystem/blob-store.js';
import { runCli } from '../helpers/cli.js';
import { seededBytes } from '../helpers/oci-layout.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';

const BLOBS = 24;
const BLOB_BYTES = 768 * 1024;

interface Summary {
  total: number;
  copied: number;
  present: number;
  replaced: number;
  corrupt: Array<{ digest: string; detail: string }>;
  failed: unknown[];
}

const keyOf = (digest: string) => `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

describe('registry migrate-blobs on radosgw', { skip: radosgwMissing ?? false }, () => {
  let s3: S3Server;
  let work: string;
  let root: string;
  const digests: string[] = [];

  async function configFor(bucket: string): Promise<string> {
    const file = path.join(work, `${bucket}.yaml`);
    await fs.writeFile(file, YAML.stringify({ storage: { root, ...s3.storage(bucket), driver: 'filesystem' } }));
    return file;
  }

  async function objects(bucket: string, prefix = ''): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    let token: string | undefined;
    for (let page = 0; page < 100; page++) {
      const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const object of listed.Contents ?? []) found.set(object.Key!, object.Size!);
      token = listed.NextContinuationToken;
      if (!token) break;
    }
    return found;
  }

  async function hashOf(bucket: string, key: string): Promise<string> {
    const object = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const hash = createHash('sha256');
    for await (const chunk of object.Body as Readable) hash.update(chunk as Buffer);
    return `sha256:${hash.digest('hex')}`;
  }

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'migrate-blobs-'));
    root = path.join(work, 'root');
    const started = startRadosgw();
    // Blobs put in place through the filesystem store itself, as pushes leave them.
    const store = await FilesystemBlobStore.open(root);
    for (let i = 0; i < BLOBS; i++) {
      const bytes = seededBytes(`blob-${i}`, BLOB_BYTES + i);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const id = `seed-${i}`;
      const progress = await store.appendUpload(id, await store.createUpload(id), Readable.from([bytes]));
      await store.commitUpload(id, progress, digest);
      digests.push(digest);
    }
    s3 = await started;
  });
  after(async () => {
    await s3?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('continues where a killed run stopped, and ends with every blob in the bucket, verified', async () => {
    const bucket = await s3.createBucket();
    const config = await configFor(bucket);
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('REGISTRY_')));
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'registry.js'), '-c', config, 'migrate-blobs', '--to', 's3', '--concurrency', '1'], {
      cwd: PROJECT_ROOT,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let progress = '';
    const killedAfterSome = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no progress within 30 s: ${progress}`)), 30_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        progress += chunk.toString();
        if ((progress.match(/\] copied /g) ?? []).length >= 3) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    try {
      await killedAfterSome;
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const afterKill = [...(await objects(bucket, 'blobs/')).keys()];
    assert.ok(afterKill.length >= 3 && afterKill.length < BLOBS, `${afterKill.length} of ${BLOBS} blobs copied before the kill`);

    const rerun = await runCli(root, ['-c', config, 'migrate-blobs', '--to', 's3', '--json']);
    assert.equal(rerun.code, 0, rerun.stderr);
    const summary = JSON.parse(rerun.stdout) as Summary;
    assert.equal(summary.total, BLOBS);
    assert.equal(summary.present, afterKill.length, 'what the killed run committed is skipped');
    assert.equal(summary.copied, BLOBS - afterKill.length);

    const stored = await objects(bucket, 'blobs/');
    assert.equal(stored.size, BLOBS);
    for (const [i, digest] of digests.entries()) {
      assert.equal(stored.get(keyOf(digest)), BLOB_BYTES + i);
      assert.equal(await hashOf(bucket, keyOf(digest)), digest);
    }
  });

  it('reports a blob file whose content does not match its digest and never puts it in the bucket', async () => {
    const bucket = await s3.createBucket();
    const config = await configFor(bucket);
    const [damaged, wrongSize] = [digests[5]!, digests[6]!];
    const file = path.join(root, keyOf(damaged));
    const bytes = await fs.readFile(file);
    bytes[1000] = bytes[1000]! ^ 0xff; // same size, other content: only the hash can tell
    await fs.writeFile(file, bytes);
    // A truncated object at a blob's key (an old copy made another way): replaced.
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: keyOf(wrongSize), Body: Buffer.from('truncated') }));

    const run = await runCli(root, ['-c', config, 'migrate-blobs', '--to', 's3', '--json']);
    assert.equal(run.code, 1, 'a corrupt blob fails the run');
    const summary = JSON.parse(run.stdout) as Summary;
    assert.deepEqual(summary.corrupt.map((blob) => blob.digest), [damaged]);
    assert.match(summary.corrupt[0]!.detail, /content hashes to sha256:/);
    assert.match(run.stderr, new RegExp(`corrupt ${damaged}`));
    assert.equal(summary.replaced, 1);
    assert.equal(summary.copied, BLOBS - 2);
    const stored = await objects(bucket);
    assert.equal(stored.has(keyOf(damaged)), false, 'the corrupt blob is not in the bucket');
    assert.equal(stored.get(keyOf(wrongSize)), BLOB_BYTES + 6);
    assert.deepEqual([...stored.keys()].filter((key) => !key.startsWith('blobs/')), [], 'nothing of the refused upload is left');
  });
});
