/**
 * Garbage collection through the admin API: what goes (unique layers of deleted images,
 * untagged manifests when asked, referrers whose subject is gone, orphan files, stale uploads),
 * what stays (shared layers, anything within the grace period), dry runs and reports.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import type { GcReport } from '../../src/registry/gc.js';
import { createLifecycle } from '../../src/registry/lifecycle.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';
import { imageManifest, MEDIA, pushBlob, pushManifest, sha256, type App, type Descriptor } from '../helpers/app.js';
import { age, assertPulls, blobFile, blobFiles, createLifecycleApp, exists, type LifecycleTestApp } from './helpers.js';

async function gc(app: App, body: Record<string, unknown> = {}): Promise<GcReport> {
  const res = await request(app).post('/api/v1/gc').send(body);
  assert.equal(res.status, 200, `POST /api/v1/gc: ${res.status} ${res.text}`);
  return res.body as GcReport;
}

/** Pushes an image of the given config seed and layers (bytes); returns its descriptors. */
async function pushImageOf(app: App, name: string, reference: string, configSeed: string, layers: string[]) {
  const config = await pushBlob(app, name, JSON.stringify({ architecture: 'amd64', os: 'linux', seed: configSeed }), MEDIA.ociConfig);
  const layerDescriptors: Descriptor[] = [];
  for (const layer of layers) layerDescriptors.push(await pushBlob(app, name, layer));
  const manifest = await pushManifest(app, name, reference, imageManifest(config, layerDescriptors));
  return { manifest, config, layers: layerDescriptors };
}

