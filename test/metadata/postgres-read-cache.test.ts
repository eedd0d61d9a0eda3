/**
 * The read caches on PostgreSQL (src/metadata/postgres/read-cache.ts), two replicas on one
 * database, with entries that would otherwise live a minute: a change on one replica reaches
 * the other's cache through NOTIFY, a change on a replica is read back on it at once, and a
 * lost listening connection drops what the cache holds. The triggers are switched off where a
 * test must prove that the cache, not the database, answered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PostgresBackend } from '../../src/metadata/postgres/index.js';
import { ANONYMOUS_ACTOR } from '../../src/registry/ports.js';
import { openPostgresForTest, POSTGRES_SKIP, freshPostgresDatabase, type OpenedBackend } from '../helpers/metadata-backends.js';

const MINUTE = { ttlMs: 60_000, maxEntries: 1000 };
const TRIGGERS = ['users_notify', 'robots_notify', 'grants_notify'].map((name) => ({ table: name.replace('_notify', ''), name }));
const LINK_TRIGGERS = [
  { table: 'repository_blobs', name: 'repository_blobs_notify' },
  { table: 'blobs', name: 'blobs_notify' },
];
const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** Waits (bounded) until `check` holds. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`${what}: not within ${timeoutMs} ms`);
}

describe('read caches across replicas (PostgreSQL)', { skip: POSTGRES_SKIP }, () => {
  let opened: Array<OpenedBackend<PostgresBackend>>;
  let a: PostgresBackend;
  let b: PostgresBackend;

  before(async () => {
    const url = await freshPostgresDatabase();
    opened = [await openPostgresForTest({ readCache: MINUTE }, url), await openPostgresForTest({ readCache: MINUTE }, url)];
    [a, b] = opened.map((o) => o.backend) as [PostgresBackend, PostgresBackend];
  });
  after(async () => {
    await Promise.all((opened ?? []).map((o) => o.cleanup()));
  });

  async function setTriggers(enabled: boolean, triggers = TRIGGERS): Promise<void> {
    for (const { table, name } of triggers) await a.pool.query(`ALTER TABLE ${table} ${enabled ? 'ENABLE' : 'DISABLE'} TRIGGER ${name}`);
  }

  /** Reads `name` on `backend` until its cache is in use (the listening connection is up), returning the record. */
  async function cachedUser(backend: PostgresBackend, name: string) {
    await eventually(async () => {
      const before = await backend.accounts.getUser(name);
      await setTriggers(false);
      await a.pool.query("UPDATE users SET role = CASE role WHEN 'admin' THEN 'user' ELSE 'admin' END WHERE name = $1", [name]);
      await setTriggers(true);
      const after = await backend.accounts.getUser(name);
      return before !== null && after?.role === before.role;
    }, 'the cache answers once the listening connection is up');
    return (await backend.accounts.getUser(name))!;
  }

  /** Links a blob on `a`, and reads it on `backend` until its cache answers. */
  async function cachedLink(backend: PostgresBackend, repository: string, digest: string): Promise<void> {
    await a.metadata.linkBlob(repository, { digest, size: 3 }, ANONYMOUS_ACTOR);
    const unlinkRawly = `DELETE FROM repository_blobs WHERE digest = $1 AND repository_id = (SELECT id FROM repositories WHERE name = $2)`;
    await eventually(async () => {
      assert.ok(await backend.metadata.getRepositoryBlob(repository, digest));
      await setTriggers(false, LINK_TRIGGERS);
      await a.pool.query(unlinkRawly, [digest, repository]);
      const cached = (await backend.metadata.getRepositoryBlob(repository, digest)) !== null;
      await a.pool.query('INSERT INTO repository_blobs (repository_id, digest, linked_at) SELECT id, $1, 0 FROM repositories WHERE name = $2', [digest, repository]);
      await setTriggers(true, LINK_TRIGGERS);
      return cached;
    }, 'the cache answers once the listening connection is up');
  }

  it('a user deleted on one replica is gone on the other within a notice, not at expiry', async () => {
    await a.accounts.createUser({ name: 'alice', role: 'user', passwordHash: 'x' });
    await cachedUser(b, 'alice');
    await a.accounts.deleteUser('alice');
    await eventually(async () => (await b.accounts.getUser('alice')) === null, "replica b sees alice's deletion");
  });

  it('a grant removed on one replica is gone from the other', async () => {
    const user = await a.accounts.createUser({ name: 'bob', role: 'user', passwordHash: 'x' });
    await a.accounts.addGrant({ kind: 'user', id: user.id }, 'team/*', ['pull', 'push']);
    await cachedUser(b, 'bob');
    assert.equal((await b.accounts.listGrants({ kind: 'user', id: user.id })).length, 1);
    await a.accounts.removeGrant({ kind: 'user', id: user.id }, 'team/*');
    await eventually(async () => (await b.accounts.listGrants({ kind: 'user', id: user.id })).length === 0, 'replica b sees the grant removed');
  });

  it("a replica reads its own account changes at once, without waiting for the notice", async () => {
    await a.accounts.createRobot({ name: 'ci', description: '', secretHash: 'x', createdBy: null, expiresAt: null });
    await a.accounts.createUser({ name: 'carol', role: 'user', passwordHash: 'x' });
    await cachedUser(a, 'carol');
    await setTriggers(false);
    try {
      assert.equal((await a.accounts.getRobot('ci'))?.revokedAt, null);
      await a.accounts.revokeRobot('ci', Date.now());
      assert.notEqual((await a.accounts.getRobot('ci'))?.revokedAt, null, 'the revocation is read back at once');
      await a.accounts.deleteUser('carol');
      assert.equal(await a.accounts.getUser('carol'), null);
    } finally {
      await setTriggers(true);
    }
  });

  it('a blob link removed on one replica (delete, or marked by a collection) is gone on the other', async () => {
    const digests = [DIGEST, `sha256:${'cd'.repeat(32)}`];
    for (const digest of digests) await cachedLink(b, 'cache/app', digest);
    await a.metadata.unlinkBlob('cache/app', digests[0]!);
    await eventually(async () => (await b.metadata.getRepositoryBlob('cache/app', digests[0]!)) === null, 'replica b sees the unlink');
    await a.lifecycle.markBlobs([digests[1]!]);
    await eventually(async () => (await b.metadata.getRepositoryBlob('cache/app', digests[1]!)) === null, "replica b sees the collection's mark");
  });

  it('a replica reads its own unlinks and marks at once', async () => {
    const digests = [`sha256:${'ef'.repeat(32)}`, `sha256:${'12'.repeat(32)}`];
    for (const digest of digests) await cachedLink(a, 'cache/own', digest);
    await setTriggers(false, LINK_TRIGGERS);
    try {
      await a.metadata.unlinkBlob('cache/own', digests[0]!);
      assert.equal(await a.metadata.getRepositoryBlob('cache/own', digests[0]!), null);
      await a.lifecycle.markBlobs([digests[1]!]);
      assert.equal(await a.metadata.getRepositoryBlob('cache/own', digests[1]!), null);
    } finally {
      await setTriggers(true, LINK_TRIGGERS);
    }
  });

  it('losing the listening connection drops the cache (a notice may have been missed), and notices resume', async () => {
    await a.accounts.createUser({ name: 'dave', role: 'user', passwordHash: 'x' });
    const cached = await cachedUser(b, 'dave');
    await setTriggers(false);
    try {
      const flipped = cached.role === 'admin' ? 'user' : 'admin';
      await a.pool.query('UPDATE users SET role = $2 WHERE name = $1', ['dave', flipped]);
      assert.equal((await b.accounts.getUser('dave'))?.role, cached.role, 'served from the cache while connected');
      await a.pool.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'harbormaster-registry-listen' AND pid <> pg_backend_pid()");
      await eventually(async () => (await b.accounts.getUser('dave'))?.role === flipped, 'replica b reads the database once its listener is gone');
    } finally {
      await setTriggers(true);
    }
    // Reconnected (with back-off), replica b caches again and hears notices again.
    await cachedUser(b, 'dave');
    await a.accounts.deleteUser('dave');
    await eventually(async () => (await b.accounts.getUser('dave')) === null, 'notices reach replica b after it reconnected', 10_000);
  });
});
