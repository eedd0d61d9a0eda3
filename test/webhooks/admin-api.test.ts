/** The /api/v1/webhooks admin API through supertest, with a real loopback listener for pings. */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import { assemble } from '../../src/server.js';
import { verifySignature } from '../../src/webhooks/signing.js';
import { MEDIA, pushImage, sha256 } from '../helpers/app.js';
import { cleanupAfterEach, createTestRegistry, type Listener, registryAndListener, startListener, type TestRegistry, waitFor } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const API = '/api/v1/webhooks';

const cleanups = cleanupAfterEach();

async function setup(options: Parameters<typeof createTestRegistry>[0] = {}): Promise<{ registry: TestRegistry; listener: Listener }> {
  const { registry, listener } = await registryAndListener(cleanups, options);
  return { registry, listener };
}

function assertApiError(res: request.Response, status: number, code: string, message?: RegExp): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status} ${res.text}`);
  assert.equal(res.body.errors?.[0]?.code, code, res.text);
  if (message) assert.match(res.body.errors[0].message, message);
}

describe('subscriptions', () => {
  test('create, list, show, change and delete; the secret is shown once', async () => {
    const { registry, listener } = await setup();
    const app = registry.app;
    const created = await request(app)
      .post(API)
      .send({ url: `${listener.url}/hook`, events: ['tag.created', 'tag.updated'], repositories: ['app'], tags: ['v*', 'semver'], headers: { 'X-Webhook-Secret': 'token' } });
    assert.equal(created.status, 201, created.text);
    assert.match(created.body.id, /^wh_[0-9a-f]{16}$/);
    assert.equal(created.headers.location, `${API}/${created.body.id}`);
    assert.ok(typeof created.body.secret === 'string' && created.body.secret.length >= 32, 'a generated secret is returned');
    assert.equal(created.body.format, 'native');
    assert.equal(created.body.active, true);
    assert.equal(created.body.source, 'api');
    const id = created.body.id as string;

    const list = await request(app).get(API);
    assert.equal(list.status, 200);
    assert.equal(list.body.subscriptions.length, 1);
    assert.equal(list.body.subscriptions[0].secret, undefined, 'never listed');
    assert.deepEqual(list.body.subscriptions[0].tags, ['v*', 'semver']);

    const shown = await request(app).get(`${API}/${id}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.secret, undefined);
    assert.deepEqual(shown.body.headers, { 'X-Webhook-Secret': '***' }, 'header values are write-only (test/webhooks/redaction.test.ts)');

    const changed = await request(app).patch(`${API}/${id}`).send({ active: false, format: 'cloudevents', tags: [] });
    assert.equal(changed.status, 200, changed.text);
    assert.equal(changed.body.active, false);
    assert.equal(changed.body.format, 'cloudevents');
    assert.deepEqual(changed.body.tags, []);
    assert.deepEqual(changed.body.repositories, ['app'], 'fields not given are kept');

    // A changed secret signs the next deliveries.
    assert.equal((await request(app).patch(`${API}/${id}`).send({ secret: SECRET, active: true, format: 'native' })).status, 200);
    const ping = await request(app).post(`${API}/${id}/ping`);
    assert.equal(ping.status, 200, ping.text);
    assert.ok(verifySignature(SECRET, listener.received[0]!.body, listener.received[0]!.headers['x-registry-signature-256'] as string));
    assert.equal(listener.received[0]!.headers['x-webhook-secret'], 'token', 'extra headers are sent');

    assert.equal((await request(app).delete(`${API}/${id}`)).status, 204);
    assertApiError(await request(app).get(`${API}/${id}`), 404, 'WEBHOOK_UNKNOWN');
    assertApiError(await request(app).delete(`${API}/${id}`), 404, 'WEBHOOK_UNKNOWN');
    assert.deepEqual((await request(app).get(API)).body.subscriptions, []);
  });

  test('a chosen id; a taken id is a conflict', async () => {
    const { registry, listener } = await setup();
    const res = await request(registry.app).post(API).send({ id: 'prod-deploy', url: listener.url, secret: SECRET });
    assert.equal(res.status, 201);
    assert.equal(res.body.id, 'prod-deploy');
    assert.equal(res.body.secret, SECRET);
    assertApiError(await request(registry.app).post(API).send({ id: 'prod-deploy', url: listener.url }), 409, 'WEBHOOK_CONFLICT');
  });

  test('invalid input is refused with the field named', async () => {
    const { registry, listener } = await setup();
    const app = registry.app;
    const cases: Array<[object, RegExp]> = [
      [{}, /^url:/],
      [{ url: 'ftp://example.com/' }, /^url: must be an http\(s\) URL/],
      [{ url: listener.url, secret: 'short' }, /^secret:/],
      [{ url: listener.url, events: ['tag.exploded'] }, /^events\.0:/],
      [{ url: listener.url, tags: ['/(unclosed/'] }, /invalid pattern/],
      [{ url: listener.url, headers: { 'X-Signature': 'forged' } }, /cannot be overridden/],
      [{ url: listener.url, headers: { 'Bad Header': 'x' } }, /is not an HTTP header name/],
      [{ url: listener.url, format: 'xml' }, /^format:/],
      [{ url: listener.url, surprise: true }, /surprise/],
      [{ id: 'Not Valid', url: listener.url }, /^id:/],
    ];
    for (const [body, message] of cases) {
      assertApiError(await request(app).post(API).send(body), 400, 'WEBHOOK_INVALID', message);
    }
    const bad = await request(app).post(API).set('Content-Type', 'application/json').send('{not json');
    assertApiError(bad, 400, 'WEBHOOK_INVALID', /not valid JSON/);
    const created = await request(app).post(API).send({ url: listener.url });
    assertApiError(await request(app).patch(`${API}/${created.body.id}`).send({ id: 'renamed' }), 400, 'WEBHOOK_INVALID');
    assertApiError(await request(app).get(`${API}/${created.body.id}/deliveries?state=lost`), 400, 'WEBHOOK_INVALID');
  });

  test('destinations outside webhooks.allowHosts or inside denyHosts are refused', async () => {
    const { registry, listener } = await setup({ webhooks: { allowHosts: ['hooks.example.com', '10.0.0.0/8'] } });
    assertApiError(await request(registry.app).post(API).send({ url: listener.url }), 400, 'WEBHOOK_INVALID', /not in webhooks.allowHosts/);
    assert.equal((await request(registry.app).post(API).send({ url: 'https://hooks.example.com/x' })).status, 201);
    assertApiError(await request(registry.app).post(API).send({ url: 'http://169.254.169.254/latest' }), 400, 'WEBHOOK_INVALID', /is denied/);
  });

  test('config-declared subscriptions are listed and read-only', async () => {
    const listener = await startListener();
    cleanups.push(() => listener.close());
    const registry = await createTestRegistry({
      webhooks: { subscriptions: [{ id: 'from-config', url: listener.url, secret: SECRET, tags: ['v*'] }] },
    });
    cleanups.push(() => registry.dispose());
    const list = await request(registry.app).get(API);
    assert.deepEqual(
      list.body.subscriptions.map((s: { id: string; source: string; tags: string[] }) => [s.id, s.source, s.tags]),
      [['from-config', 'config', ['v*']]],
    );
    assertApiError(await request(registry.app).patch(`${API}/from-config`).send({ active: false }), 409, 'WEBHOOK_READ_ONLY');
    assertApiError(await request(registry.app).delete(`${API}/from-config`), 409, 'WEBHOOK_READ_ONLY');
    // It delivers like any other.
    await pushImage(registry.app, 'app', 'v1');
    await waitFor(() => listener.received.some((r) => r.json?.type === 'tag.created'), 'delivery to the config subscription');
  });
});

