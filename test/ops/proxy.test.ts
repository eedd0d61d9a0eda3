/**
 * Behind a reverse proxy: with http.trustProxy the token realm uses the public scheme and host
 * from X-Forwarded-Proto/-Host; without it those headers are ignored; http.publicUrl overrides
 * both. (Webhook events decide their host per request: test/webhooks/event-host.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
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
});
