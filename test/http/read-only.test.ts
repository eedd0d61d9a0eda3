/**
 * storage.readOnly, the maintenance mode of a move (docs/migrate.md): over the storage of a
 * registry that took pushes, pulls are served and every change is refused with 405 UNSUPPORTED in
 * the spec's error format (as CNCF distribution's read-only mode answers), logins still get
 * tokens, and nothing is written to the database (no pull events, no link on HEAD).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import { assemble, type AssembledRegistry } from '../../src/server.js';
import { MEDIA, pushBlob, pushManifest } from '../helpers/app.js';

const ADMIN_PASSWORD = 'read-only-admin-password';

describe('storage.readOnly', () => {
  let root: string;
  let registry: AssembledRegistry;
  let layer: { digest: string };
  const configFor = (readOnly: boolean) =>
    validateConfig({ storage: { root, readOnly }, auth: { mode: 'none' }, log: { level: 'silent' }, webhooks: { subscriptions: [] } });

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'read-only-'));
    const writable = await assemble(configFor(false));
    layer = await pushBlob(writable.app, 'team/app', 'layer bytes');
    const config = await pushBlob(writable.app, 'team/app', '{}', MEDIA.ociConfig);
    await pushManifest(writable.app, 'team/app', 'v1', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config, layers: [layer] });
    await writable.close();
    registry = await assemble(configFor(true));
  });
  after(async () => {
    await registry?.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('serves pulls', async () => {
    assert.equal((await request(registry.app).get('/v2/team/app/manifests/v1').set('Accept', MEDIA.ociManifest)).status, 200);
    assert.equal((await request(registry.app).get(`/v2/team/app/blobs/${layer.digest}`)).status, 200);
    assert.deepEqual((await request(registry.app).get('/v2/team/app/tags/list')).body, { name: 'team/app', tags: ['v1'] });
  });

  it('refuses every change with 405 UNSUPPORTED and writes nothing', async () => {
    const events = await registry.registry.metadata.readEvents(0, 1000);
    const attempts = [
      request(registry.app).post('/v2/team/app/blobs/uploads/'),
      request(registry.app).put('/v2/team/app/manifests/v2').set('Content-Type', MEDIA.ociManifest).send('{}'),
      request(registry.app).delete('/v2/team/app/manifests/v1'),
      request(registry.app).delete(`/v2/team/app/blobs/${layer.digest}`),
      request(registry.app).post('/api/v1/webhooks').send({ url: 'http://127.0.0.1:9/hook' }),
      request(registry.app).post('/api/v1/gc'),
    ];
    for (const [i, res] of (await Promise.all(attempts)).entries()) {
      assert.equal(res.status, 405, `attempt ${i}: ${res.status} ${res.text}`);
      assert.equal(res.headers.allow, 'GET, HEAD');
      assert.equal((res.body as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNSUPPORTED');
      assert.match(res.text, /read-only/);
    }
    // A HEAD in another repository would link the blob there: not while read-only.
    assert.equal((await request(registry.app).head(`/v2/other/app/blobs/${layer.digest}`)).status, 404);
    assert.deepEqual(await registry.registry.metadata.readEvents(0, 1000), events, 'no event recorded');
    assert.deepEqual((await request(registry.app).get('/v2/team/app/tags/list')).body.tags, ['v1']);
  });
});

describe('storage.readOnly with token auth', () => {
  let root: string;
  let registry: AssembledRegistry;

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'read-only-auth-'));
    registry = await assemble(
      validateConfig({ storage: { root, readOnly: true }, auth: { mode: 'token', adminPassword: ADMIN_PASSWORD }, log: { level: 'silent' }, webhooks: { subscriptions: [] } }),
    );
  });
  after(async () => {
    await registry?.close();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('still gives tokens, by GET and by the OAuth2 POST, and refuses the changes they would allow', async () => {
    const basic = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
    const got = await request(registry.app).get('/auth/token?service=harbormaster-registry&scope=repository:team/app:pull,push').set('Authorization', basic);
    assert.equal(got.status, 200, got.text);
    const posted = await request(registry.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, service: 'harbormaster-registry', scope: 'repository:team/app:pull,push' });
    assert.equal(posted.status, 200, posted.text);
    for (const token of [got.body.token as string, posted.body.access_token as string]) {
      assert.equal((await request(registry.app).get('/v2/').set('Authorization', `Bearer ${token}`)).status, 200);
      const push = await request(registry.app).post('/v2/team/app/blobs/uploads/').set('Authorization', `Bearer ${token}`);
      assert.equal(push.status, 405);
      assert.equal(push.body.errors[0].code, 'UNSUPPORTED');
    }
  });
});
