/**
 * Behind a reverse proxy: with http.trustProxy the token realm and webhook events use the
 * public scheme and host from X-Forwarded-Proto/-Host; without it those headers are ignored;
 * http.publicUrl overrides both. Locations stay relative, so they resolve against whatever
 * address the client used.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { pushImage } from '../helpers/app.js';
import { ADMIN_PASSWORD, createOpsApp } from './support.js';

const FORWARDED = { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'registry.example.com' };

function realmOf(header: unknown): string | undefined {
  return /realm="([^"]+)"/.exec(String(header))?.[1];
}

describe('reverse proxy', () => {
  it('trustProxy: the token realm uses the forwarded scheme and host', async () => {
    const ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD }, http: { trustProxy: true } });
    try {
      const res = await request(ops.app).get('/v2/').set(FORWARDED);
      assert.equal(res.status, 401);
      assert.equal(realmOf(res.headers['www-authenticate']), 'https://registry.example.com/auth/token');
    } finally {
      await ops.dispose();
    }
  });

  it('without trustProxy the forwarded headers are ignored', async () => {
    const ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD } });
    try {
      const res = await request(ops.app).get('/v2/').set(FORWARDED).set('Host', 'internal:5000');
      assert.equal(realmOf(res.headers['www-authenticate']), 'http://internal:5000/auth/token');
    } finally {
      await ops.dispose();
    }
  });

  it('trustProxy limited to other proxy addresses ignores headers from this client', async () => {
    const ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD }, http: { trustProxy: ['10.0.0.0/8'] } });
    try {
      const res = await request(ops.app).get('/v2/').set(FORWARDED).set('Host', 'internal:5000');
      assert.equal(realmOf(res.headers['www-authenticate']), 'http://internal:5000/auth/token');
    } finally {
      await ops.dispose();
    }
  });

  it('http.publicUrl wins over forwarded headers', async () => {
    const ops = await createOpsApp({
      auth: { mode: 'token', adminPassword: ADMIN_PASSWORD },
      http: { trustProxy: true, publicUrl: 'https://public.example.org' },
    });
    try {
      const res = await request(ops.app).get('/v2/').set(FORWARDED);
      assert.equal(realmOf(res.headers['www-authenticate']), 'https://public.example.org/auth/token');
    } finally {
      await ops.dispose();
    }
  });

  it('webhook events name the registry by its public host once a push came through the proxy', async () => {
    const ops = await createOpsApp({ http: { trustProxy: true } });
    try {
      assert.notEqual(ops.webhooks.publicHost, 'registry.example.com');
      const config = await request(ops.app).post(`/v2/team/app/blobs/uploads/?digest=${'sha256:' + '1'.repeat(64)}`).set(FORWARDED).send('x');
      assert.equal(config.status, 400, 'a bad digest: only manifest changes teach the origin');
      assert.notEqual(ops.webhooks.publicHost, 'registry.example.com');
      const image = await pushImage(ops.app, 'team/app', 'seed-only');
      const res = await request(ops.app)
        .put('/v2/team/app/manifests/1.0')
        .set(FORWARDED)
        .set('Content-Type', 'application/vnd.oci.image.manifest.v1+json')
        .send(image.body.toString('utf8'));
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/team/app/manifests/${image.digest}`, 'relative: right for every client address');
      assert.equal(ops.webhooks.publicHost, 'registry.example.com');
    } finally {
      await ops.dispose();
    }
  });

  it('with http.publicUrl, webhook events keep it whatever the proxy says', async () => {
    const ops = await createOpsApp({ http: { trustProxy: true, publicUrl: 'https://public.example.org' } });
    try {
      const image = await pushImage(ops.app, 'team/app', 'seed');
      await request(ops.app).put('/v2/team/app/manifests/2.0').set(FORWARDED).set('Content-Type', 'application/vnd.oci.image.manifest.v1+json').send(image.body.toString('utf8'));
      assert.equal(ops.webhooks.publicHost, 'public.example.org');
    } finally {
      await ops.dispose();
    }
  });
});
