/**
 * `registry gc`, `registry fsck` and `registry usage`, run as real processes (bin/registry.js)
 * on a storage root a registry app filled, as an operator runs them from cron or by hand.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { SqliteLifecycleStore } from '../../src/metadata/sqlite/lifecycle-store.js';
import type { SqliteMetadataStore } from '../../src/metadata/sqlite/metadata-store.js';
import type { FsckReport } from '../../src/registry/fsck.js';
import type { GcReport } from '../../src/registry/gc.js';
import type { UsageReport } from '../../src/registry/lifecycle.js';
import { pushBlob, pushImage } from '../helpers/app.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';
import { blobFile, createLifecycleApp, exists, type LifecycleTestApp } from './helpers.js';

const BIN = path.join(PROJECT_ROOT, 'bin', 'registry.js');

function cli(root: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) env[name] = value;
  env.REGISTRY_STORAGE_ROOT = root;
  env.REGISTRY_LOG_LEVEL = 'silent';
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, env, timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('lifecycle CLI', () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp();
  });
  after(() => t.close());

  it('gc --dry-run lists what would go; gc deletes it and prints the bytes reclaimed', async () => {
    const image = await pushImage(t.app, 'cli/app', 'v1');
    await pushImage(t.app, 'cli/app', 'v2');
    assert.equal((await request(t.app).delete(`/v2/cli/app/manifests/${image.digest}`)).status, 202);

    const dry = await cli(t.root, ['gc', '--dry-run', '--grace-period', '0']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /garbage collection \(dry run\), grace period 0 s:/);
    assert.match(dry.stdout, new RegExp(`blobs would delete: 2 \\(${image.config.size + image.layer.size} bytes\\)`));
    assert.ok(dry.stdout.includes(image.layer.digest), dry.stdout);
    assert.equal(await exists(blobFile(t.root, image.layer.digest)), true);

    const real = await cli(t.root, ['gc', '--grace-period', '0', '--json']);
    assert.equal(real.code, 0, real.stderr);
    const report = JSON.parse(real.stdout) as GcReport;
    assert.equal(report.trigger, 'cli');
    assert.deepEqual(report.blobsDeleted.items.map((b) => b.digest).sort(), [image.config.digest, image.layer.digest].sort());
    assert.equal(report.bytesReclaimed, image.config.size + image.layer.size + image.size);
    assert.equal(await exists(blobFile(t.root, image.layer.digest)), false);
  });

  it('usage prints totals and one repository; fsck exits 0 on a clean registry', async () => {
    await pushBlob(t.app, 'cli/other', 'a blob without a manifest');
    // Read-only commands, run side by side.
    const [all, one, missing, clean] = await Promise.all([
      cli(t.root, ['usage', '--json']),
      cli(t.root, ['usage', 'cli/app']),
      cli(t.root, ['usage', 'no/such']),
      cli(t.root, ['fsck']),
    ]);
    assert.equal(all.code, 0, all.stderr);
    const report = JSON.parse(all.stdout) as UsageReport;
    assert.deepEqual(report.repositories.map((r) => r.repository), ['cli/app', 'cli/other']);
    assert.equal(report.totals.unreferencedBlobs, 1);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^repository: +cli\/app$/m);
    assert.match(one.stdout, /^tags: +1$/m);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /repository no\/such is not known/);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /no problems found/);
  });

  it('fsck exits 1 while problems remain and --repair repairs them; gc is refused while another collection runs', async () => {
    const v2 = await pushImage(t.app, 'cli/app', 'v2');
    await fs.rm(blobFile(t.root, v2.config.digest));
    const store = new SqliteLifecycleStore((t.assembled.registry.metadata as SqliteMetadataStore).db);
    await store.acquireLease('gc', 'the server', 60_000);
    let found, refused;
    try {
      [found, refused] = await Promise.all([cli(t.root, ['fsck']), cli(t.root, ['gc'])]);
    } finally {
      await store.releaseLease('gc', 'the server');
    }
    assert.equal(found.code, 1);
    assert.match(found.stdout, new RegExp(`blob-missing: blob ${v2.config.digest}`));
    assert.match(found.stdout, /affects cli\/app@sha256:[a-f0-9]{64} \(v2\)/);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /a garbage collection is already running .*the server/);

    const repaired = await cli(t.root, ['fsck', '--repair', '--json']);
    const report = JSON.parse(repaired.stdout) as FsckReport;
    assert.equal(report.repaired, 1);
    assert.equal(repaired.code, 0, repaired.stdout);
    assert.equal(await t.assembled.registry.metadata.getBlob(v2.config.digest), null);
  });
});
