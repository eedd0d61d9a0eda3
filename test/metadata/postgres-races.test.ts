/**
 * The races SQLite's single writer hid, on PostgreSQL between "replicas" (separate connection
 * pools on one database), each interleaving forced: a transaction is held open at the point
 * that matters (a store hook, or a row lock taken from outside), the competitor is started and
 * seen waiting (pg_locks), then the first is let go. Each of these fails on a naive port
 * (check-then-write statements without the locks) and passes with the locking discipline of
 * src/metadata/postgres/.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresBackend } from '../../src/metadata/postgres/index.js';
import { createPool, type Pool } from '../../src/metadata/postgres/pool.js';
import type { BlobCutoffs } from '../../src/registry/lifecycle-store.js';
import type { Actor, NewManifest } from '../../src/registry/ports.js';
import { freshPostgresDatabase, manifestOf, openPostgresForTest, POSTGRES_SKIP } from '../helpers/metadata-backends.js';

const ACTOR: Actor = { name: 'tester', kind: 'user' };
const digestOf = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;
const repo = (label: string) => `races/${label}-${randomUUID().slice(0, 8)}`;

function allOld(): BlobCutoffs {
  const now = Date.now() + 1000;
  return { now, graceCutoff: now, claimCutoff: 0 };
}

/** A promise and the function that resolves it: a hook waits on `released` until the test calls `release`. */
function gate(): { released: Promise<void>; release: () => void; reached: Promise<void>; reach: () => void } {
  let release!: () => void;
  let reach!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const reached = new Promise<void>((resolve) => (reach = resolve));
  return { released, release, reached, reach };
}

