/** The admin JSON API: users, robots and grants under /api/v1, for admins only. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { ADMIN, addUser, basic, bearer, claimsOf, createAuthApp, getToken, pushImageAs, type AuthTestApp } from './helpers.js';

describe('admin API', () => {
  let t: AuthTestApp;
  const asAdmin = basic(ADMIN.username, ADMIN.password);
  before(async () => {
    t = await createAuthApp();
  });
  after(() => t.close());

  it('refuses anonymous callers (401 with a Basic challenge) and non-admins (403)', async () => {
    const anonymous = await request(t.app).get('/api/v1/users');
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm=/);
    const user = await addUser(t, 'plain', [{ pattern: '**', actions: ['pull', 'push', 'delete'] }]);
    const forbidden = await request(t.app).get('/api/v1/robots').set('Authorization', basic(user.username, user.password));
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.errors[0].code, 'DENIED');
    const wrong = await request(t.app).get('/api/v1/users').set('Authorization', basic('admin', 'wrong-password'));
    assert.equal(wrong.status, 401);
  });

  it('accepts a Bearer token only when it carries registry:admin:* for an admin', async () => {
    const adminToken = (await getToken(t.app, ['registry:admin:*'], ADMIN)).token;
    assert.deepEqual(claimsOf(adminToken).access, [{ type: 'registry', name: 'admin', actions: ['*'] }]);
    assert.equal((await request(t.app).get('/api/v1/users').set('Authorization', bearer(adminToken))).status, 200);
    const pullToken = (await getToken(t.app, ['repository:x/y:pull'], ADMIN)).token;
    assert.equal((await request(t.app).get('/api/v1/users').set('Authorization', bearer(pullToken))).status, 403);
    const userToken = (await getToken(t.app, ['registry:admin:*'], { username: 'plain', password: 'plain-password-123' })).token;
    assert.deepEqual(claimsOf(userToken).access, [], 'non-admins are never granted registry:admin:*');
    assert.equal((await request(t.app).get('/api/v1/users').set('Authorization', bearer(userToken))).status, 403);
  });

  it('creates, reads, updates and deletes users; the new user can log in with exactly its grants', async () => {
    const created = await request(t.app)
      .post('/api/v1/users')
      .set('Authorization', asAdmin)
      .send({ name: 'dev', password: 'dev-password-1', grants: [{ pattern: 'team/*', actions: ['pull', 'push'] }] });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.name, 'dev');
    assert.equal(created.body.role, 'user');
    assert.deepEqual(created.body.grants, [{ pattern: 'team/*', actions: ['pull', 'push'] }]);
    assert.equal(created.body.password, undefined);
    assert.equal(created.body.passwordHash, undefined);

    const token = (await getToken(t.app, ['repository:team/app:pull,push,delete'], { username: 'dev', password: 'dev-password-1' })).token;
    assert.deepEqual(claimsOf(token).access, [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);
    assert.equal((await pushImageAs(t.app, 'team/app', 'v1', bearer(token))).status, 201);

    const list = await request(t.app).get('/api/v1/users').set('Authorization', asAdmin);
    assert.deepEqual(
      (list.body.users as Array<{ name: string }>).map((user) => user.name),
      ['admin', 'dev', 'plain'],
    );
    const duplicate = await request(t.app).post('/api/v1/users').set('Authorization', asAdmin).send({ name: 'dev', password: 'another-password' });
    assert.equal(duplicate.status, 409);
    assert.equal(duplicate.body.errors[0].code, 'CONFLICT');

    const patched = await request(t.app).patch('/api/v1/users/dev').set('Authorization', asAdmin).send({ password: 'changed-password-2', role: 'admin' });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.role, 'admin');
    const oldPassword = await request(t.app).get('/auth/token').set('Authorization', basic('dev', 'dev-password-1'));
    assert.equal(oldPassword.status, 401);
    await getToken(t.app, [], { username: 'dev', password: 'changed-password-2' });

    assert.equal((await request(t.app).delete('/api/v1/users/dev').set('Authorization', asAdmin)).status, 204);
    assert.equal((await request(t.app).get('/api/v1/users/dev').set('Authorization', asAdmin)).status, 404);
  });

  it('validates input', async () => {
    const cases: Array<[object, RegExp]> = [
      [{ name: 'Bad Name', password: 'long-enough-pw' }, /user name/],
      [{ name: 'short', password: 'short' }, /password must be/],
      [{ name: 'ok', password: 'long-enough-pw', role: 'root' }, /role/],
      [{ name: 'ok', password: 'long-enough-pw', grants: [{ pattern: 'team/**x', actions: 'pull' }] }, /pattern/],
      [{ name: 'ok', password: 'long-enough-pw', grants: [{ pattern: 'team/*', actions: 'pull,own' }] }, /actions/],
      [{ name: 'ok', password: 'long-enough-pw', extra: true }, /Unrecognized key/i],
    ];
    for (const [body, message] of cases) {
      const res = await request(t.app).post('/api/v1/users').set('Authorization', asAdmin).send(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.errors[0].code, 'INVALID_REQUEST');
      assert.match(res.body.errors[0].message, message);
    }
    const malformed = await request(t.app).post('/api/v1/users').set('Authorization', asAdmin).type('json').send('{"name":');
    assert.equal(malformed.status, 400);
  });

  it('answers a body it cannot parse with 400 or 413 and a fixed message that never quotes the body', async () => {
    const broken = await request(t.app)
      .post('/api/v1/users')
      .set('Authorization', asAdmin)
      .set('Content-Type', 'application/json')
      .send('password=hunter2-not-json');
    assert.equal(broken.status, 400);
    assert.equal(broken.body.errors[0].code, 'INVALID_REQUEST');
    assert.equal(broken.body.errors[0].message, 'request body is not valid JSON');
    assert.doesNotMatch(broken.text, /hunter2/);
    const huge = await request(t.app)
      .post('/api/v1/users')
      .set('Authorization', asAdmin)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ name: 'big', password: 'x'.repeat(100 * 1024) }));
    assert.equal(huge.status, 413);
    assert.equal(huge.body.errors[0].code, 'INVALID_REQUEST');
  });

  it('never removes or demotes the last admin', async () => {
    const del = await request(t.app).delete('/api/v1/users/admin').set('Authorization', asAdmin);
    assert.equal(del.status, 409);
    const demote = await request(t.app).patch('/api/v1/users/admin').set('Authorization', asAdmin).send({ role: 'user' });
    assert.equal(demote.status, 409);
  });

  it('creates robots with a secret shown once, lists them without it, and revokes them', async () => {
    const created = await request(t.app)
      .post('/api/v1/robots')
      .set('Authorization', asAdmin)
      .send({ name: 'builder', description: 'CI builds', expiresIn: '30d', grants: [{ pattern: 'ci/**', actions: 'pull,push' }] });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.login, 'robot+builder');
    assert.equal(created.body.createdBy, 'admin');
    assert.equal(created.body.status, 'active');
    assert.equal(Date.parse(created.body.expiresAt), t.clock.ms + 30 * 86_400_000);
    const secret = created.body.secret as string;
    assert.ok(secret.length >= 40);

    const listed = await request(t.app).get('/api/v1/robots').set('Authorization', asAdmin);
    assert.equal(listed.body.robots.length, 1);
    assert.equal(listed.body.robots[0].secret, undefined);
    assert.ok(!JSON.stringify(listed.body).includes(secret));

    const token = (await getToken(t.app, ['repository:ci/a/b:push'], { username: 'robot+builder', password: secret })).token;
    assert.deepEqual(claimsOf(token).access, [{ type: 'repository', name: 'ci/a/b', actions: ['push'] }]);

    const missingGrants = await request(t.app).post('/api/v1/robots').set('Authorization', asAdmin).send({ name: 'nogrants', grants: [] });
    assert.equal(missingGrants.status, 400);
    const past = await request(t.app)
      .post('/api/v1/robots')
      .set('Authorization', asAdmin)
      .send({ name: 'past', expiresAt: '2001-01-01T00:00:00Z', grants: [{ pattern: 'ci/*', actions: 'pull' }] });
    assert.equal(past.status, 400);

    assert.equal((await request(t.app).delete('/api/v1/robots/builder').set('Authorization', asAdmin)).status, 204);
    const revoked = await request(t.app).get('/api/v1/robots/builder').set('Authorization', asAdmin);
    assert.equal(revoked.body.status, 'revoked');
    assert.equal((await request(t.app).get('/auth/token').set('Authorization', basic('robot+builder', secret))).status, 401);
    assert.equal((await request(t.app).delete('/api/v1/robots/builder').set('Authorization', asAdmin)).status, 409);
    // The name can be reused for a fresh robot, with a fresh secret.
    const again = await request(t.app).post('/api/v1/robots').set('Authorization', asAdmin).send({ name: 'builder', grants: [{ pattern: 'ci/*', actions: 'pull' }] });
    assert.equal(again.status, 201);
    assert.notEqual(again.body.secret, secret);
    assert.equal((await request(t.app).get('/auth/token').set('Authorization', basic('robot+builder', secret))).status, 401);
  });

  it('manages grants of users and robots', async () => {
    await addUser(t, 'granted', []);
    const add = await request(t.app).post('/api/v1/users/granted/grants').set('Authorization', asAdmin).send({ pattern: 'apps/*', actions: ['pull'] });
    assert.equal(add.status, 201);
    const merge = await request(t.app).post('/api/v1/users/granted/grants').set('Authorization', asAdmin).send({ pattern: 'apps/*', actions: 'push' });
    assert.deepEqual(merge.body, { pattern: 'apps/*', actions: ['pull', 'push'] });
    const list = await request(t.app).get('/api/v1/users/granted/grants').set('Authorization', asAdmin);
    assert.deepEqual(list.body.grants, [{ pattern: 'apps/*', actions: ['pull', 'push'] }]);
    const remove = await request(t.app).delete('/api/v1/users/granted/grants?pattern=apps/*').set('Authorization', asAdmin);
    assert.equal(remove.status, 204);
    const again = await request(t.app).delete('/api/v1/users/granted/grants?pattern=apps/*').set('Authorization', asAdmin);
    assert.equal(again.status, 404);

    const robotGrant = await request(t.app).post('/api/v1/robots/builder/grants').set('Authorization', asAdmin).send({ pattern: 'tools/**', actions: 'pull' });
    assert.equal(robotGrant.status, 201);
    const robotGrants = await request(t.app).get('/api/v1/robots/builder/grants').set('Authorization', asAdmin);
    assert.deepEqual(robotGrants.body.grants, [
      { pattern: 'ci/*', actions: ['pull'] },
      { pattern: 'tools/**', actions: ['pull'] },
    ]);
    assert.equal((await request(t.app).get('/api/v1/users/nobody/grants').set('Authorization', asAdmin)).status, 404);
  });
});
