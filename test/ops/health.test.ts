/**
 * /healthz and /readyz: unauthenticated, cheap, and /readyz fails (503, naming the check) when
 * the storage root cannot take a write, recovering once it can again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { ADMIN_PASSWORD, createOpsApp, type OpsApp } from './support.js';

describe('health and readiness', () => {
  let ops: OpsApp;
  before(async () => {
    // Token auth on: the probes must answer without credentials all the same.
    ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD } });
  });
  after(() => ops?.dispose());

  it('GET /healthz answers 200 without credentials', async () => {
    const res = await request(ops.app).get('/healthz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ok' });
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal((await request(ops.app).get('/v2/')).status, 401, 'while the API itself wants credentials');
  });

  it('GET /readyz answers 200 when the database answers and the storage root takes writes', async () => {
    const res = await request(ops.app).get('/readyz');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { status: 'ready', checks: { metadata: 'ok', storage: 'ok' } });
    const left = (await fs.readdir(ops.root)).filter((name) => name.startsWith('.readyz'));
    assert.deepEqual(left, [], 'the probe file is removed');
  });

  it('GET /readyz answers 503 naming the storage check while the root is not writable', async () => {
    // Root ignores permission bits, so take the folder itself away: the database keeps its open
    // files and still answers, but nothing can be created under the storage root any more.
    const moved = `${ops.root}.moved`;
    await fs.rename(ops.root, moved);
    await fs.writeFile(ops.root, 'not a folder');
    try {
      const res = await request(ops.app).get('/readyz');
      assert.equal(res.status, 503, res.text);
      assert.equal(res.body.status, 'not ready');
      assert.equal(res.body.checks.metadata, 'ok');
      assert.match(res.body.checks.storage, /ENOTDIR|EACCES|EROFS|ENOENT/);
      assert.equal((await request(ops.app).get('/healthz')).status, 200, 'the process is still alive');
    } finally {
      await fs.rm(ops.root);
      await fs.rename(moved, ops.root);
    }
    assert.equal((await request(ops.app).get('/readyz')).status, 200, 'ready again once the root is back');
  });

  it('GET /readyz answers 503 when the root is read-only for the process', { skip: process.getuid?.() === 0 ? 'runs as root, which ignores permission bits (the test above covers root)' : false }, async () => {
    await fs.chmod(ops.root, 0o555);
    try {
      const res = await request(ops.app).get('/readyz');
      assert.equal(res.status, 503);
      assert.match(res.body.checks.storage, /EACCES|EPERM/);
    } finally {
      await fs.chmod(ops.root, 0o755);
    }
  });

  it('GET /readyz answers 503 when the metadata store does not answer', async () => {
    const other = await createOpsApp();
    try {
      await other.close();
      const res = await request(other.app).get('/readyz');
      assert.equal(res.status, 503);
      assert.notEqual(res.body.checks.metadata, 'ok');
      assert.equal(res.body.checks.storage, 'ok');
    } finally {
      await fs.rm(other.root, { recursive: true, force: true });
    }
  });
});
