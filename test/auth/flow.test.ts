/**
 * The token dance as `docker login` / `docker push` perform it: challenge → token request
 * (GET with Basic, or POST OAuth2 form) → retry with Bearer; refresh tokens; anonymous pulls
 * of public repositories.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import {
  ADMIN,
  ADMIN_PASSWORD,
  addUser,
  basic,
  bearer,
  claimsOf,
  createAuthApp,
  getToken,
  headerOf,
  parseChallenge,
  pushImageAs,
  realmPath,
  type AuthTestApp,
} from './helpers.js';

describe('token authentication flow', () => {
  let t: AuthTestApp;
  before(async () => {
    t = await createAuthApp({ publicRepositories: ['public/**'] });
  });
  after(() => t.close());

  it('challenges an unauthenticated /v2/ with the spec body and a Bearer realm', async () => {
    const res = await request(t.app).get('/v2/');
    assert.equal(res.status, 401);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    const challenge = parseChallenge(res.headers['www-authenticate']);
    assert.match(challenge.realm!, /^http:\/\/127\.0\.0\.1:\d+\/auth\/token$/);
    assert.equal(challenge.service, 'harbormaster-registry');
    assert.equal(challenge.scope, undefined, 'the base check needs no scope');
    assert.equal(res.body.errors[0].code, 'UNAUTHORIZED');
  });

  it('answers paths outside the registry API with 404, not a credentials challenge', async () => {
    const res = await request(t.app).get('/favicon.ico');
    assert.equal(res.status, 404);
    assert.equal(res.headers['www-authenticate'], undefined);
  });

  it('challenges a wrong method on a known endpoint before telling it apart (405 only with a valid identity)', async () => {
    assert.equal((await request(t.app).post('/v2/team/app/manifests/latest')).status, 401);
  });

  it('names the needed scope: pull,push for a push, pull for a pull, registry:catalog:* for the catalog', async () => {
    const push = await request(t.app).post('/v2/team/app/blobs/uploads/');
    assert.equal(push.status, 401);
    assert.equal(parseChallenge(push.headers['www-authenticate']).scope, 'repository:team/app:pull,push');
    assert.deepEqual(push.body.errors[0].detail, [
      { Type: 'repository', Name: 'team/app', Action: 'pull' },
      { Type: 'repository', Name: 'team/app', Action: 'push' },
    ]);
    const pull = await request(t.app).get('/v2/team/app/manifests/latest');
    assert.equal(parseChallenge(pull.headers['www-authenticate']).scope, 'repository:team/app:pull');
    const head = await request(t.app).head('/v2/team/app/manifests/latest');
    assert.equal(head.status, 401);
    assert.equal(parseChallenge(head.headers['www-authenticate']).scope, 'repository:team/app:pull');
    const del = await request(t.app).delete('/v2/team/app/manifests/latest');
    assert.equal(parseChallenge(del.headers['www-authenticate']).scope, 'repository:team/app:delete');
    const catalog = await request(t.app).get('/v2/_catalog');
    assert.equal(parseChallenge(catalog.headers['www-authenticate']).scope, 'registry:catalog:*');
  });

  it('docker login (POST grant_type=password, access_type=offline), then push and pull with refreshed tokens', async () => {
    // 1. The client pings /v2/ and reads the challenge.
    const ping = await request(t.app).get('/v2/');
    const challenge = parseChallenge(ping.headers['www-authenticate']);
    // 2. docker login: OAuth2 password grant asking for a refresh token.
    const login = await request(t.app)
      .post(realmPath(challenge.realm!))
      .type('form')
      .send({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, service: challenge.service!, client_id: 'docker', access_type: 'offline' });
    assert.equal(login.status, 200, login.text);
    assert.equal(typeof login.body.access_token, 'string');
    assert.equal(login.body.scope, '');
    assert.equal(login.body.expires_in, 300);
    assert.equal(typeof login.body.issued_at, 'string');
    assert.equal(login.headers['cache-control'], 'no-store');
    const refreshToken = login.body.refresh_token as string;
    assert.ok(refreshToken, 'a refresh token for access_type=offline');
    // 3. The login is confirmed with the Bearer token on /v2/.
    const confirmed = await request(t.app).get('/v2/').set('Authorization', bearer(login.body.access_token));
    assert.equal(confirmed.status, 200);

    // docker push: a challenge for the repository, then a token from the refresh token.
    const denied = await request(t.app).post('/v2/team/app/blobs/uploads/').set('Authorization', bearer(login.body.access_token));
    assert.equal(denied.status, 401);
    const insufficient = parseChallenge(denied.headers['www-authenticate']);
    assert.equal(insufficient.error, 'insufficient_scope');
    const refreshed = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'refresh_token', refresh_token: refreshToken, service: 'harbormaster-registry', client_id: 'docker', scope: insufficient.scope! });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(refreshed.body.scope, 'repository:team/app:pull,push');
    assert.equal(refreshed.body.refresh_token, refreshToken, 'a refresh grant returns the same refresh token');
    const pushed = await pushImageAs(t.app, 'team/app', 'v1', bearer(refreshed.body.access_token));
    assert.equal(pushed.status, 201);

    // Pull with a GET token request, as the Basic flow does.
    const pullToken = await getToken(t.app, ['repository:team/app:pull'], ADMIN);
    const pulled = await request(t.app)
      .get('/v2/team/app/manifests/v1')
      .set('Authorization', bearer(pullToken.token))
      .set('Accept', 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(pulled.status, 200);
    assert.equal(pulled.headers['docker-content-digest'], pushed.manifestDigest);
  });

  it('GET /auth/token with Basic credentials, offline_token and several scope parameters', async () => {
    const body = await getToken(t.app, ['repository:team/app:pull,push', 'repository:other/x:pull', 'registry:catalog:*'], ADMIN, {
      offline_token: 'true',
      client_id: 'docker',
      account: 'admin',
    });
    assert.equal(body.token, body.access_token);
    assert.ok(body.refresh_token);
    const claims = claimsOf(body.token);
    assert.equal(claims.iss, 'harbormaster-registry');
    assert.equal(claims.sub, 'admin');
    assert.equal(claims.aud, 'harbormaster-registry');
    assert.equal(Number(claims.exp) - Number(claims.iat), 300);
    assert.equal(claims.nbf, claims.iat);
    assert.equal(typeof claims.jti, 'string');
    assert.deepEqual(claims.access, [
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'other/x', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    const header = headerOf(body.token);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'JWT');
    assert.match(String(header.kid), /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    // The refresh token also works with the OAuth2 POST form.
    const refreshed = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'refresh_token', refresh_token: body.refresh_token!, service: 'harbormaster-registry', client_id: 'ci' });
    assert.equal(refreshed.status, 200);
  });

  it('grants the intersection of what was asked and what the account holds, without error', async () => {
    const reader = await addUser(t, 'reader', [{ pattern: 'team/*', actions: 'pull' }]);
    const body = await getToken(t.app, ['repository:team/app:pull,push,delete', 'repository:prod/app:pull'], reader);
    assert.deepEqual(claimsOf(body.token).access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    const oauth = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'password', username: 'reader', password: reader.password, service: 'harbormaster-registry', scope: 'repository:team/app:pull,push repository:prod/app:pull' });
    assert.equal(oauth.status, 200);
    assert.equal(oauth.body.scope, 'repository:team/app:pull');
    assert.equal(oauth.body.refresh_token, undefined, 'no refresh token unless asked for');
  });

  it('anonymous pull of a public repository: challenge → anonymous token → pull; private repositories stay closed', async () => {
    const adminToken = await getToken(t.app, ['repository:public/base:pull,push', 'repository:private/base:pull,push'], ADMIN);
    assert.equal((await pushImageAs(t.app, 'public/base', 'v1', bearer(adminToken.token))).status, 201);
    assert.equal((await pushImageAs(t.app, 'private/base', 'v1', bearer(adminToken.token))).status, 201);

    const challenged = await request(t.app).get('/v2/public/base/manifests/v1');
    assert.equal(challenged.status, 401);
    const challenge = parseChallenge(challenged.headers['www-authenticate']);
    const anonymous = await request(t.app).get(`${realmPath(challenge.realm!)}?service=${challenge.service}&scope=${challenge.scope}`);
    assert.equal(anonymous.status, 200);
    assert.equal(anonymous.body.refresh_token, undefined);
    assert.equal(claimsOf(anonymous.body.token).sub, '');
    const pulled = await request(t.app).get('/v2/public/base/manifests/v1').set('Authorization', bearer(anonymous.body.token));
    assert.equal(pulled.status, 200);

    const noPush = await getToken(t.app, ['repository:public/base:pull,push', 'repository:private/base:pull']);
    assert.deepEqual(claimsOf(noPush.token).access, [{ type: 'repository', name: 'public/base', actions: ['pull'] }]);
    const push = await request(t.app).post('/v2/public/base/blobs/uploads/').set('Authorization', bearer(noPush.token));
    assert.equal(push.status, 401);
    assert.equal(parseChallenge(push.headers['www-authenticate']).error, 'insufficient_scope');
    const privatePull = await request(t.app).get('/v2/private/base/manifests/v1').set('Authorization', bearer(noPush.token));
    assert.equal(privatePull.status, 401);
  });

  it('refuses wrong credentials with 401 and a Basic challenge at the token endpoint', async () => {
    const wrong = await request(t.app).get('/auth/token?service=harbormaster-registry').set('Authorization', basic('admin', 'not-the-password'));
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /^Basic realm=/);
    assert.equal(wrong.body.errors[0].code, 'UNAUTHORIZED');
    const oauth = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'password', username: 'nobody', password: 'whatever-123', service: 'harbormaster-registry' });
    assert.equal(oauth.status, 401);
    const badRefresh = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'refresh_token', refresh_token: 'rt1.nope.nope', service: 'harbormaster-registry' });
    assert.equal(badRefresh.status, 401);
  });

  it('refuses malformed token requests with 400', async () => {
    const wrongService = await request(t.app).get('/auth/token?service=someone-else');
    assert.equal(wrongService.status, 400);
    assert.equal(wrongService.body.errors[0].code, 'INVALID_REQUEST');
    const badScope = await request(t.app).get('/auth/token?scope=nonsense');
    assert.equal(badScope.status, 400);
    const badGrant = await request(t.app).post('/auth/token').type('form').send({ grant_type: 'client_credentials' });
    assert.equal(badGrant.status, 400);
  });

  it('a refresh token dies with a password change', async () => {
    const user = await addUser(t, 'changer', []);
    const login = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'password', username: user.username, password: user.password, access_type: 'offline' });
    assert.equal(login.status, 200);
    await t.accounts.setPassword('changer', 'a-brand-new-password');
    const refreshed = await request(t.app).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: login.body.refresh_token });
    assert.equal(refreshed.status, 401);
  });

  it('refresh tokens expire', async () => {
    const login = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, access_type: 'offline' });
    t.clock.advance(30 * 86_400 + 1);
    try {
      const refreshed = await request(t.app).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: login.body.refresh_token });
      assert.equal(refreshed.status, 401);
    } finally {
      t.clock.advance(-(30 * 86_400 + 1));
    }
  });
});
