/**
 * The set-based lane statement of the PostgreSQL webhook store (webhook-lanes.ts) against
 * another replica: one statement records a batch's outcomes and claims each lane's next
 * delivery, reading the heads from its snapshot. A claim of the same head by another replica,
 * still uncommitted when the statement runs, must win: the statement waits for its row lock,
 * re-checks the attempt count on the row as committed, and claims nothing (the delivery is sent
 * once). Forced: the competing claim is held open in a transaction, the statement is seen
 * waiting (pg_locks), then the competitor commits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresBackend } from '../../src/metadata/postgres/index.js';
import { createPool, type Pool } from '../../src/metadata/postgres/pool.js';
import { freshPostgresDatabase, openPostgresForTest, POSTGRES_SKIP } from '../helpers/metadata-backends.js';

describe('PostgreSQL webhook lanes between replicas', { skip: POSTGRES_SKIP }, () => {
  let backend: PostgresBackend;
  let observer: Pool;

  before(async () => {
    const url = await freshPostgresDatabase();
    backend = (await openPostgresForTest({}, url)).backend;
    observer = createPool({ url, poolSize: 4, statementTimeoutMs: 30_000, connectionTimeoutMs: 10_000 });
  });
  after(async () => {
    await Promise.all([backend?.close(), observer?.end()]);
  });

  async function waitersReach(count: number): Promise<number> {
    let seen = 0;
    for (let i = 0; i < 200 && seen < count; i++) {
      const { rows } = await observer.query<{ waiting: number }>('SELECT COUNT(*) AS waiting FROM pg_locks WHERE NOT granted');
      seen = rows[0]!.waiting;
      if (seen < count) await sleep(25);
    }
    return seen;
  }

  it("a lane's next claimed by another replica meanwhile is not claimed again by the batch statement", async () => {
    const store = backend.webhooks;
    const now = Date.now();
    await store.createSubscription(
      { id: 'lanes', url: 'http://127.0.0.1:9/hook', secret: 'a-secret-of-some-length', events: ['tag.created'], repositories: [], tags: [], headers: {}, format: 'native', state: 'active', source: 'api' },
      now,
    );
    const queued = [];
    for (const n of [1, 2]) {
      const delivery = { subscriptionId: 'lanes', eventId: `event-${n}`, eventType: 'tag.created' as const, repository: 'team/app', payload: { tag: `v${n}` } as never, context: { scheme: 'http', request: null } as never };
      queued.push((await store.insertDelivery(delivery, now, now + 60_000))!);
    }
    const [first, second] = queued as [(typeof queued)[0], (typeof queued)[0]];
    assert.ok(await store.beginAttempt(first.id, 1, now, now + 5_000, 60_000));

    // Another replica claims the lane's next (the compare-and-set of beginAttempt) and has not committed yet.
    const competitor = await observer.connect();
    try {
      await competitor.query('BEGIN');
      const claimed = await competitor.query(`UPDATE webhook_deliveries SET attempts = 1, next_attempt_at = $2 WHERE id = $1 AND state = 'pending' AND attempts = 0`, [second.id, now + 9_000]);
      assert.equal(claimed.rowCount, 1);
      const delivered = { attempt: { attempt: 1, at: now, status: 204, latencyMs: 1, error: null, responseBody: null }, state: 'delivered' as const, nextAttemptAt: now };
      const batch = store.recordAttemptsAndClaimNext([
        { deliveryId: first.id, outcome: delivered, next: { subscriptionId: 'lanes', repository: 'team/app', at: now + 1, holdUntil: now + 9_000, maxAgeMs: 60_000 } },
      ]);
      assert.equal(await waitersReach(1), 1, 'the batch statement waits for the competing claim');
      await competitor.query('COMMIT');
      assert.deepEqual(await batch, [null], 'the competitor won: nothing claimed here');
    } finally {
      competitor.release();
    }
    assert.equal((await store.getDelivery(first.id))?.state, 'delivered', 'the outcome is written');
    const next = await store.getDelivery(second.id);
    assert.equal(next?.attempts, 1, 'claimed once, by the competitor');
    assert.equal(next?.log.length, 0, 'and no attempt logged by the batch');
  });
});
