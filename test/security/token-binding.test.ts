/**
 * Tokens are bound to the account instance they were issued to (issue 11, item 9): a robot
 * revoked and re-created, or a user deleted and re-created, under the same name never revives
 * the earlier account's access or refresh tokens (SQLite even hands the re-created row the old
 * id). Upgrading keeps refresh tokens of accounts that still exist working.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import request from 'supertest';
import { MIGRATIONS, migrate } from '../../src/metadata/sqlite/migrations.js';
import { SqliteAccountStore } from '../../src/metadata/sqlite/account-store.js';
import { bearer, claimsOf, createAuthApp, getToken, type AuthTestApp } from '../auth/helpers.js';

describe('re-creating an account under the same name', () => {
  let t: AuthTestApp;
  before(async () => {
    t = await createAuthApp();
  });
  after(() => t.close());

  const pullTags = (authorization: string) => request(t.app).get('/v2/ci/app/tags/list').set('Authorization', authorization);

  it('a revoked robot re-created under its name does not revive its old tokens', async () => {
    const first = await t.accounts.createRobot({ name: 'deployer', grants: [{ pattern: 'ci/**', actions: 'pull' }] });
    const credentials = { username: 'robot+deployer', password: first.secret };
    const old = await getToken(t.app, ['repository:ci/app:pull'], credentials, { offline_token: 'true' });
    assert.equal(typeof claimsOf(old.token).acct, 'string', 'the token names the account instance');
    assert.notEqual((await pullTags(bearer(old.token))).status, 401, 'the token works while the robot exists');

    await t.accounts.revokeRobot('deployer');
    assert.equal((await pullTags(bearer(old.token))).status, 401, 'revoked');
    const second = await t.accounts.createRobot({ name: 'deployer', grants: [{ pattern: 'ci/**', actions: 'pull' }] });

    const replayed = await pullTags(bearer(old.token));
    assert.equal(replayed.status, 401, 'the first robot’s token stays dead');
    assert.match(String(replayed.headers['www-authenticate']), /error="invalid_token"/);
    const refreshed = await request(t.app).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: old.refresh_token! });
    assert.equal(refreshed.status, 401, 'and so does its refresh token');

    const fresh = await getToken(t.app, ['repository:ci/app:pull'], { username: 'robot+deployer', password: second.secret });
    assert.notEqual((await pullTags(bearer(fresh.token))).status, 401, 'the new robot’s own tokens work');
    assert.notEqual(claimsOf(fresh.token).acct, claimsOf(old.token).acct);
  });

  it('a deleted user re-created under the same name (and row id) does not revive the old tokens', async () => {
    await t.accounts.createUser({ name: 'alice', password: 'first-alice-password', grants: [{ pattern: 'ci/**', actions: 'pull' }] });
    const firstId = (await t.auth.store.getUser('alice'))!.id;
    const old = await getToken(t.app, ['repository:ci/app:pull'], { username: 'alice', password: 'first-alice-password' }, { offline_token: 'true' });
    await t.accounts.deleteUser('alice');
    await t.accounts.createUser({ name: 'alice', password: 'second-alice-password', grants: [{ pattern: 'ci/**', actions: 'pull' }] });
    assert.equal((await t.auth.store.getUser('alice'))!.id, firstId, 'SQLite reused the row id: an id alone would not tell them apart');

    assert.equal((await pullTags(bearer(old.token))).status, 401);
    const refreshed = await request(t.app).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: old.refresh_token! });
    assert.equal(refreshed.status, 401);
    const fresh = await getToken(t.app, ['repository:ci/app:pull'], { username: 'alice', password: 'second-alice-password' });
    assert.notEqual((await pullTags(bearer(fresh.token))).status, 401, 'the new alice’s own tokens work');
  });

  it('a token of this registry without the account claim is refused (issued before the claim existed)', async () => {
    await t.accounts.createUser({ name: 'bob', password: 'bob-password-123', grants: [{ pattern: 'ci/**', actions: 'pull' }] });
    const unbound = t.auth.tokens.issue('bob', [{ type: 'repository', name: 'ci/app', actions: ['pull'] }]);
    assert.equal((await pullTags(bearer(unbound.token))).status, 401);
    const anonymous = await getToken(t.app, []);
    assert.equal((await request(t.app).get('/v2/').set('Authorization', bearer(anonymous.token))).status, 200, 'anonymous tokens carry no account and still work');
  });
});

describe('upgrading a database from before account instances', () => {
  it('gives every account an instance and keeps its refresh tokens bound to it', async () => {
    const db = new Database(':memory:');
    try {
      migrate(db, MIGRATIONS.filter((migration) => migration.name !== 'account-instances'));
      db.prepare("INSERT INTO users (name, password_hash, role, created_at, updated_at) VALUES ('carol', 'x', 'user', 0, 0)").run();
      db.prepare("INSERT INTO robots (name, secret_hash, created_at) VALUES ('ci', 'x', 0)").run();
      db.prepare("INSERT INTO refresh_tokens (id, user_id, service, secret_hash, created_at, expires_at) VALUES ('r1', 1, 's', 'x', 0, 1)").run();
      migrate(db);
      const store = new SqliteAccountStore(db);
      const carol = (await store.getUser('carol'))!;
      const robot = (await store.getRobot('ci'))!;
      assert.match(carol.instance, /^[0-9a-f]{32}$/);
      assert.match(robot.instance, /^[0-9a-f]{32}$/);
      assert.notEqual(carol.instance, robot.instance);
      assert.equal((await store.getRefreshToken('r1'))!.ownerInstance, carol.instance);
    } finally {
      db.close();
    }
  });
});
