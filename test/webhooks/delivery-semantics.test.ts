/**
 * Delivery semantics as documented (issue 16.5, 16.6, 16.14): a paused subscription queues
 * events and sends them in order once active again, a disabled one drops them; a delivery's
 * maximum age counts from its first attempt; retries follow next_attempt_at; bulk redelivery
 * of failed deliveries by subscription, state and time range.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import request from 'supertest';
import { pushImage } from '../helpers/app.js';
import { migrate, MIGRATIONS } from '../../src/metadata/sqlite/migrations.js';
import { cleanupAfterEach, registryAndListener, waitFor } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const cleanups = cleanupAfterEach();

describe('paused and disabled subscriptions', () => {
  test('paused: 23 events queue up while paused and all go out, in order, once active again', async () => {
    const { registry, listener } = await registryAndListener(cleanups);
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created', 'tag.updated'] });
    // `active: false`, documented as "pauses" from the start.
    const paused = await request(registry.app).patch(`/api/v1/webhooks/${sub.id}`).send({ active: false });
    assert.equal(paused.status, 200);
    assert.equal(paused.body.active, false);
    const tags = Array.from({ length: 23 }, (_, i) => `v${i}`);
    for (const tag of tags) await pushImage(registry.app, 'team/app', tag);
    await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id, { limit: 100 })).length === 23, '23 queued deliveries', 5_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(listener.received.length, 0, 'nothing is sent while paused');

    await request(registry.app).patch(`/api/v1/webhooks/${sub.id}`).send({ active: true });
    await waitFor(() => listener.received.length === 23, 'every queued event', 15_000);
    assert.deepEqual(listener.received.map((r) => r.json.tag), tags, 'in the order they happened');
  });

  test('disabled: events recorded meanwhile are dropped; deliveries queued before stay queued', async () => {
    const { registry, listener } = await registryAndListener(cleanups);
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'], state: 'paused' });
    await pushImage(registry.app, 'team/app', 'queued');
    await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id)).length === 1, 'queued while paused');
    assert.equal((await request(registry.app).patch(`/api/v1/webhooks/${sub.id}`).send({ state: 'disabled' })).body.state, 'disabled');
    await pushImage(registry.app, 'team/app', 'dropped');
    await waitFor(async () => (await registry.webhooks.store.outboxCursor()) >= 3, 'fan-out past the dropped event');
    await request(registry.app).patch(`/api/v1/webhooks/${sub.id}`).send({ state: 'active' });
    await pushImage(registry.app, 'team/app', 'after');
    await waitFor(() => listener.received.length === 2, 'two deliveries');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(listener.received.map((r) => r.json.tag), ['queued', 'after']);
  });

  test('state and the older active flag must agree', async () => {
    const { registry, listener } = await registryAndListener(cleanups);
    const res = await request(registry.app).post('/api/v1/webhooks').send({ url: listener.url, state: 'disabled', active: true });
    assert.equal(res.status, 400);
    assert.equal(res.body.errors[0].code, 'WEBHOOK_INVALID');
    const created = await request(registry.app).post('/api/v1/webhooks').send({ url: listener.url, active: false });
    assert.deepEqual([created.body.state, created.body.active], ['paused', false], 'active: false pauses, as documented');
  });

  test('the migration keeps inactive subscriptions (as paused) and their deliveries', () => {
    const db = new Database(':memory:');
    db.pragma('foreign_keys = ON');
    const before = MIGRATIONS.findIndex((m) => m.name === 'webhook-subscription-states');
    migrate(db, MIGRATIONS.slice(0, before));
    db.prepare(
      `INSERT INTO webhook_subscriptions (id, url, secret, events, repositories, tags, headers, format, active, source, start_seq, created_at, updated_at)
       VALUES ('old', 'http://127.0.0.1:9/', 'a-secret-of-16-chars', '[]', '[]', '[]', '{}', 'native', 0, 'api', 0, 1, 1)`,
    ).run();
    db.prepare(
      `INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, repository, payload, state, attempts, next_attempt_at, expires_at, created_at, updated_at)
       VALUES ('old', 'e1', 'tag.created', 'app', '{}', 'pending', 0, 1, 2, 1, 1)`,
    ).run();
    migrate(db);
    assert.equal(db.prepare("SELECT state FROM webhook_subscriptions WHERE id = 'old'").pluck().get(), 'paused');
    assert.equal(db.prepare('SELECT COUNT(*) FROM webhook_deliveries').pluck().get(), 1, 'nothing cascaded');
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys are back on');
    db.prepare("DELETE FROM webhook_subscriptions WHERE id = 'old'").run();
    assert.equal(db.prepare('SELECT COUNT(*) FROM webhook_deliveries').pluck().get(), 0, 'and still cascade from the rebuilt table');
    db.close();
  });
});