for (const backend of METADATA_BACKENDS) describe(`garbage collection (${backend.name})`, { skip: backend.skip }, () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp({ metadata: await backend.metadataConfig() });
  });
  after(() => t.close());

  it('deletes the unique blobs of a deleted image, keeps the shared ones, and the other image still pulls', async () => {
    const shared = 'shared base layer '.repeat(50);
    const a = await pushImageOf(t.app, 'gc/two', 'a', 'config a', [shared, 'unique layer of a']);
    const b = await pushImageOf(t.app, 'gc/two', 'b', 'config b', [shared, 'unique layer of b']);
    assert.equal((await request(t.app).delete(`/v2/gc/two/manifests/${a.manifest.digest}`)).status, 202);

    const report = await gc(t.app, { gracePeriodSeconds: 0 });
    const gone = [a.config.digest, a.layers[1]!.digest];
    assert.deepEqual(report.blobsDeleted.items.map((blob) => blob.digest).sort(), [...gone].sort());
    assert.equal(report.blobsDeleted.bytes, a.config.size + a.layers[1]!.size);
    assert.deepEqual(report.manifestsPurged.items, [{ digest: a.manifest.digest, size: a.manifest.size }]);
    assert.equal(report.bytesReclaimed, a.config.size + a.layers[1]!.size + a.manifest.size);
    for (const digest of gone) assert.equal(await exists(blobFile(t.root, digest)), false, `${digest} is still on disk`);
    for (const digest of [b.config.digest, ...b.layers.map((l) => l.digest)]) {
      assert.equal(await exists(blobFile(t.root, digest)), true, `${digest} was deleted`);
    }
    assert.deepEqual((await assertPulls(t.app, 'gc/two', 'b')).sort(), [b.config.digest, ...b.layers.map((l) => l.digest)].sort());
    assert.equal((await request(t.app).head(`/v2/gc/two/blobs/${a.layers[1]!.digest}`)).status, 404);
  });

  it('keeps blobs uploaded within the grace period, and collects them once it is over', async () => {
    const pending = await pushBlob(t.app, 'gc/grace', 'a layer whose manifest is still to come');
    assert.equal((await gc(t.app)).blobsDeleted.items.some((blob) => blob.digest === pending.digest), false);
    assert.equal(await exists(blobFile(t.root, pending.digest)), true);
    const report = await gc(t.app, { gracePeriodSeconds: 0 });
    assert.ok(report.blobsDeleted.items.some((blob) => blob.digest === pending.digest));
    assert.equal(await exists(blobFile(t.root, pending.digest)), false);
  });

  it('a dry run lists exactly what a real run then deletes, and changes nothing', async () => {
    const image = await pushImageOf(t.app, 'gc/dry', 'x', 'config dry', ['layer of the dry run']);
    assert.equal((await request(t.app).delete(`/v2/gc/dry/manifests/${image.manifest.digest}`)).status, 202);
    const before = await blobFiles(t.root);

    const dry = await gc(t.app, { dryRun: true, gracePeriodSeconds: 0 });
    assert.equal(dry.dryRun, true);
    assert.deepEqual(dry.blobsDeleted.items.map((b) => b.digest).sort(), [image.config.digest, image.layers[0]!.digest].sort());
    assert.deepEqual(await blobFiles(t.root), before, 'a dry run deleted files');
    assert.equal((await request(t.app).head(`/v2/gc/dry/blobs/${image.layers[0]!.digest}`)).status, 200, 'a dry run removed a link');

    const real = await gc(t.app, { gracePeriodSeconds: 0 });
    assert.deepEqual(real.blobsDeleted.items, dry.blobsDeleted.items);
    assert.deepEqual(real.manifestsPurged.items, dry.manifestsPurged.items);
    assert.equal(real.bytesReclaimed, dry.bytesReclaimed);
  });

  it('keeps untagged manifests by default, and the children of a tagged index', async () => {
    const untagged = await pushImageOf(t.app, 'gc/untagged', 'v1', 'config untagged', ['untagged layer']);
    assert.equal((await request(t.app).delete('/v2/gc/untagged/manifests/v1')).status, 202);
    const child = await pushImageOf(t.app, 'gc/untagged', 'child-tag', 'config child', ['child layer']);
    assert.equal((await request(t.app).delete('/v2/gc/untagged/manifests/child-tag')).status, 202);
    const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ ...child.manifest, platform: { architecture: 'amd64', os: 'linux' } }] };
    await pushManifest(t.app, 'gc/untagged', 'multi', index, MEDIA.ociIndex);

    const report = await gc(t.app, { gracePeriodSeconds: 0 });
    assert.equal(report.manifestsRemoved.items.filter((m) => m.repository === 'gc/untagged').length, 0);
    await assertPulls(t.app, 'gc/untagged', untagged.manifest.digest);
    await assertPulls(t.app, 'gc/untagged', 'multi');
  });

  it('collects a referrer whose subject was deleted, with its blobs', async () => {
    const subject = await pushImageOf(t.app, 'gc/referrers', 'signed', 'config signed', ['signed layer']);
    const empty = await pushBlob(t.app, 'gc/referrers', '{}', 'application/vnd.oci.empty.v1+json');
    const signature = await pushBlob(t.app, 'gc/referrers', 'signature bytes', 'application/vnd.example.signature');
    const referrer = await pushManifest(
      t.app,
      'gc/referrers',
      sha256(JSON.stringify(imageManifest(empty, [signature], { artifactType: 'application/vnd.example.sig', subject: subject.manifest }))),
      imageManifest(empty, [signature], { artifactType: 'application/vnd.example.sig', subject: subject.manifest }),
    );
    let report = await gc(t.app, { gracePeriodSeconds: 0 });
    assert.equal(report.manifestsRemoved.count, 0, 'a referrer of a tagged subject was collected');

    assert.equal((await request(t.app).delete(`/v2/gc/referrers/manifests/${subject.manifest.digest}`)).status, 202);
    report = await gc(t.app, { gracePeriodSeconds: 0 });
    assert.deepEqual(report.manifestsRemoved.items, [
      { repository: 'gc/referrers', digest: referrer.digest, size: referrer.size, reason: 'subject-gone' },
    ]);
    for (const digest of [signature.digest, empty.digest, subject.layers[0]!.digest]) {
      assert.equal(await exists(blobFile(t.root, digest)), false, `${digest} is still on disk`);
    }
    const events = await t.assembled.registry.metadata.readEvents(0, 10_000);
    assert.ok(
      events.some((e) => e.type === 'manifest.deleted' && e.digest === referrer.digest && e.actor.kind === 'system'),
      'no manifest.deleted event for the collected referrer',
    );
  });

  it('collects untagged manifests older than untaggedManifestAgeSeconds when configured', async () => {
    const untagged = await pushImageOf(t.app, 'gc/old-untagged', 'v1', 'config old untagged', ['old untagged layer']);
    assert.equal((await request(t.app).delete('/v2/gc/old-untagged/manifests/v1')).status, 202);
    const tagged = await pushImageOf(t.app, 'gc/old-untagged', 'v2', 'config tagged', ['tagged layer']);
    // The same registry seen two minutes later, with untagged manifests collected after one.
    const later = createLifecycle(
      t.assembled.registry,
      t.assembled.backend.lifecycle,
      { ...t.assembled.lifecycle.settings, untaggedManifestAgeSeconds: 60 },
      { clock: () => Date.now() + 120_000 },
    );
    const report = await later.gc.run({ gracePeriodSeconds: 30 });
    assert.deepEqual(
      report.manifestsRemoved.items.filter((m) => m.repository === 'gc/old-untagged'),
      [{ repository: 'gc/old-untagged', digest: untagged.manifest.digest, size: untagged.manifest.size, reason: 'untagged' }],
    );
    assert.equal(await exists(blobFile(t.root, untagged.layers[0]!.digest)), false);
    await assertPulls(t.app, 'gc/old-untagged', 'v2');
    assert.equal(await exists(blobFile(t.root, tagged.layers[0]!.digest)), true);
  });

  it('deletes files no record points at once they are older than the grace period', async () => {
    const old = Buffer.from('an orphan file left by a crash between commit and link');
    const fresh = Buffer.from('an orphan file that may be an upload committing right now');
    for (const bytes of [old, fresh]) {
      await fs.mkdir(path.dirname(blobFile(t.root, sha256(bytes))), { recursive: true });
      await fs.writeFile(blobFile(t.root, sha256(bytes)), bytes);
    }
    await age(blobFile(t.root, sha256(old)), 7200);
    const report = await gc(t.app);
    assert.deepEqual(report.orphanFilesDeleted.items, [{ digest: sha256(old), size: old.length }]);
    assert.equal(await exists(blobFile(t.root, sha256(old))), false);
    assert.equal(await exists(blobFile(t.root, sha256(fresh))), true);
  });

  it('purges upload sessions idle for longer than uploadMaxAgeSeconds, with their files', async () => {
    const started = await request(t.app).post('/v2/gc/uploads/blobs/uploads/');
    assert.equal(started.status, 202);
    const location = started.headers.location as string;
    const id = location.split('/').pop()!;
    assert.equal((await request(t.app).patch(location).set('Content-Type', 'application/octet-stream').send(Buffer.from('half a layer'))).status, 202);
    const stray = path.join(t.root, 'uploads', '00000000-0000-4000-8000-000000000000');
    await fs.writeFile(stray, 'a temporary file without a session');

    assert.equal((await gc(t.app)).uploadsPurged.count, 0, 'fresh uploads were purged');
    const tomorrow = createLifecycle(t.assembled.registry, t.assembled.backend.lifecycle, t.assembled.lifecycle.settings, {
      clock: () => Date.now() + 25 * 3600_000,
    });
    const report = await tomorrow.gc.run({ gracePeriodSeconds: 3600 });
    assert.deepEqual(report.uploadsPurged.items.map((u) => u.id).sort(), [id, path.basename(stray)].sort());
    assert.equal(report.uploadsPurged.bytes, 'half a layer'.length + 'a temporary file without a session'.length);
    assert.equal(await exists(path.join(t.root, 'uploads', id)), false);
    assert.equal(await exists(stray), false);
    assert.equal((await request(t.app).get(location)).status, 404);
  });

  it('records runs (GET /api/v1/gc) and refuses a second collection while one runs', async () => {
    const res = await request(t.app).get('/api/v1/gc?limit=2');
    assert.equal(res.status, 200);
    const runs = res.body.runs as Array<{ dryRun: boolean; trigger: string; report: GcReport }>;
    assert.equal(runs.length, 2);
    assert.ok(runs.every((run) => !run.dryRun && typeof run.report.bytesReclaimed === 'number'));
    const withDry = await request(t.app).get('/api/v1/gc?limit=1000&dryRuns=true');
    assert.ok((withDry.body.runs as Array<{ dryRun: boolean }>).some((run) => run.dryRun));

    const store = t.assembled.backend.lifecycle;
    assert.equal((await store.acquireLease('gc', 'another process', 60_000)).acquired, true);
    try {
      const refused = await request(t.app).post('/api/v1/gc').send({});
      assert.equal(refused.status, 409);
      assert.equal(refused.body.errors[0].code, 'CONFLICT');
      assert.match(refused.body.errors[0].message, /already running.*another process/);
    } finally {
      await store.releaseLease('gc', 'another process');
    }
  });

  it('answers 400 to a malformed request', async () => {
    for (const body of [{ dryRun: 'yes' }, { gracePeriodSeconds: -1 }, { grace: 5 }]) {
      const res = await request(t.app).post('/api/v1/gc').send(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.errors[0].code, 'INVALID_REQUEST');
    }
    const broken = await request(t.app).post('/api/v1/gc').set('Content-Type', 'application/json').send('{"dryRun":');
    assert.equal(broken.status, 400);
  });
});
