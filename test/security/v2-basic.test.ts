/**
 * `curl -u admin:password` on /v2/ (issue 15, item 7): users' Basic credentials are accepted on
 * /v2 as robots' are, throttled as logins are, and remembered briefly so that scrypt is not
 * paid per request; what is remembered never outlives a password change, a deletion or a lock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { ADMIN, addUser, basic, createAuthApp, type AuthTestApp } from '../auth/helpers.js';

describe('Basic credentials on /v2', () => {
  let t: AuthTestApp;
  before(async () => {
    // One hash at a time and no queue: a second concurrent hash would be refused with 429,
    // which makes "no hash was needed" observable.
    t = await createAuthApp({ throttle: { maxConcurrentPasswordChecks: 1, maxQueuedPasswordChecks: 0 } });
  });
  after(() => t.close());

  const v2 = (path: string, username: string, password: string) => request(t.app).get(path).set('Authorization', basic(username, password));

  it('accepts an admin’s name and password, as curl -u sends them', async () => {
    const res = await v2('/v2/', ADMIN.username, ADMIN.password);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('a user gets what the grants allow: 403 DENIED beyond them, 401 for a wrong password', async () => {
    const user = await addUser(t, 'reader', [{ pattern: 'team/**', actions: 'pull' }]);
    assert.equal((await v2('/v2/team/app/tags/list', user.username, user.password)).status, 404, 'allowed (the repository does not exist yet)');
    const denied = await v2('/v2/other/app/tags/list', user.username, user.password);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.errors[0].code, 'DENIED');
    const wrong = await v2('/v2/', user.username, 'not-the-password');
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /^Bearer realm=/);
  });

  it('robots keep working with their secret', async () => {
    const robot = await t.accounts.createRobot({ name: 'ci', grants: [{ pattern: 'ci/**', actions: 'pull' }] });
    assert.equal((await v2('/v2/', 'robot+ci', robot.secret)).status, 200);
    assert.equal((await v2('/v2/ci/x/tags/list', 'robot+ci', robot.secret)).status, 404);
    assert.equal((await v2('/v2/team/x/tags/list', 'robot+ci', robot.secret)).status, 403);
  });

  it('a verified password is not hashed again per request', async () => {
    const user = await addUser(t, 'scripted', []);
    assert.equal((await v2('/v2/', user.username, user.password)).status, 200, 'first request: hashed and remembered');
    const burst = await Promise.all(Array.from({ length: 10 }, () => v2('/v2/', user.username, user.password)));
    assert.deepEqual(
      burst.map((res) => res.status),
      Array(10).fill(200),
      'ten at once with one hash slot and no queue: none needed a hash',
    );
    t.clock.advance(61);
    const expired = await Promise.all(Array.from({ length: 10 }, () => v2('/v2/', user.username, user.password)));
    assert.ok(
      expired.some((res) => res.status === 429),
      `after auth.passwordCacheSeconds the password is hashed again (statuses ${expired.map((res) => res.status).join(',')})`,
    );
    t.clock.advance(301);
  });

  it('what is remembered does not outlive a password change, a deletion or a lock', async () => {
    const user = await addUser(t, 'changing', [{ pattern: 'team/**', actions: 'pull' }]);
    assert.equal((await v2('/v2/', user.username, user.password)).status, 200);
    await t.accounts.setPassword(user.username, 'a-brand-new-password');
    assert.equal((await v2('/v2/', user.username, user.password)).status, 401, 'the old password stopped working at once');
    assert.equal((await v2('/v2/', user.username, 'a-brand-new-password')).status, 200);

    await t.accounts.deleteUser(user.username);
    assert.equal((await v2('/v2/', user.username, 'a-brand-new-password')).status, 401, 'deleted');
    await t.accounts.createUser({ name: user.username, password: 'a-brand-new-password', grants: [] });
    const recreated = await v2('/v2/team/app/tags/list', user.username, 'a-brand-new-password');
    assert.equal(recreated.status, 403, 'the re-created user is a new account without the old grants');

    const locked = await addUser(t, 'lockme', []);
    assert.equal((await v2('/v2/', locked.username, locked.password)).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await v2('/v2/', locked.username, `guess-${i}-wrong`)).status, 401);
    const refused = await v2('/v2/', locked.username, locked.password);
    assert.equal(refused.status, 429, 'a locked account is refused even with remembered credentials');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    t.clock.advance(301);
  });

  it('failures on /v2 count against the account like any other login', async () => {
    const user = await addUser(t, 'guessed', []);
    for (let i = 0; i < 5; i++) assert.equal((await v2('/v2/', user.username, `guess-${i}-wrong`)).status, 401);
    const token = await request(t.app).get('/auth/token').set('Authorization', basic(user.username, user.password));
    assert.equal(token.status, 429, 'the token endpoint sees the same lock');
    t.clock.advance(301);
  });
});