describe('PostgreSQL races between replicas', { skip: POSTGRES_SKIP }, () => {
  let url: string;
  let observer: Pool;
  const backends: PostgresBackend[] = [];
  const hooks: NonNullable<Parameters<typeof openPostgresForTest>[0]>['hooks'] & object = {};
  let hooked: PostgresBackend;
  let other: PostgresBackend;

  before(async () => {
    url = await freshPostgresDatabase();
    hooked = (await openPostgresForTest({ hooks }, url)).backend;
    other = (await openPostgresForTest({}, url)).backend;
    backends.push(hooked, other);
    observer = createPool({ url, poolSize: 4, statementTimeoutMs: 30_000, connectionTimeoutMs: 10_000 });
  });
  after(async () => {
    await Promise.all([...backends.map((backend) => backend.close()), observer?.end()]);
  });

  /** Waits (bounded) until `count` lock requests are waiting; returns how many were seen. */
  async function waitersReach(count: number): Promise<number> {
    let seen = 0;
    for (let i = 0; i < 200; i++) {
      const { rows } = await observer.query<{ waiting: number }>('SELECT COUNT(*) AS waiting FROM pg_locks WHERE NOT granted');
      seen = rows[0]!.waiting;
      if (seen >= count) return seen;
      await sleep(25);
    }
    return seen;
  }

  it('GC against a push (write skew): a blob the push has checked is never marked under it', async () => {
    const name = repo('skew');
    const layer = { digest: digestOf(randomUUID()), size: 10 };
    await hooked.metadata.linkBlob(name, layer, ACTOR);
    const paused = gate();
    hooks.afterReferenceCheck = async (repository) => {
      if (repository !== name) return;
      paused.reach();
      await paused.released;
    };
    try {
      const push = hooked.metadata.putManifest(name, manifestOf(name, [layer.digest]), 'v1', ACTOR);
      await paused.reached;
      // The push has checked its layer and not committed: a collection on another replica runs now.
      const marked = await other.lifecycle.markUnreferencedBlobs(allOld(), 1000);
      paused.release();
      await push;
      assert.equal(marked.some((blob) => blob.digest === layer.digest), false, 'the collection marked a blob the push was referencing');
      assert.deepEqual(await other.metadata.getRepositoryBlob(name, layer.digest), layer);
      assert.deepEqual(await other.lifecycle.markedBlobs(1000), []);
      assert.deepEqual(await other.lifecycle.manifestProblems(), []);
    } finally {
      delete hooks.afterReferenceCheck;
    }
  });

  it('GC against a push (write skew): a reference committed after the candidates were read is seen by the re-check', async () => {
    const name = repo('recheck');
    const layer = { digest: digestOf(randomUUID()), size: 11 };
    await other.metadata.linkBlob(name, layer, ACTOR);
    const image = manifestOf(`${name}-image`);
    await other.metadata.putManifest(name, image, null, ACTOR);
    hooks.afterBlobCandidates = async (digests) => {
      if (!digests.includes(layer.digest)) return;
      // What a push committing between the candidate read and the lock leaves: a reference to the layer.
      await observer.query("INSERT INTO manifest_references (manifest_digest, target_digest, kind) VALUES ($1, $2, 'blob')", [image.digest, layer.digest]);
    };
    try {
      const marked = await hooked.lifecycle.markUnreferencedBlobs(allOld(), 1000);
      assert.equal(marked.some((blob) => blob.digest === layer.digest), false, 'marked a blob a committed manifest references');
      assert.deepEqual(await other.metadata.getRepositoryBlob(name, layer.digest), layer);
    } finally {
      delete hooks.afterBlobCandidates;
    }
  });

  it('two replicas creating one repository: both succeed, one repository.created', async () => {
    const name = repo('create');
    const before = await lastSeq(other);
    // Another replica's transaction has inserted the repository row and not committed yet.
    const creator = await observer.connect();
    try {
      await creator.query('BEGIN');
      await creator.query("INSERT INTO repositories (name, created_at) VALUES ($1, 0)", [name]);
      const link = hooked.metadata.linkBlob(name, { digest: digestOf(name), size: 1 }, ACTOR);
      assert.ok((await waitersReach(1)) >= 1, 'the link did not wait for the other creator');
      await creator.query('COMMIT');
      await link;
    } finally {
      creator.release();
    }
    assert.deepEqual(await other.metadata.getRepositoryBlob(name, digestOf(name)), { digest: digestOf(name), size: 1 });
    const events = (await other.metadata.readEvents(before, 100)).filter((event) => event.repository === name);
    assert.deepEqual(events, [], 'the replica that did not create the repository recorded repository.created');

    // And many at once from two replicas: one repository, one event.
    const many = repo('many');
    const since = await lastSeq(other);
    await Promise.all(Array.from({ length: 8 }, (_, i) => [hooked, other][i % 2]!.metadata.linkBlob(many, { digest: digestOf(`${many}${i}`), size: 1 }, ACTOR)));
    const created = (await other.metadata.readEvents(since, 100)).filter((event) => event.repository === many && event.type === 'repository.created');
    assert.equal(created.length, 1);
  });

  it('two first pushes of one immutable tag: exactly one wins', async () => {
    const name = repo('immutable');
    await other.metadata.linkBlob(name, { digest: digestOf(name), size: 1 }, ACTOR);
    const immutable = { tag: (current: string | null) => {
      if (current !== null) throw new Error(`tag v1 is immutable (points at ${current})`);
    } };
    const holder = await observer.connect();
    let results: PromiseSettledResult<unknown>[];
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM repositories WHERE name = $1 FOR UPDATE', [name]);
      const pushes = [hooked, other].map((backend, i) => backend.metadata.putManifest(name, manifestOf(`${name}-${i}`), 'v1', ACTOR, immutable));
      const waiting = await waitersReach(2);
      await holder.query('COMMIT');
      results = await Promise.allSettled(pushes);
      assert.ok(waiting >= 2, `the pushes did not wait for the repository row (${waiting} waiting)`);
    } finally {
      holder.release();
    }
    const won = results.filter((result) => result.status === 'fulfilled');
    assert.equal(won.length, 1, `${won.length} pushes of the immutable tag succeeded`);
    const winner = results.indexOf(won[0]!);
    assert.equal(await other.metadata.resolveTag(name, 'v1'), manifestOf(`${name}-${winner}`).digest);
  });

  it('a claim against an orphan mark of the same digest: never both', async () => {
    const orphan = { digest: digestOf(randomUUID()), size: 5 };
    const paused = gate();
    hooks.afterOrphanCheck = async (digests) => {
      if (!digests.includes(orphan.digest)) return;
      paused.reach();
      await paused.released;
    };
    try {
      const marking = hooked.lifecycle.markOrphans([orphan], allOld());
      await paused.reached;
      // The collection found no claim and has not written its mark: an upload of the same content claims it now.
      const claim = other.metadata.claimBlob(orphan.digest);
      const waiting = await waitersReach(1);
      paused.release();
      const [marked, claimed] = await Promise.all([marking, claim]);
      assert.ok(waiting >= 1, 'the claim did not wait for the orphan mark');
      assert.deepEqual(marked, [orphan]);
      assert.equal(claimed, null, 'a claim was granted on a blob being deleted');
    } finally {
      delete hooks.afterOrphanCheck;
    }
    await other.lifecycle.forgetBlobs([orphan.digest]);
  });

  it('two replicas taking an expired GC lease at once: exactly one wins, on the database clock', async () => {
    const name = `lease-${randomUUID().slice(0, 8)}`;
    await observer.query('INSERT INTO lifecycle_leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, 0, 1)', [name, 'a replica that died']);
    const holder = await observer.connect();
    let results: Array<{ acquired: boolean }>;
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM lifecycle_leases WHERE name = $1 FOR UPDATE', [name]);
      const attempts = [hooked, other].map((backend, i) => backend.lifecycle.acquireLease(name, `replica-${i}`, 60_000));
      const waiting = await waitersReach(2);
      await holder.query('COMMIT');
      results = await Promise.all(attempts);
      assert.ok(waiting >= 2, `the replicas did not queue on the lease row (${waiting} waiting)`);
    } finally {
      holder.release();
    }
    assert.equal(results.filter((result) => result.acquired).length, 1, 'both replicas won the lease');
    // Expiry is the database's: a lease whose expiry is past on the database clock is free, whatever this process's clock says.
    await observer.query(`UPDATE lifecycle_leases SET expires_at = (extract(epoch from now()) * 1000)::bigint - 1 WHERE name = $1`, [name]);
    assert.equal((await other.lifecycle.acquireLease(name, 'late', 60_000)).acquired, true);
  });

  it('outbox: a transaction committing later with a lower seq is never skipped by a reader', async () => {
    const [a, b] = [repo('outbox-a'), repo('outbox-b')];
    await other.metadata.linkBlob(a, { digest: digestOf(a), size: 1 }, ACTOR);
    await other.metadata.linkBlob(b, { digest: digestOf(b), size: 1 }, ACTOR);
    let cursor = await lastSeq(other);
    const paused = gate();
    hooks.afterEvents = async (events) => {
      if (!events.some((event) => event.repository === a)) return;
      paused.reach();
      await paused.released;
    };
    try {
      const first = hooked.metadata.putManifest(a, manifestOf(a), 'v1', ACTOR);
      await paused.reached;
      // The first transaction has written its event and not committed; a second one on another replica commits meanwhile.
      const second = other.metadata.putManifest(b, manifestOf(b), 'v1', ACTOR);
      await waitersReach(1);
      // A dispatcher reads now and moves its cursor past what it saw.
      for (const event of await other.metadata.readEvents(cursor, 100)) cursor = Math.max(cursor, event.seq);
      paused.release();
      await Promise.all([first, second]);
    } finally {
      delete hooks.afterEvents;
    }
    const rest = await other.metadata.readEvents(cursor, 100);
    const seenAfter = rest.map((event) => `${event.repository} ${event.type}`);
    assert.ok(seenAfter.includes(`${a} tag.created`), `the first transaction's event was skipped: after cursor ${cursor} only ${JSON.stringify(seenAfter)}`);
    assert.ok(seenAfter.includes(`${b} tag.created`));
  });
});

async function lastSeq(backend: PostgresBackend): Promise<number> {
  const { rows } = await backend.pool.query<{ seq: number | null }>('SELECT MAX(seq) AS seq FROM events');
  return rows[0]!.seq ?? 0;
}
