/**
 * With token auth on, the lifecycle admin API (/api/v1/gc, /usage, /fsck) is for admins only,
 * behind the same guard as the other admin APIs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { ADMIN, addUser, basic, bearer, createAuthApp, getToken, pushImageAs, type AuthTestApp } from '../auth/helpers.js';

describe('lifecycle admin API with token auth', () => {
  let t: AuthTestApp;
  before(async () => {
    t = await createAuthApp();
  });
  after(() => t.close());

  const calls = [
    { method: 'post', path: '/api/v1/gc', body: { dryRun: true } },
    { method: 'get', path: '/api/v1/gc' },
    { method: 'get', path: '/api/v1/usage' },
    { method: 'get', path: '/api/v1/usage/team/app' },
    { method: 'post', path: '/api/v1/fsck', body: {} },
  ] as const;

  function call(entry: (typeof calls)[number], authorization?: string) {
    let req = entry.method === 'post' ? request(t.app).post(entry.path).send('body' in entry ? entry.body : {}) : request(t.app).get(entry.path);
    if (authorization) req = req.set('Authorization', authorization);
    return req;
  }

  it('refuses anonymous callers (401) and users who are not admins (403)', async () => {
    const user = await addUser(t, 'developer', [{ pattern: '**', actions: ['pull', 'push', 'delete'] }]);
    for (const entry of calls) {
      assert.equal((await call(entry)).status, 401, `${entry.method} ${entry.path} anonymously`);
      const forbidden = await call(entry, basic(user.username, user.password));
      assert.equal(forbidden.status, 403, `${entry.method} ${entry.path} as a non-admin`);
    }
  });

  it('serves admins', async () => {
    const { token } = await getToken(t.app, ['repository:team/app:pull,push'], ADMIN);
    const pushed = await pushImageAs(t.app, 'team/app', 'v1', bearer(token));
    assert.equal(pushed.status, 201);
    for (const entry of calls) {
      const res = await call(entry, basic(ADMIN.username, ADMIN.password));
      assert.equal(res.status, 200, `${entry.method} ${entry.path}: ${res.status} ${res.text}`);
    }
    const usage = await request(t.app).get('/api/v1/usage/team/app').set('Authorization', basic(ADMIN.username, ADMIN.password));
    assert.equal(usage.body.tags, 1);
  });
});
