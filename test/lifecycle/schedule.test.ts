/**
 * The collection schedule as the admin API reports it: GET /api/v1/gc names the interval and
 * when this process's schedule starts the next collection (none before the schedule starts,
 * none once it stopped).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLifecycle } from '../../src/registry/lifecycle.js';
import { createLifecycleApp, type LifecycleTestApp } from './helpers.js';

describe('collection schedule', () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp({ lifecycle: { gc: { intervalSeconds: 3600 } } });
  });
  after(() => t?.close());

  it('reports the next scheduled collection while the schedule runs', async () => {
    const idle = await request(t.app).get('/api/v1/gc').expect(200);
    assert.deepEqual(idle.body.schedule, { intervalSeconds: 3600, nextRunAt: null });

    const schedule = t.assembled.lifecycle.scheduler({ onReport: () => {}, onError: () => {} });
    const startedAt = Date.now();
    await schedule.start();
    try {
      const res = await request(t.app).get('/api/v1/gc').expect(200);
      // Never run before: one interval after the start.
      const next = Date.parse(res.body.schedule.nextRunAt);
      assert.ok(next >= startedAt + 3600_000 && next <= Date.now() + 3600_000, `next run ${res.body.schedule.nextRunAt}`);
    } finally {
      await schedule.stop();
    }
    assert.equal((await request(t.app).get('/api/v1/gc').expect(200)).body.schedule.nextRunAt, null);
  });

  it('leaves the collection to the replica holding the lease (onBusy, no error), and reschedules from a collection another one finished', async () => {
    const gcLease = 'gc';
    const store = t.assembled.backend.lifecycle;
    assert.equal((await store.acquireLease(gcLease, 'another replica', 60_000)).acquired, true);
    const seen: string[] = [];
    const lifecycle = createLifecycle(t.assembled.registry, store, { ...t.assembled.lifecycle.settings, intervalSeconds: 1 });
    const schedule = lifecycle.scheduler({
      onReport: () => seen.push('report'),
      onError: (error) => seen.push(`error ${String(error)}`),
      onBusy: (holder) => seen.push(`busy ${holder}`),
    });
    await schedule.start();
    try {
      for (let i = 0; i < 300 && seen.length === 0; i++) await sleep(10);
      assert.deepEqual(seen.slice(0, 1), ['busy another replica']);
      await store.releaseLease(gcLease, 'another replica');
      // Another replica collects now: this one's next turn finds it done and waits a full interval from it.
      await t.assembled.lifecycle.gc.run({ trigger: 'schedule' });
      const before = seen.length;
      await sleep(1200);
      assert.ok(seen.slice(before).every((entry) => !entry.startsWith('error')), seen.join(', '));
    } finally {
      await schedule.stop();
    }
  });
});
