/**
 * Integrity: a blob damaged on disk is never served when its size is off, is replaced by the
 * next upload of the same content, and fsck finds damaged, missing and orphan files and broken
 * references, reports each with its repair, and repairs what it says it repairs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { SqliteLifecycleStore } from '../../src/metadata/sqlite/lifecycle-store.js';
import type { SqliteMetadataStore } from '../../src/metadata/sqlite/metadata-store.js';
import type { FsckFinding, FsckReport } from '../../src/registry/fsck.js';
import { assertError, binaryParser, pushBlob, pushImage, sha256 } from '../helpers/app.js';
import { age, assertPulls, blobFile, createLifecycleApp, exists, type LifecycleTestApp } from './helpers.js';

async function fsck(t: LifecycleTestApp, body: Record<string, unknown> = {}): Promise<FsckReport> {
  const res = await request(t.app).post('/api/v1/fsck').send(body);
  assert.equal(res.status, 200, res.text);
  return res.body as FsckReport;
}

/** The findings as [kind, digest, repository?, tag?] rows, sorted, for exact comparison. */
function rows(findings: FsckFinding[]): string[][] {
  return findings.map((f) => [f.kind, f.digest, f.repository ?? '', f.tag ?? '']).sort();
}

describe('read-time damage checks', () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp();
  });
  after(() => t.close());

  it('refuses to serve a blob whose file size differs from what was stored, and a new upload replaces it', async () => {
    const bytes = Buffer.from('layer content that will be truncated on disk');
    const layer = await pushBlob(t.app, 'damage/app', bytes);
    await fs.truncate(blobFile(t.root, layer.digest), 10);

    const get = await request(t.app).get(`/v2/damage/app/blobs/${layer.digest}`);
    assertError(get, 404, 'BLOB_UNKNOWN');
    assert.match(get.body.errors[0].message, /is damaged in storage \(10 bytes stored, \d+ expected\) and is not served/);
    for (const header of ['cache-control', 'etag', 'docker-content-digest']) assert.equal(get.headers[header], undefined, `a refusal carries no ${header}`);
    assert.equal((await request(t.app).get(`/v2/damage/app/blobs/${layer.digest}`).set('Range', 'bytes=0-3')).status, 404);
    assert.equal((await request(t.app).head(`/v2/damage/app/blobs/${layer.digest}`)).status, 404, 'HEAD must send the client to upload it again');
    // Nor is it mounted or linked elsewhere.
    assert.equal((await request(t.app).head(`/v2/damage/other/blobs/${layer.digest}`)).status, 404);

    await pushBlob(t.app, 'damage/app', bytes);
    const served = await request(t.app).get(`/v2/damage/app/blobs/${layer.digest}`).buffer(true).parse(binaryParser);
    assert.equal(served.status, 200);
    assert.ok((served.body as Buffer).equals(bytes));
  });
});

describe('read-time damage checks after a recent HEAD', () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp();
  });
  after(() => t.close());

  it('trusts a size check for a few seconds, and forgets it as soon as a GET finds the file damaged', async () => {
    const bytes = Buffer.from('layer content checked by HEAD, then truncated');
    const layer = await pushBlob(t.app, 'damage/recent', bytes);
    const url = `/v2/damage/recent/blobs/${layer.digest}`;
    assert.equal((await request(t.app).head(url)).status, 200);
    await fs.truncate(blobFile(t.root, layer.digest), 10);
    // Within the trust window HEAD answers from the last check (no stat per HEAD) ...
    assert.equal((await request(t.app).head(url)).status, 200);
    // ... but GET checks the file it serves, and its refusal ends the trust.
    assertError(await request(t.app).get(url), 404, 'BLOB_UNKNOWN');
    assert.equal((await request(t.app).head(url)).status, 404);
  });
});

