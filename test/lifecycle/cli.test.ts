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

function cli(root: string, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) env[name] = value;
  env.REGISTRY_STORAGE_ROOT = root;
  env.REGISTRY_LOG_LEVEL = 'silent';
  Object.assign(env, extraEnv);
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
    assert.match(dry.stdout, new RegExp(`blobs to delete: 2 \\(${image.config.size + image.layer.size} bytes\\)`));
    assert.match(dry.stdout, /^ {2}bytes to reclaim: /m);
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

  it('tag list prints each tag with its digest; tag delete removes one tag as the API does, recording tag.deleted', async () => {
    const v1 = await pushImage(t.app, 'cli/tags', 'v1');
    const v2 = await pushImage(t.app, 'cli/tags', 'v2');
    const listed = await cli(t.root, ['tag', 'list', 'cli/tags']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout, `v1\t${v1.digest}\nv2\t${v2.digest}\n`);
    const json = JSON.parse((await cli(t.root, ['tag', 'list', 'cli/tags', '--json'])).stdout) as unknown;
    assert.deepEqual(json, { name: 'cli/tags', tags: [{ tag: 'v1', digest: v1.digest }, { tag: 'v2', digest: v2.digest }] });

    const deleted = await cli(t.root, ['tag', 'delete', 'cli/tags:v1']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, `deleted tag cli/tags:v1 (it named ${v1.digest})\n`);
    assert.equal((await request(t.app).get('/v2/cli/tags/manifests/v1')).status, 404);
    assert.equal((await request(t.app).get(`/v2/cli/tags/manifests/${v1.digest}`)).status, 200, 'the manifest stays');
    const events = await t.assembled.registry.metadata.readEvents(0, 10_000);
    const last = events[events.length - 1]!;
    assert.deepEqual([last.type, last.repository, last.tag, last.digest, last.actor], ['tag.deleted', 'cli/tags', 'v1', v1.digest, { name: 'cli', kind: 'system' }]);

    const again = await cli(t.root, ['tag', 'delete', 'cli/tags:v1']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /MANIFEST_UNKNOWN: manifest v1 is not known to repository cli\/tags/);
    const unknown = await cli(t.root, ['tag', 'list', 'no/such']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /NAME_UNKNOWN: repository no\/such is not known/);
    for (const bad of ['cli/tags', 'cli/tags@sha256:abc', 'cli/tags:-bad']) {
      const refused = await cli(t.root, ['tag', 'delete', bad]);
      assert.equal(refused.code, 2, `${bad}: ${refused.stderr}`);
      assert.match(refused.stderr, /expected <repository>:<tag>|TAG_INVALID/);
    }
    const disabled = await cli(t.root, ['tag', 'delete', 'cli/tags:v2'], { REGISTRY_STORAGE_DELETE_ENABLED: 'false' });
    assert.equal(disabled.code, 1);
    assert.match(disabled.stderr, /deletion is disabled/);
    const file = path.join(t.root, 'immutable.yaml');
    await fs.writeFile(file, "lifecycle:\n  immutableTags:\n    - name: releases\n      repositories: ['cli/**']\n      tags: ['v*']\n");
    const immutable = await cli(t.root, ['--config', file, 'tag', 'delete', 'cli/tags:v2']);
    assert.equal(immutable.code, 1);
    assert.match(immutable.stderr, /DENIED: .*immutable/);
    assert.equal((await request(t.app).get('/v2/cli/tags/manifests/v2')).status, 200, 'refused deletes changed nothing');
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
    assert.match(found.stdout, /^1 problem found, 0 repaired, 1 remaining$/m);
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
