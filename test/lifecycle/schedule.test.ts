/**
 * The collection schedule as the admin API reports it: GET /api/v1/gc names the interval and
 * when this process's schedule starts the next collection (none before the schedule starts,
 * none once it stopped).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
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
});