describe('config-declared subscriptions across restarts', () => {
  test('created, updated and removed as the config changes; an id taken through the API is an error', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-webhooks-static-'));
    cleanups.push(() => fs.rm(root, { recursive: true, force: true }));
    const secretFile = path.join(root, 'webhook-secret');
    await fs.writeFile(secretFile, `${SECRET}-from-file\n`);
    const url = 'http://127.0.0.1:9/hook';

    const first = await createTestRegistry({
      root,
      webhooks: { subscriptions: [{ id: 'a', url, secret: SECRET, tags: ['v*'] }, { id: 'b', url, secretFile }] },
    });
    assert.deepEqual((await first.webhooks.listSubscriptions()).map((s) => s.id), ['a', 'b']);
    assert.equal((await first.webhooks.store.getSubscription('b'))!.secret, `${SECRET}-from-file`, 'trailing newline dropped');
    await first.webhooks.createSubscription({ id: 'c', url, secret: SECRET });
    await first.close();

    const second = await createTestRegistry({ root, webhooks: { subscriptions: [{ id: 'a', url, secret: SECRET, tags: ['semver'] }] } });
    assert.deepEqual(
      (await second.webhooks.listSubscriptions()).map((s) => [s.id, s.source, s.tags]),
      [
        ['a', 'config', ['semver']],
        ['c', 'api', []],
      ],
    );
    await second.close();

    await assert.rejects(
      createTestRegistry({ root, webhooks: { subscriptions: [{ id: 'c', url, secret: SECRET }] } }),
      /webhooks.subscriptions c: the id is taken by a subscription created through the API/,
    );
    await assert.rejects(
      createTestRegistry({ root, webhooks: { subscriptions: [{ id: 'd', url, secretFile: path.join(root, 'missing') }] } }),
      /webhooks.subscriptions d: cannot read secretFile: ENOENT/,
    );
  });
});