describe('fsck', () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp();
  });
  after(() => t.close());

  it('finds damaged, missing and orphan files and broken references, then repairs what it says it repairs', async () => {
    const good = await pushImage(t.app, 'fsck/app', 'good');
    const flipped = await pushImage(t.app, 'fsck/app', 'flipped');
    const truncated = await pushImage(t.app, 'fsck/app', 'truncated');
    const missing = await pushImage(t.app, 'fsck/app', 'missing');
    const unlinked = await pushImage(t.app, 'fsck/app', 'unlinked');

    // A bit flipped in place (same size: only hashing finds it), a truncated file, a deleted file.
    const flippedFile = blobFile(t.root, flipped.layer.digest);
    const content = await fs.readFile(flippedFile);
    content[0] = content[0]! ^ 0xff;
    await fs.writeFile(flippedFile, content);
    await fs.truncate(blobFile(t.root, truncated.layer.digest), 3);
    await fs.rm(blobFile(t.root, missing.layer.digest));
    // A file nothing points at, older than the grace period, and a fresh one (an upload may be committing it).
    const orphan = Buffer.from('bytes of an orphan file');
    const fresh = Buffer.from('bytes of a fresh orphan file');
    for (const bytes of [orphan, fresh]) {
      await fs.mkdir(path.dirname(blobFile(t.root, sha256(bytes))), { recursive: true });
      await fs.writeFile(blobFile(t.root, sha256(bytes)), bytes);
    }
    await age(blobFile(t.root, sha256(orphan)), 7200);
    // A layer link deleted under its manifest, and a tag pointing at a manifest the repository lacks.
    assert.equal((await request(t.app).delete(`/v2/fsck/app/blobs/${unlinked.layer.digest}`)).status, 202);
    const db = (t.assembled.registry.metadata as SqliteMetadataStore).db;
    const ghost = sha256('a manifest that was never pushed');
    db.prepare("INSERT INTO tags (repository_id, name, digest, updated_at) SELECT id, 'ghost', ?, 0 FROM repositories WHERE name = 'fsck/app'").run(ghost);

    const report = await fsck(t);
    assert.equal(report.repair, false);
    assert.deepEqual(rows(report.findings), [
      ['blob-damaged', flipped.layer.digest, '', ''],
      ['blob-damaged', truncated.layer.digest, '', ''],
      ['blob-missing', missing.layer.digest, '', ''],
      ['file-orphan', sha256(orphan), '', ''],
      ['manifest-blob-unlinked', unlinked.layer.digest, 'fsck/app', ''],
      ['tag-dangling', ghost, 'fsck/app', 'ghost'],
    ].sort());
    assert.equal(report.problems, 6);
    assert.equal(report.checked.blobs, 10);
    const byKind = (kind: string, digest: string) => report.findings.find((f) => f.kind === kind && f.digest === digest)!;
    const flippedFinding = byKind('blob-damaged', flipped.layer.digest);
    assert.match(flippedFinding.problem, /its content hashes to sha256:/);
    assert.match(flippedFinding.repair, /delete the damaged file and the blob record/);
    assert.deepEqual(flippedFinding.affects, [{ repository: 'fsck/app', manifest: flipped.digest, tags: ['flipped'] }]);
    assert.match(byKind('blob-damaged', truncated.layer.digest).problem, /its file holds 3 bytes/);
    assert.ok(report.findings.every((f) => f.repairable && f.repaired === undefined));
    // A check alone changes nothing.
    assert.equal(await exists(blobFile(t.root, sha256(orphan))), true);

    const repaired = await fsck(t, { repair: true });
    assert.deepEqual(rows(repaired.findings), rows(report.findings));
    assert.ok(repaired.findings.every((f) => f.repaired === true), JSON.stringify(repaired.findings.filter((f) => !f.repaired)));
    assert.equal(repaired.repaired, 6);
    assert.equal(repaired.problems, 0);
    for (const digest of [flipped.layer.digest, truncated.layer.digest, sha256(orphan)]) {
      assert.equal(await exists(blobFile(t.root, digest)), false, `${digest} is still on disk`);
    }
    assert.equal(await exists(blobFile(t.root, sha256(fresh))), true, 'a fresh file was deleted');
    assert.equal((await request(t.app).get('/v2/fsck/app/manifests/ghost')).status, 404);
    await assertPulls(t.app, 'fsck/app', 'unlinked');
    await assertPulls(t.app, 'fsck/app', 'good');
    assert.ok(good);

    // What is left needs content only a push can bring back, and fsck says so.
    const after = await fsck(t);
    assert.deepEqual(rows(after.findings), [
      ['manifest-blob-missing', flipped.layer.digest, 'fsck/app', ''],
      ['manifest-blob-missing', missing.layer.digest, 'fsck/app', ''],
      ['manifest-blob-missing', truncated.layer.digest, 'fsck/app', ''],
    ].sort());
    assert.ok(after.findings.every((f) => !f.repairable && /push the image again/.test(f.repair)));

    // Pushing the image again heals it: HEAD answers 404, so the client uploads the layer.
    assert.equal((await request(t.app).head(`/v2/fsck/app/blobs/${flipped.layer.digest}`)).status, 404);
    await pushImage(t.app, 'fsck/app', 'flipped');
    await assertPulls(t.app, 'fsck/app', 'flipped');
    assert.equal((await fsck(t)).findings.length, 2);
  });

  it('answers 400 to a malformed request', async () => {
    const res = await request(t.app).post('/api/v1/fsck').send({ repair: 'please' });
    assertError(res, 400, 'INVALID_REQUEST');
  });

  it('refuses a repair (409 CONFLICT) while a collection holds the lease, but still checks', async () => {
    const store = new SqliteLifecycleStore((t.assembled.registry.metadata as SqliteMetadataStore).db);
    assert.equal((await store.acquireLease('gc', 'a running collection', 60_000)).acquired, true);
    try {
      const refused = await request(t.app).post('/api/v1/fsck').send({ repair: true });
      assertError(refused, 409, 'CONFLICT');
      assert.match(refused.body.errors[0].message, /a running collection/);
      assert.equal((await request(t.app).post('/api/v1/fsck').send({})).status, 200, 'a check alone needs no lease');
    } finally {
      await store.releaseLease('gc', 'a running collection');
    }
    assert.equal((await request(t.app).post('/api/v1/fsck').send({ repair: true })).status, 200, 'the lease was released');
  });
});
