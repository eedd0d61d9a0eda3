/**
 * Who sees what through the browsing API with token auth: the same tokens and scopes as /v2
 * (the list needs registry:catalog:* and shows only what the caller may pull; a repository's
 * tags and images need repository:<name>:pull), anonymous callers see public repositories only,
 * and the tag list names who pushed each tag.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { assertError } from '../helpers/app.js';
import { ADMIN, addUser, basic, bearer, createAuthApp, getToken, parseChallenge, pushImageAs, type AuthTestApp } from './helpers.js';

describe('browsing API access', () => {
  let t: AuthTestApp;
  let alice: { username: string; password: string };
  let robotSecret: string;

  const names = async (authorization: string) => {
    const res = await request(t.app).get('/api/v1/repositories').set('Authorization', authorization).expect(200);
    return (res.body.repositories as Array<{ name: string }>).map((repository) => repository.name);
  };

  before(async () => {
    t = await createAuthApp({ publicRepositories: ['pub/*'] });
    alice = await addUser(t, 'alice', [{ pattern: 'team/*', actions: ['pull', 'push'] }]);
    const robot = await t.accounts.createRobot({ name: 'ci', grants: [{ pattern: 'ci/**', actions: ['pull', 'push'] }], expiresAt: null, createdBy: 'admin' });
    robotSecret = robot.secret;
    for (const repository of ['pub/tool', 'secret/vault']) {
      const token = (await getToken(t.app, [`repository:${repository}:pull,push`], ADMIN)).token;
      assert.equal((await pushImageAs(t.app, repository, '1.0', bearer(token))).status, 201);
    }
    const aliceToken = (await getToken(t.app, ['repository:team/app:pull,push'], alice)).token;
    assert.equal((await pushImageAs(t.app, 'team/app', '1.0', bearer(aliceToken))).status, 201);
    assert.equal((await pushImageAs(t.app, 'ci/build', '7', basic('robot+ci', robotSecret))).status, 201);
  });

  after(() => t?.close());

  it('challenges a caller without a token with the scope the request needs', async () => {
    const list = await request(t.app).get('/api/v1/repositories');
    assertError(list, 401, 'UNAUTHORIZED');
    assert.equal(parseChallenge(list.headers['www-authenticate']).scope, 'registry:catalog:*');
    const tags = await request(t.app).get('/api/v1/repositories/team/app/_tags');
    assertError(tags, 401, 'UNAUTHORIZED');
    assert.equal(parseChallenge(tags.headers['www-authenticate']).scope, 'repository:team/app:pull');
  });

  it('lists only the repositories the account may pull', async () => {
    const catalog = ['registry:catalog:*'];
    assert.deepEqual(await names(bearer((await getToken(t.app, catalog, ADMIN)).token)), ['ci/build', 'pub/tool', 'secret/vault', 'team/app']);
    assert.deepEqual(await names(bearer((await getToken(t.app, catalog, alice)).token)), ['pub/tool', 'team/app']);
    assert.deepEqual(await names(bearer((await getToken(t.app, catalog)).token)), ['pub/tool'], 'anonymous: public repositories only');
    assert.deepEqual(await names(basic('robot+ci', robotSecret)), ['ci/build', 'pub/tool'], 'a robot may send its secret as Basic, as on /v2');
  });

  it('refuses a token without the catalog scope; takes user passwords as Basic, as /v2 does', async () => {
    const pullOnly = (await getToken(t.app, ['repository:team/app:pull'], alice)).token;
    const res = await request(t.app).get('/api/v1/repositories').set('Authorization', bearer(pullOnly));
    assertError(res, 401, 'UNAUTHORIZED');
    assert.equal(parseChallenge(res.headers['www-authenticate']).error, 'insufficient_scope');
    const viaBasic = await request(t.app).get('/api/v1/repositories').set('Authorization', basic(alice.username, alice.password)).expect(200);
    assert.deepEqual(viaBasic.body.repositories.map((r: { name: string }) => r.name), ['pub/tool', 'team/app'], 'Basic sees what the account may pull, no more');
    assertError(await request(t.app).get('/api/v1/repositories').set('Authorization', basic(alice.username, 'wrong-password')), 401, 'UNAUTHORIZED');
  });

  it('serves a repository\'s tags and images only with pull on it', async () => {
    // The token server grants no more than the account holds: alice's token for secret/vault carries nothing.
    const denied = (await getToken(t.app, ['repository:secret/vault:pull'], alice)).token;
    for (const path of ['/api/v1/repositories/secret/vault/_tags', '/api/v1/repositories/secret/vault/_images/1.0', '/api/v1/repositories/secret/vault']) {
      const res = await request(t.app).get(path).set('Authorization', bearer(denied));
      assertError(res, 401, 'UNAUTHORIZED');
      assert.equal(parseChallenge(res.headers['www-authenticate']).error, 'insufficient_scope');
    }
    const robot = await request(t.app).get('/api/v1/repositories/team/app/_tags').set('Authorization', basic('robot+ci', robotSecret));
    assertError(robot, 403, 'DENIED');
    const allowed = (await getToken(t.app, ['repository:team/app:pull'], alice)).token;
    const tags = await request(t.app).get('/api/v1/repositories/team/app/_tags').set('Authorization', bearer(allowed)).expect(200);
    assert.equal(tags.body.tags[0].name, '1.0');
    await request(t.app).get('/api/v1/repositories/team/app/_images/1.0').set('Authorization', bearer(allowed)).expect(200);
  });

  it('names who pushed each tag: the user or robot of the push', async () => {
    const admin = bearer((await getToken(t.app, ['repository:team/app:pull', 'repository:ci/build:pull', 'repository:pub/tool:pull'], ADMIN)).token);
    const pusher = async (repository: string) =>
      (await request(t.app).get(`/api/v1/repositories/${repository}/_tags`).set('Authorization', admin).expect(200)).body.tags[0].pusher;
    assert.deepEqual(await pusher('team/app'), { name: 'alice', kind: 'user' });
    assert.deepEqual(await pusher('ci/build'), { name: 'robot+ci', kind: 'robot' });
    assert.deepEqual(await pusher('pub/tool'), { name: 'admin', kind: 'user' });
  });
});
