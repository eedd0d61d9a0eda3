/**
 * Per-repository access control: pull-only users, robots limited to patterns, Basic robot
 * secrets straight to /v2/, catalog and tag listings that show only what the caller may pull,
 * cross-repository mounts, and changes to accounts taking effect at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { ADMIN, addUser, adminBearer, basic, bearer, claimsOf, createAuthApp, getToken, parseChallenge, pushImageAs, type AuthTestApp } from './helpers.js';

describe('access control', () => {
  let t: AuthTestApp;
  let images: Record<string, { manifestDigest: string; layerDigest: string }>;
  let robotSecret: string;

  before(async () => {
    t = await createAuthApp({ publicRepositories: ['public/*'] });
    const repositories = ['ci/app', 'ci/tools', 'prod/app', 'team/web', 'team/deep/api', 'public/base', 'secret/vault'];
    const admin = await adminBearer(t.app, repositories.map((name) => `repository:${name}:pull,push`));
    images = {};
    for (const name of repositories) {
      const pushed = await pushImageAs(t.app, name, 'v1', admin);
      assert.equal(pushed.status, 201, `seed ${name}`);
      images[name] = pushed;
    }
    const robot = await t.accounts.createRobot({ name: 'ci-bot', grants: [{ pattern: 'ci/*', actions: ['pull', 'push'] }] });
    robotSecret = robot.secret;
  });
  after(() => t.close());

  it('a pull-only user can pull but neither push nor delete', async () => {
    const reader = await addUser(t, 'puller', [{ pattern: 'prod/*', actions: 'pull' }]);
    const token = (await getToken(t.app, ['repository:prod/app:pull,push,delete'], reader)).token;
    assert.deepEqual(claimsOf(token).access, [{ type: 'repository', name: 'prod/app', actions: ['pull'] }]);

    const pull = await request(t.app).get('/v2/prod/app/manifests/v1').set('Authorization', bearer(token));
    assert.equal(pull.status, 200);
    const blob = await request(t.app).get(`/v2/prod/app/blobs/${images['prod/app']!.layerDigest}`).set('Authorization', bearer(token));
    assert.equal(blob.status, 200);

    const push = await pushImageAs(t.app, 'prod/app', 'v2', bearer(token));
    assert.equal(push.status, 401);
    const put = await request(t.app).put('/v2/prod/app/manifests/v1').set('Authorization', bearer(token)).send('{}');
    assert.equal(put.status, 401);
    assert.equal(parseChallenge(put.headers['www-authenticate']).error, 'insufficient_scope');
    assert.equal(parseChallenge(put.headers['www-authenticate']).scope, 'repository:prod/app:pull,push');
    const del = await request(t.app).delete(`/v2/prod/app/manifests/${images['prod/app']!.manifestDigest}`).set('Authorization', bearer(token));
    assert.equal(del.status, 401);
    assert.equal(parseChallenge(del.headers['www-authenticate']).scope, 'repository:prod/app:delete');
    const delBlob = await request(t.app).delete(`/v2/prod/app/blobs/${images['prod/app']!.layerDigest}`).set('Authorization', bearer(token));
    assert.equal(delBlob.status, 401);
    // Still there.
    assert.equal((await request(t.app).get('/v2/prod/app/manifests/v1').set('Authorization', bearer(token))).status, 200);
  });

  it('a user with delete may delete', async () => {
    const deleter = await addUser(t, 'deleter', [{ pattern: 'team/**', actions: ['pull', 'delete'] }]);
    const token = (await getToken(t.app, ['repository:team/deep/api:pull,delete'], deleter)).token;
    const del = await request(t.app).delete(`/v2/team/deep/api/manifests/${images['team/deep/api']!.manifestDigest}`).set('Authorization', bearer(token));
    assert.equal(del.status, 202);
  });

  it('a robot limited to ci/* works on ci/app and cannot touch prod/app', async () => {
    const robot = { username: 'robot+ci-bot', password: robotSecret };
    const ciToken = (await getToken(t.app, ['repository:ci/app:pull,push'], robot)).token;
    assert.equal(claimsOf(ciToken).sub, 'robot+ci-bot');
    assert.equal((await pushImageAs(t.app, 'ci/app', 'v2', bearer(ciToken))).status, 201);

    const prodToken = (await getToken(t.app, ['repository:prod/app:pull,push,delete'], robot)).token;
    assert.deepEqual(claimsOf(prodToken).access, []);
    assert.equal((await request(t.app).get('/v2/prod/app/manifests/v1').set('Authorization', bearer(prodToken))).status, 401);
    assert.equal((await pushImageAs(t.app, 'prod/app', 'evil', bearer(prodToken))).status, 401);
    assert.equal((await request(t.app).delete(`/v2/prod/app/manifests/${images['prod/app']!.manifestDigest}`).set('Authorization', bearer(prodToken))).status, 401);
    // A ci/app token is no good for prod/app either.
    assert.equal((await request(t.app).get('/v2/prod/app/manifests/v1').set('Authorization', bearer(ciToken))).status, 401);
    // ci/* is one level: ci/app/sub is outside it.
    const deeper = (await getToken(t.app, ['repository:ci/app/sub:pull,push'], robot)).token;
    assert.deepEqual(claimsOf(deeper).access, []);
  });

  it('HTTP Basic straight to /v2/ with a robot secret, for scripts that skip the token dance', async () => {
    const auth = basic('robot+ci-bot', robotSecret);
    assert.equal((await request(t.app).get('/v2/').set('Authorization', auth)).status, 200);
    assert.equal((await request(t.app).get('/v2/ci/app/manifests/v1').set('Authorization', auth)).status, 200);
    assert.equal((await pushImageAs(t.app, 'ci/tools', 'v2', auth)).status, 201);
    const denied = await request(t.app).get('/v2/prod/app/manifests/v1').set('Authorization', auth);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.errors[0].code, 'DENIED');
    const wrong = await request(t.app).get('/v2/').set('Authorization', basic('robot+ci-bot', 'wrong-secret'));
    assert.equal(wrong.status, 401);
    assert.ok(parseChallenge(wrong.headers['www-authenticate']).realm);
    // A user's password works straight to /v2/ too (curl -u admin:…); test/security/v2-basic.test.ts covers it.
    const user = await request(t.app).get('/v2/').set('Authorization', basic(ADMIN.username, ADMIN.password));
    assert.equal(user.status, 200);
  });

  it('authorises the URI-decoded repository the route serves (no %2F escape out of a pattern)', async () => {
    const auth = basic('robot+ci-bot', robotSecret);
    const escaped = await request(t.app).get('/v2/ci/x%2Fy/tags/list').set('Authorization', auth);
    assert.equal(escaped.status, 403, 'ci/x/y is outside ci/*');
    const token = (await getToken(t.app, ['repository:ci/app:pull'], { username: 'robot+ci-bot', password: robotSecret })).token;
    const encodedName = await request(t.app).get('/v2/ci%2Fapp/tags/list').set('Authorization', bearer(token));
    assert.equal(encodedName.status, 200, 'ci%2Fapp is ci/app');
    assert.deepEqual(encodedName.body.tags, ['v1', 'v2']);
  });

  it('the catalog lists only what the caller may pull', async () => {
    const catalogOf = async (authorization: string, query = '') => {
      const res = await request(t.app).get(`/v2/_catalog${query}`).set('Authorization', authorization);
      assert.equal(res.status, 200, res.text);
      return res;
    };
    const admin = await adminBearer(t.app, ['registry:catalog:*']);
    assert.deepEqual((await catalogOf(admin)).body.repositories, ['ci/app', 'ci/tools', 'prod/app', 'public/base', 'secret/vault', 'team/deep/api', 'team/web']);

    const robotToken = bearer((await getToken(t.app, ['registry:catalog:*'], { username: 'robot+ci-bot', password: robotSecret })).token);
    assert.deepEqual((await catalogOf(robotToken)).body.repositories, ['ci/app', 'ci/tools', 'public/base']);

    const teamUser = await addUser(t, 'teamer', [{ pattern: 'team/**', actions: 'pull' }]);
    const teamToken = bearer((await getToken(t.app, ['registry:catalog:*'], teamUser)).token);
    // Paging by index over the visible entries: n=2 then the rest.
    const first = await catalogOf(teamToken, '?n=2');
    assert.deepEqual(first.body.repositories, ['public/base', 'team/deep/api']);
    assert.equal(first.headers.link, '</v2/_catalog?n=2&last=team%2Fdeep%2Fapi>; rel="next"');
    const second = await catalogOf(teamToken, '?n=2&last=team%2Fdeep%2Fapi');
    assert.deepEqual(second.body.repositories, ['team/web']);
    assert.equal(second.headers.link, undefined);

    const anonymous = bearer((await getToken(t.app, ['registry:catalog:*'])).token);
    assert.deepEqual((await catalogOf(anonymous)).body.repositories, ['public/base']);

    // A token without the catalog scope is challenged for it.
    const noScope = bearer((await getToken(t.app, [], teamUser)).token);
    const refused = await request(t.app).get('/v2/_catalog').set('Authorization', noScope);
    assert.equal(refused.status, 401);
    assert.equal(parseChallenge(refused.headers['www-authenticate']).scope, 'registry:catalog:*');
  });

  it('tag listings need pull on the repository', async () => {
    const teamUser = { username: 'teamer', password: 'teamer-password-123' };
    const token = bearer((await getToken(t.app, ['repository:team/web:pull', 'repository:secret/vault:pull'], teamUser)).token);
    const allowed = await request(t.app).get('/v2/team/web/tags/list').set('Authorization', token);
    assert.equal(allowed.status, 200);
    assert.deepEqual(allowed.body.tags, ['v1']);
    const hidden = await request(t.app).get('/v2/secret/vault/tags/list').set('Authorization', token);
    assert.equal(hidden.status, 401, 'no pull on secret/vault: nothing is revealed, not even existence');
  });

  it('a mount from a repository the caller cannot pull falls back to an ordinary upload', async () => {
    const robot = { username: 'robot+ci-bot', password: robotSecret };
    // containers/image asks for the source's pull too; the token server grants only what the robot holds.
    const token = (await getToken(t.app, ['repository:ci/mounted:pull,push', 'repository:secret/vault:pull'], robot)).token;
    const secretLayer = images['secret/vault']!.layerDigest;
    const mount = await request(t.app)
      .post(`/v2/ci/mounted/blobs/uploads/?mount=${secretLayer}&from=secret/vault`)
      .set('Authorization', bearer(token));
    assert.equal(mount.status, 202, 'an upload session instead of a mount');
    const head = await request(t.app).head(`/v2/ci/mounted/blobs/${secretLayer}`).set('Authorization', bearer(token));
    assert.equal(head.status, 404, 'HEAD does not link a blob from a repository the robot cannot pull');

    const ciLayer = images['ci/app']!.layerDigest;
    const allowed = await request(t.app).post(`/v2/ci/mounted/blobs/uploads/?mount=${ciLayer}&from=ci/app`).set('Authorization', bearer(token));
    assert.equal(allowed.status, 201, 'mount from a repository the robot may pull');
  });

  it('removing a grant, revoking a robot or deleting a user takes effect on live tokens', async () => {
    const user = await addUser(t, 'temp', [{ pattern: 'team/web', actions: 'pull' }]);
    const userToken = bearer((await getToken(t.app, ['repository:team/web:pull'], user)).token);
    assert.equal((await request(t.app).get('/v2/team/web/tags/list').set('Authorization', userToken)).status, 200);
    await t.accounts.removeGrant('temp', 'team/web');
    const afterRemoval = await request(t.app).get('/v2/team/web/tags/list').set('Authorization', userToken);
    assert.equal(afterRemoval.status, 401);
    assert.equal(parseChallenge(afterRemoval.headers['www-authenticate']).error, 'insufficient_scope');
    await t.accounts.deleteUser('temp');
    const afterDeletion = await request(t.app).get('/v2/').set('Authorization', userToken);
    assert.equal(afterDeletion.status, 401);
    assert.equal(parseChallenge(afterDeletion.headers['www-authenticate']).error, 'invalid_token');

    const robot = await t.accounts.createRobot({ name: 'short-lived', grants: [{ pattern: 'ci/*', actions: 'pull' }] });
    const robotToken = bearer((await getToken(t.app, ['repository:ci/app:pull'], { username: 'robot+short-lived', password: robot.secret })).token);
    assert.equal((await request(t.app).get('/v2/ci/app/tags/list').set('Authorization', robotToken)).status, 200);
    await t.accounts.revokeRobot('short-lived');
    assert.equal((await request(t.app).get('/v2/ci/app/tags/list').set('Authorization', robotToken)).status, 401);
    const login = await request(t.app).get('/auth/token').set('Authorization', basic('robot+short-lived', robot.secret));
    assert.equal(login.status, 401);
  });

  it('an expired robot can no longer log in', async () => {
    const robot = await t.accounts.createRobot({ name: 'expiring', grants: [{ pattern: 'ci/*', actions: 'pull' }], expiresAt: t.clock.ms + 3_600_000 });
    const credentials = { username: 'robot+expiring', password: robot.secret };
    await getToken(t.app, ['repository:ci/app:pull'], credentials);
    t.clock.advance(3_601);
    try {
      const res = await request(t.app).get('/auth/token').set('Authorization', basic(credentials.username, credentials.password));
      assert.equal(res.status, 401);
      assert.equal((await t.accounts.getRobot('expiring')).status, 'expired');
    } finally {
      t.clock.advance(-3_601);
    }
  });

  it('an admin may do anything, including delete', async () => {
    const token = await adminBearer(t.app, ['repository:secret/vault:pull,push,delete']);
    assert.deepEqual(claimsOf(token.slice(7)).access, [{ type: 'repository', name: 'secret/vault', actions: ['pull', 'push', 'delete'] }]);
    const del = await request(t.app).delete(`/v2/secret/vault/manifests/${images['secret/vault']!.manifestDigest}`).set('Authorization', token);
    assert.equal(del.status, 202);
  });
});
