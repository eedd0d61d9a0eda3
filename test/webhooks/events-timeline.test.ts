/**
 * Shared contract 3: `GET /api/v1/events`, the events timeline: newest first, filtered by
 * repository and type, paged by `before`, each event with its deploy results and (for
 * administrators) its deliveries; with token auth a caller sees only repositories it may pull.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import request from 'supertest';
import { AccountManager } from '../../src/auth/management.js';
import { MEDIA, pushImage, sha256 } from '../helpers/app.js';
import { sign } from '../../src/webhooks/signing.js';
import { cleanupAfterEach, registryAndListener, waitFor } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const ADMIN_PASSWORD = 'admin-password-for-timeline';
const cleanups = cleanupAfterEach();

describe('the events timeline', () => {
  test('newest first, with deploys and deliveries, filtered and paged', async () => {
    const { registry, listener } = await registryAndListener(cleanups);
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created', 'tag.updated'] });
    await pushImage(registry.app, 'team/a', '1.0');
    await pushImage(registry.app, 'team/b', '1.0');
    const second = await pushImage(registry.app, 'team/a', '1.0', 'rebuilt');
    await waitFor(() => listener.received.length === 3, 'three deliveries');

    const all = await request(registry.app).get('/api/v1/events');
    assert.equal(all.status, 200);
    const summary = all.body.events.map((e: any) => `${e.type} ${e.repository}`);
    assert.deepEqual(summary, ['tag.updated team/a', 'tag.created team/b', 'repository.created team/b', 'tag.created team/a', 'repository.created team/a']);
    assert.equal(all.body.next, null);
    const [latest] = all.body.events;
    assert.equal(latest.tag, '1.0');
    assert.equal(latest.digest, second.digest);
    assert.match(latest.previousDigest, /^sha256:/);
    assert.equal(latest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(latest.actor, { name: 'anonymous', kind: 'anonymous' });
    assert.ok(!Number.isNaN(Date.parse(latest.createdAt)));
    assert.ok(all.body.events.every((e: any, i: number, list: any[]) => i === 0 || list[i - 1].seq > e.seq), 'seq descending');

    // A deploy report on the latest event's delivery shows up on it.
    const [delivery] = latest.deliveries;
    assert.equal(delivery.subscriptionId, sub.id);
    assert.equal(delivery.state, 'delivered');
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.lastStatus, 200);
    const now = new Date().toISOString();
    const body = JSON.stringify({ agent: 'host-1', eventId: latest.id, status: 'failed', attempt: 1, exitCode: 3, durationMs: 10, output: 'boom', startedAt: now, finishedAt: now, sentAt: now });
    const posted = await request(registry.app).post(`/api/v1/webhooks/${sub.id}/deliveries/${delivery.id}/deploys`).set('X-Registry-Signature-256', sign(SECRET, body)).send(body);
    assert.equal(posted.status, 204);
    const withDeploy = (await request(registry.app).get('/api/v1/events?limit=1')).body;
    assert.deepEqual(
      withDeploy.events[0].deploys.map((d: any) => [d.deliveryId, d.subscriptionId, d.agent, d.status, d.attempt, d.exitCode, d.durationMs]),
      [[delivery.id, sub.id, 'host-1', 'failed', 1, 3, 10]],
    );
    assert.ok(withDeploy.events[0].deploys[0].reportedAt);
    assert.equal(withDeploy.next, latest.seq);

    const page2 = (await request(registry.app).get(`/api/v1/events?limit=2&before=${withDeploy.next}`)).body;
    assert.deepEqual(page2.events.map((e: any) => e.seq), [all.body.events[1].seq, all.body.events[2].seq]);
    const page3 = (await request(registry.app).get(`/api/v1/events?limit=2&before=${page2.next}`)).body;
    assert.deepEqual(page3.events.map((e: any) => e.seq), [all.body.events[3].seq, all.body.events[4].seq]);
    assert.equal(page3.next, null);

    const onlyA = (await request(registry.app).get('/api/v1/events?repository=team/a&type=tag.created')).body;
    assert.deepEqual(onlyA.events.map((e: any) => `${e.type} ${e.repository}`), ['tag.created team/a']);
    for (const bad of ['limit=0', 'limit=101', 'limit=x', 'before=0', 'type=tag.exploded', 'repository=Team/A']) {
      const res = await request(registry.app).get(`/api/v1/events?${bad}`);
      assert.equal(res.status, 400, bad);
      assert.ok(Array.isArray(res.body.errors), bad);
    }
  });

  test('with token auth: only repositories the caller may pull; deliveries only for admins', async () => {
    const { registry } = await registryAndListener(cleanups, { auth: { mode: 'token', adminPassword: ADMIN_PASSWORD, publicRepositories: ['public/*'] } });
    const accounts = new AccountManager(registry.auth!.store, Date.now);
    await accounts.createUser({ name: 'alice', password: 'alice-password-long', grants: [{ pattern: 'team/a', actions: 'pull' }] });
    const admin = { Authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };
    // Events come from pushes the admin makes with tokens (an image with a config and no layers).
    for (const name of ['team/a', 'team/b', 'public/c']) {
      const token = await request(registry.app).get('/auth/token').query(`service=harbormaster-registry&scope=repository:${name}:pull,push`).set(admin);
      const auth = { Authorization: `Bearer ${token.body.token as string}` };
      const config = JSON.stringify({ os: 'linux', architecture: 'amd64', name });
      const digest = sha256(config);
      assert.equal((await request(registry.app).post(`/v2/${name}/blobs/uploads/?digest=${digest}`).set(auth).send(config)).status, 201);
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest, size: config.length }, layers: [] });
      const put = await request(registry.app).put(`/v2/${name}/manifests/1.0`).set(auth).set('Content-Type', MEDIA.ociManifest).send(manifest);
      assert.equal(put.status, 201, put.text);
    }

    const asAdmin = await request(registry.app).get('/api/v1/events').set(admin);
    assert.equal(asAdmin.status, 200);
    assert.deepEqual(new Set(asAdmin.body.events.map((e: any) => e.repository)), new Set(['team/a', 'team/b', 'public/c']));
    assert.ok(asAdmin.body.events.every((e: any) => Array.isArray(e.deliveries)), 'admins see deliveries');

    const alice = { Authorization: `Basic ${Buffer.from('alice:alice-password-long').toString('base64')}` };
    const asAlice = await request(registry.app).get('/api/v1/events').set(alice);
    assert.equal(asAlice.status, 200);
    assert.deepEqual(new Set(asAlice.body.events.map((e: any) => e.repository)), new Set(['team/a', 'public/c']));
    assert.ok(asAlice.body.events.every((e: any) => !('deliveries' in e)), 'no deliveries for a non-admin');
    const denied = await request(registry.app).get('/api/v1/events?repository=team/b').set(alice);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.errors[0].code, 'DENIED');

    const aliceToken = await request(registry.app).get('/auth/token').query('service=harbormaster-registry').set(alice);
    const withToken = await request(registry.app).get('/api/v1/events').set('Authorization', `Bearer ${aliceToken.body.token as string}`);
    assert.deepEqual(new Set(withToken.body.events.map((e: any) => e.repository)), new Set(['team/a', 'public/c']), 'a token sees what its account may pull');

    const anonymous = await request(registry.app).get('/api/v1/events');
    assert.equal(anonymous.status, 200);
    assert.deepEqual(new Set(anonymous.body.events.map((e: any) => e.repository)), new Set(['public/c']));
    const wrong = await request(registry.app).get('/api/v1/events').set('Authorization', `Basic ${Buffer.from('alice:wrong-password').toString('base64')}`);
    assert.equal(wrong.status, 401);
  });
});
