/**
 * The AccountStore contract, on every metadata backend: users, robots (a revoked one replaced
 * by a new instance), grants merged per pattern, refresh tokens dropped with a new password or a
 * revocation and when expired, and a re-created name getting a new instance.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AccountStore } from '../../src/auth/accounts.js';
import type { MetadataBackend } from '../../src/metadata/backend.js';
import { openPostgresForTest, openSqliteForTest, POSTGRES_SKIP, type OpenedBackend } from '../helpers/metadata-backends.js';

const BACKENDS: Array<{ name: string; skip: string | false; open: () => Promise<OpenedBackend<MetadataBackend>> }> = [
  { name: 'SQLite', skip: false, open: openSqliteForTest },
  { name: 'PostgreSQL', skip: POSTGRES_SKIP, open: () => openPostgresForTest() },
];

for (const kind of BACKENDS) {
  describe(`AccountStore contract (${kind.name})`, { skip: kind.skip }, () => {
    let opened: OpenedBackend<MetadataBackend>;
    let store: AccountStore;
    before(async () => {
      opened = await kind.open();
      store = opened.backend.accounts;
    });
    after(() => opened.cleanup());

    it('creates, reads, lists, changes and deletes users; a re-created name is a new instance', async () => {
      const alice = await store.createUser({ name: 'alice', role: 'user', passwordHash: 'h1' });
      assert.equal(typeof alice.id, 'number');
      assert.deepEqual(await store.getUser('alice'), alice);
      assert.deepEqual(await store.getUserById(alice.id), alice);
      await store.createUser({ name: 'admin', role: 'admin', passwordHash: 'h0' });
      assert.deepEqual((await store.listUsers()).map((user) => user.name), ['admin', 'alice']);
      assert.deepEqual([await store.countUsers(), await store.countAdmins()], [2, 1]);
      assert.equal(await store.setUserRole('alice', 'admin'), true);
      assert.equal(await store.countAdmins(), 2);
      await store.createRefreshToken({ id: 'rt-a', owner: { kind: 'user', id: alice.id }, ownerInstance: alice.instance, service: 's', secretHash: 'x', createdAt: 1, expiresAt: 10_000_000_000_000 });
      assert.equal(await store.setUserPassword('alice', 'h2'), true);
      assert.equal((await store.getUser('alice'))!.passwordHash, 'h2');
      assert.equal(await store.getRefreshToken('rt-a'), null, 'a new password ends the sessions');
      assert.equal(await store.setUserPassword('nobody', 'h'), false);
      assert.equal(await store.deleteUser('alice'), true);
      assert.equal(await store.deleteUser('alice'), false);
      const again = await store.createUser({ name: 'alice', role: 'user', passwordHash: 'h3' });
      assert.notEqual(again.instance, alice.instance);
      await assert.rejects(store.createUser({ name: 'alice', role: 'user', passwordHash: 'h4' }));
    });

    it('robots: revocation drops their tokens, a revoked one is replaced by a new instance', async () => {
      const ci = await store.createRobot({ name: 'ci', description: 'builds', secretHash: 's1', createdBy: 'admin', expiresAt: null });
      assert.deepEqual(await store.getRobot('ci'), ci);
      assert.deepEqual(await store.getRobotById(ci.id), ci);
      await store.createRefreshToken({ id: 'rt-ci', owner: { kind: 'robot', id: ci.id }, ownerInstance: ci.instance, service: 's', secretHash: 'x', createdAt: 1, expiresAt: 10_000_000_000_000 });
      assert.equal(await store.revokeRobot('ci', 1234), true);
      assert.equal(await store.revokeRobot('ci', 1234), false);
      assert.equal((await store.getRobot('ci'))!.revokedAt, 1234);
      assert.equal(await store.getRefreshToken('rt-ci'), null);
      const next = await store.createRobot({ name: 'ci', description: '', secretHash: 's2', createdBy: null, expiresAt: 99 });
      assert.notEqual(next.instance, ci.instance);
      assert.deepEqual((await store.listRobots()).map((robot) => [robot.name, robot.revokedAt, robot.expiresAt]), [['ci', null, 99]]);
    });

    it('grants merge actions per pattern and are removed per pattern', async () => {
      const bob = await store.createUser({ name: 'bob', role: 'user', passwordHash: 'h' });
      const owner = { kind: 'user' as const, id: bob.id };
      await store.addGrant(owner, 'team/*', ['pull']);
      const merged = await store.addGrant(owner, 'team/*', ['push']);
      assert.deepEqual(merged.actions, ['pull', 'push']);
      await store.addGrant(owner, 'a/**', ['delete']);
      assert.deepEqual((await store.listGrants(owner)).map((grant) => [grant.pattern, grant.actions]), [['a/**', ['delete']], ['team/*', ['pull', 'push']]]);
      assert.equal(await store.removeGrant(owner, 'team/*'), true);
      assert.equal(await store.removeGrant(owner, 'team/*'), false);
      assert.equal((await store.listGrants(owner)).length, 1);
    });

    it('refresh tokens: stored, read back, deleted, and purged once expired', async () => {
      const carol = await store.createUser({ name: 'carol', role: 'user', passwordHash: 'h' });
      const token = { id: 'rt-c', owner: { kind: 'user' as const, id: carol.id }, ownerInstance: carol.instance, service: 'svc', secretHash: 'sh', createdAt: 5, expiresAt: 50 };
      await store.createRefreshToken(token);
      assert.deepEqual(await store.getRefreshToken('rt-c'), token);
      await store.createRefreshToken({ ...token, id: 'rt-d', expiresAt: 10_000_000_000_000 });
      assert.equal(await store.deleteExpiredRefreshTokens(100), 1);
      assert.equal(await store.getRefreshToken('rt-c'), null);
      await store.deleteRefreshToken('rt-d');
      assert.equal(await store.getRefreshToken('rt-d'), null);
    });
  });
}