describe('ping, delivery log, redelivery', () => {
  test('ping sends a signed ping at once and logs it', async () => {
    const { registry, listener } = await setup();
    const { body: sub } = await request(registry.app).post(API).send({ url: listener.url, secret: SECRET });
    const ping = await request(registry.app).post(`${API}/${sub.id}/ping`);
    assert.equal(ping.status, 200, ping.text);
    assert.equal(ping.body.ok, true);
    assert.equal(ping.body.attempt.status, 200);
    assert.equal(listener.received.length, 1);
    const received = listener.received[0]!;
    assert.equal(received.json.type, 'ping');
    assert.equal(received.headers['x-registry-event'], 'ping');
    assert.ok(verifySignature(SECRET, received.body, received.headers['x-signature'] as string));

    listener.respond = () => ({ status: 500, body: 'down for maintenance' });
    const failed = await request(registry.app).post(`${API}/${sub.id}/ping`);
    assert.equal(failed.status, 502);
    assert.equal(failed.body.ok, false);
    assert.equal(failed.body.attempt.responseBody, 'down for maintenance');
    assert.equal(failed.body.delivery.state, 'failed', 'a ping is never retried');

    const log = await request(registry.app).get(`${API}/${sub.id}/deliveries`);
    assert.equal(log.status, 200);
    assert.deepEqual(log.body.deliveries.map((d: { eventType: string; state: string }) => `${d.eventType} ${d.state}`), ['ping failed', 'ping delivered']);
    assertApiError(await request(registry.app).post(`${API}/nope/ping`), 404, 'WEBHOOK_UNKNOWN');
  });

  test('delivery log with attempts; failed list; redeliver by delivery and by event id', async () => {
    const { registry, listener } = await setup({ webhooks: { maxAgeMs: 200 } });
    listener.respond = () => ({ status: 503, body: 'x'.repeat(10_000) });
    const { body: sub } = await request(registry.app).post(API).send({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'v1');
    const failed = await waitFor(async () => {
      const res = await request(registry.app).get(`${API}/deliveries/failed`);
      return res.body.deliveries.length === 1 && res.body.deliveries;
    }, 'a failed delivery');
    const delivery = failed[0];
    assert.equal(delivery.subscriptionId, sub.id);
    assert.equal(delivery.eventType, 'tag.created');
    assert.equal(delivery.lastStatus, 503);
    assert.equal(delivery.nextAttemptAt, null);

    const detail = await request(registry.app).get(`${API}/${sub.id}/deliveries/${delivery.id}`);
    assert.equal(detail.status, 200);
    assert.ok(detail.body.log.length >= 2);
    for (const attempt of detail.body.log) {
      assert.equal(attempt.status, 503);
      assert.equal(attempt.error, 'HTTP 503');
      assert.ok(attempt.latencyMs >= 0);
      assert.ok(!Number.isNaN(Date.parse(attempt.at)));
      assert.equal(attempt.responseBody.length, 2048, 'the start of the body, capped');
    }
    const filtered = await request(registry.app).get(`${API}/${sub.id}/deliveries?state=failed&limit=5`);
    assert.equal(filtered.body.deliveries.length, 1);

    listener.respond = () => ({ status: 200 });
    const redelivered = await request(registry.app).post(`${API}/${sub.id}/deliveries/${delivery.id}/redeliver`);
    assert.equal(redelivered.status, 202);
    await waitFor(() => listener.received.at(-1)?.headers['x-registry-attempt'] === String(detail.body.log.length + 1) && listener.received.at(-1)?.json.id === delivery.eventId, 'redelivered');
    await waitFor(async () => (await request(registry.app).get(`${API}/${sub.id}/deliveries/${delivery.id}`)).body.state === 'delivered', 'delivered');

    // Any event by id, even one that predates the subscription.
    const other = await request(registry.app).post(API).send({ url: `${listener.url}/other`, secret: SECRET });
    const byEvent = await request(registry.app).post(`${API}/${other.body.id}/redeliver`).send({ eventId: delivery.eventId });
    assert.equal(byEvent.status, 202, byEvent.text);
    await waitFor(() => listener.received.some((r) => r.url === '/other' && r.json.id === delivery.eventId), 'event redelivered to another subscription');
    assertApiError(await request(registry.app).post(`${API}/${other.body.id}/redeliver`).send({ eventId: 'no-such-event' }), 404, 'WEBHOOK_UNKNOWN');
    assertApiError(await request(registry.app).post(`${API}/${other.body.id}/redeliver`).send({}), 400, 'WEBHOOK_INVALID');
    assertApiError(await request(registry.app).get(`${API}/${other.body.id}/deliveries/${delivery.id}`), 404, 'WEBHOOK_UNKNOWN');
  });
});

describe('access', () => {
  test('with token auth, only an admin may manage webhooks', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-webhooks-auth-'));
    cleanups.push(() => fs.rm(root, { recursive: true, force: true }));
    const config = validateConfig({
      storage: { root },
      log: { level: 'silent' },
      auth: { mode: 'token', adminPassword: 'correct horse battery' },
    });
    const assembled = await assemble(config, pino({ level: 'silent' }));
    cleanups.push(() => assembled.close());
    const listener = await startListener();
    cleanups.push(() => listener.close());

    const anonymous = await request(assembled.app).post(API).send({ url: listener.url });
    assert.equal(anonymous.status, 401, anonymous.text);
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic/);
    assert.equal((await request(assembled.app).get(API).auth('admin', 'wrong password')).status, 401);
    const created = await request(assembled.app).post(API).auth('admin', 'correct horse battery').send({ url: listener.url });
    assert.equal(created.status, 201, created.text);
    assert.equal((await request(assembled.app).get(API).auth('admin', 'correct horse battery')).body.subscriptions.length, 1);

    // The pusher's identity travels into the event.
    await assembled.webhooks.start();
    const token = await request(assembled.app)
      .get('/auth/token?service=harbormaster-registry&scope=repository:team/app:push,pull')
      .auth('admin', 'correct horse battery');
    assert.equal(token.status, 200, token.text);
    const bearer = `Bearer ${token.body.token as string}`;
    const blob = async (content: string) => {
      const digest = sha256(content);
      const res = await request(assembled.app).post(`/v2/team/app/blobs/uploads/?digest=${digest}`).set('Authorization', bearer).set('Content-Type', 'application/octet-stream').send(content);
      assert.equal(res.status, 201, res.text);
      return { digest, size: Buffer.byteLength(content) };
    };
    const imageConfig = await blob('{"architecture":"amd64","os":"linux"}');
    const layer = await blob('layer bytes');
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, ...imageConfig },
      layers: [{ mediaType: MEDIA.ociLayer, ...layer }],
    });
    const put = await request(assembled.app).put('/v2/team/app/manifests/v1').set('Authorization', bearer).set('Content-Type', MEDIA.ociManifest).send(manifest);
    assert.equal(put.status, 201, put.text);
    const event = await waitFor(() => listener.received.find((r) => r.json?.type === 'tag.created'), 'the push event');
    assert.deepEqual(event.json.actor, { name: 'admin', kind: 'user' });
  });
});
