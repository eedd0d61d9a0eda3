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
import { runCli } from '../helpers/cli.js';
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

describe('maximum age and bulk redelivery', () => {
  test('age counts from the first attempt: after an outage longer than maxAgeMs only the head of the lane fails', async () => {
    const maxAgeMs = 2_000;
    const { registry, listener } = await registryAndListener(cleanups, { webhooks: { maxAgeMs, initialBackoffMs: 30, maxBackoffMs: 100 } });
    let down = true;
    listener.respond = () => (down ? { status: 503 } : { status: 200 });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    // A CI burst: four tags of one repository, queued within moments, behind one lane head.
    for (const tag of ['v0', 'v1', 'v2', 'v3']) await pushImage(registry.app, 'team/app', tag);
    const byTag = async () => new Map((await registry.webhooks.listDeliveries(sub.id)).map((d) => [d.payload.tag, d]));
    await waitFor(async () => (await byTag()).get('v0')?.state === 'failed', 'the head failing for good', 10_000);
    // The outage goes on for a while (well inside one maxAgeMs) after the head gave up: the
    // deliveries that waited behind it were queued longer than maxAgeMs ago, but have not aged.
    await new Promise((resolve) => setTimeout(resolve, maxAgeMs * 0.3));
    down = false;
    await waitFor(async () => [...(await byTag()).values()].every((d) => d.state !== 'pending'), 'the backlog settled', 10_000);
    const final = await byTag();
    assert.deepEqual(['v0', 'v1', 'v2', 'v3'].map((tag) => final.get(tag)!.state), ['failed', 'delivered', 'delivered', 'delivered']);
    const v1 = await registry.webhooks.getDelivery(sub.id, final.get('v1')!.id);
    assert.ok(v1.firstAttemptAt !== null && v1.expiresAt === v1.firstAttemptAt + maxAgeMs, 'expiry = first attempt + maxAgeMs');
  });

  test('bulk redelivery by subscription, state and time range: API and CLI', async () => {
    const { registry, listener } = await registryAndListener(cleanups);
    let status = 400;
    listener.respond = () => ({ status });
    const a = await registry.webhooks.createSubscription({ id: 'sub-a', url: `${listener.url}/a`, secret: SECRET, events: ['tag.created'] });
    const b = await registry.webhooks.createSubscription({ id: 'sub-b', url: `${listener.url}/b`, secret: SECRET, events: ['tag.created'] });
    const failedCount = async (id: string) => (await registry.webhooks.listDeliveries(id, { state: 'failed' })).length;
    await pushImage(registry.app, 'team/app', 'early-1');
    await pushImage(registry.app, 'team/app', 'early-2');
    await waitFor(async () => (await failedCount(a.id)) === 2 && (await failedCount(b.id)) === 2, 'the early ones failed');
    await new Promise((resolve) => setTimeout(resolve, 5));
    const boundary = new Date().toISOString();
    await pushImage(registry.app, 'team/app', 'late');
    await waitFor(async () => (await failedCount(a.id)) === 3 && (await failedCount(b.id)) === 3, 'every delivery failed');
    status = 200;
    const received = (path: string) => listener.received.filter((r) => r.url === path && r.headers['x-registry-attempt'] === '2').map((r) => r.json.tag);

    const onlyA = await request(registry.app).post(`/api/v1/webhooks/${a.id}/deliveries/redeliver`).send({});
    assert.equal(onlyA.status, 202);
    assert.equal(onlyA.body.redelivered, 3);
    await waitFor(() => received('/a').length === 3, "a's three redeliveries");
    assert.deepEqual(received('/a'), ['early-1', 'early-2', 'late'], 'oldest first, in order');
    assert.equal(received('/b').length, 0, 'the other subscription is untouched');

    const lateB = await request(registry.app).post('/api/v1/webhooks/deliveries/redeliver').send({ subscriptionId: b.id, since: boundary });
    assert.deepEqual([lateB.status, lateB.body.redelivered], [202, 1]);
    await waitFor(() => received('/b').length === 1, "b's late one");
    assert.deepEqual(received('/b'), ['late']);

    const cli = await runCli(registry.root, ['webhook', 'redeliver-all', '--subscription', b.id, '--until', boundary]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^queued 2 deliveries: #\d+ #\d+\n$/);
    await waitFor(() => received('/b').length === 3, "b's early ones, once the registry's next poll sees them");
    assert.deepEqual(received('/b').sort(), ['early-1', 'early-2', 'late']);

    const none = await request(registry.app).post('/api/v1/webhooks/deliveries/redeliver').send({});
    assert.deepEqual(none.body, { redelivered: 0, deliveries: [] }, 'nothing failed is left');
    for (const bad of [{ state: 'pending' }, { since: 'yesterday' }, { since: boundary, until: boundary }, { limit: 0 }, { colour: 'red' }]) {
      const res = await request(registry.app).post('/api/v1/webhooks/deliveries/redeliver').send(bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
    }
    assert.equal((await request(registry.app).post('/api/v1/webhooks/wh_nope/deliveries/redeliver').send({})).status, 404);
  });
});
