/**
 * The dispatcher end to end inside one process: pushes through the HTTP app record outbox
 * events, the dispatcher fans them out and delivers them to a real loopback listener.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import request from 'supertest';
import { MEDIA, pushBlob, pushImage, pushManifest, sha256 } from '../helpers/app.js';
import { FLUX_SIGNATURE_HEADER, SIGNATURE_HEADER, verifySignature } from '../../src/webhooks/signing.js';
import { cleanupAfterEach, createTestRegistry, type Listener, registryAndListener, startListener, type TestRegistry, waitFor } from './support.js';

const SECRET = 'a-test-secret-of-some-length';

const cleanups = cleanupAfterEach();

async function setup(webhooks: Parameters<typeof createTestRegistry>[0] = {}): Promise<{ registry: TestRegistry; listener: Listener }> {
  const { registry, listener } = await registryAndListener(cleanups, webhooks);
  return { registry, listener };
}

function ofType(listener: Listener, type: string, tag?: string) {
  return listener.received.filter((r) => r.json?.type === type && (tag === undefined || r.json?.tag === tag));
}

describe('delivery of pushes', () => {
  test('a new tag is delivered as tag.created, signed, with the full payload', async () => {
    const { registry, listener } = await setup();
    const sub = await registry.webhooks.createSubscription({ url: `${listener.url}/hook`, secret: SECRET });
    const pushed = await pushImage(registry.app, 'app', '1.4.2');

    const [delivery] = await waitFor(() => ofType(listener, 'tag.created').length > 0 && ofType(listener, 'tag.created'), 'tag.created');
    const { headers, body, json } = delivery!;
    assert.equal(delivery!.url, '/hook');
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers[SIGNATURE_HEADER.toLowerCase()], headers[FLUX_SIGNATURE_HEADER.toLowerCase()]);
    assert.ok(verifySignature(SECRET, body, headers[SIGNATURE_HEADER.toLowerCase()] as string), 'signature verifies');
    assert.ok(!verifySignature('another-secret-entirely', body, headers[SIGNATURE_HEADER.toLowerCase()] as string));
    assert.equal(headers['x-registry-event'], 'tag.created');
    assert.equal(headers['x-registry-event-id'], json.id);
    assert.equal(headers['x-registry-attempt'], '1');
    assert.match(headers['x-registry-timestamp'] as string, /^\d+$/);
    assert.match(json.id, /^[0-9a-f-]{36}$/);
    // The host the push addressed (supertest's ephemeral listener), not the configured listen address.
    assert.match(json.registry, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(json.registry, '127.0.0.1:5000');
    assert.equal(json.repository, 'app');
    assert.equal(json.tag, '1.4.2');
    assert.equal(json.digest, pushed.digest);
    assert.equal(json.mediaType, MEDIA.ociManifest);
    assert.equal(json.size, pushed.size);
    assert.equal(json.reference, `${json.registry}/app:1.4.2@${pushed.digest}`);
    assert.deepEqual(json.actor, { name: 'anonymous', kind: 'anonymous' });
    assert.equal(json.previousDigest, null);
    assert.equal(json.platforms, null);
    assert.ok(Math.abs(Date.parse(json.sentAt) - Date.now()) < 60_000, 'sentAt is now');
    assert.ok(Math.abs(Date.parse(json.timestamp) - Date.now()) < 60_000, 'timestamp is now');

    // The repository's creation came first: same subscription and repository, so in order.
    const types = listener.received.map((r) => r.json?.type);
    assert.deepEqual(types.slice(0, 2), ['repository.created', 'tag.created']);

    // The outcome is written once the receiver has answered, which may be just after it got the request.
    const created = await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id)).find((d) => d.eventType === 'tag.created' && d.state !== 'pending'), 'the outcome recorded');
    assert.equal(created.state, 'delivered');
    assert.equal(created.eventId, json.id);
    const detail = await registry.webhooks.getDelivery(sub.id, created.id);
    assert.equal(detail.log.length, 1);
    assert.equal(detail.log[0]!.status, 200);
    assert.equal(detail.log[0]!.responseBody, 'ok');
    assert.ok(detail.log[0]!.latencyMs >= 0);
  });

  test('pushing the same tag with new content gives tag.updated with the previous digest', async () => {
    const { registry, listener } = await setup();
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created', 'tag.updated'] });
    const first = await pushImage(registry.app, 'app', 'latest', 'first build');
    const second = await pushImage(registry.app, 'app', 'latest', 'second build');
    assert.notEqual(first.digest, second.digest);
    const [updated] = await waitFor(() => ofType(listener, 'tag.updated').length > 0 && ofType(listener, 'tag.updated'), 'tag.updated');
    assert.equal(updated!.json.digest, second.digest);
    assert.equal(updated!.json.previousDigest, first.digest);
    assert.deepEqual(
      listener.received.map((r) => r.json.type),
      ['tag.created', 'tag.updated'],
      'only the asked-for types, in order',
    );
    // Re-pushing identical content changes nothing, so no event.
    await pushImage(registry.app, 'app', 'latest', 'second build');
    await waitFor(async () => (await registry.webhooks.store.outboxCursor()) >= 3, 'fan-out');
    assert.equal(listener.received.length, 2);
  });

  test('repository, tag and event filters decide which events become deliveries', async () => {
    const { registry, listener } = await setup();
    const sub = await registry.webhooks.createSubscription({
      url: listener.url,
      secret: SECRET,
      events: ['tag.created', 'tag.updated'],
      repositories: ['team/*'],
      tags: ['v*'],
    });
    const semver = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, tags: ['semver:stable'] });
    const regex = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, repositories: ['/^other\\/.+$/'] });
    await pushImage(registry.app, 'team/app', 'v1.0.0');
    await pushImage(registry.app, 'team/app', 'latest');
    await pushImage(registry.app, 'team/app', 'v2.0.0-rc.1');
    await pushImage(registry.app, 'other/app', 'v1.0.0');
    await pushImage(registry.app, 'team/deep/app', 'v1.0.0');
    const seq = registry.webhooks.store;
    await waitFor(async () => (await seq.outboxCursor()) >= 8, 'fan-out of every event');

    const tagsOf = async (id: string) =>
      (await registry.webhooks.listDeliveries(id)).map((d) => `${d.eventType} ${d.repository}:${d.payload.tag ?? ''}`).sort();
    assert.deepEqual(await tagsOf(sub.id), ['tag.created team/app:v1.0.0', 'tag.created team/app:v2.0.0-rc.1']);
    assert.deepEqual(await tagsOf(semver.id), [
      'tag.created other/app:v1.0.0',
      'tag.created team/app:v1.0.0',
      'tag.created team/deep/app:v1.0.0',
    ]);
    assert.deepEqual(await tagsOf(regex.id), ['repository.created other/app:', 'tag.created other/app:v1.0.0']);
    await waitFor(() => listener.received.length === 7, 'all 7 deliveries');
  });

  test('a multi-platform index is one event, with its platforms', async () => {
    const { registry, listener } = await setup();
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    const amd = await pushImage(registry.app, 'multi', 'sha256-placeholder-amd', 'amd64 image');
    const arm = await pushImage(registry.app, 'multi', 'sha256-placeholder-arm', 'arm64 image');
    // The children above were tagged only to get them in; what matters is the index push below.
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [
        { mediaType: MEDIA.ociManifest, digest: amd.digest, size: amd.size, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MEDIA.ociManifest, digest: arm.digest, size: arm.size, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { mediaType: MEDIA.ociManifest, digest: arm.digest, size: arm.size, platform: { os: 'unknown', architecture: 'unknown' } },
      ],
    };
    const pushed = await pushManifest(registry.app, 'multi', 'v1', index, MEDIA.ociIndex);
    const [event] = await waitFor(() => ofType(listener, 'tag.created', 'v1').length > 0 && ofType(listener, 'tag.created', 'v1'), 'index event');
    assert.equal(event!.json.digest, pushed.digest);
    assert.equal(event!.json.mediaType, MEDIA.ociIndex);
    assert.deepEqual(event!.json.platforms, [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
  });

  test('children pushed by digest and then an index give exactly one event', async () => {
    const { registry, listener } = await setup();
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created', 'tag.updated'] });
    const children = [];
    for (const arch of ['amd64', 'arm64']) {
      const config = await pushBlob(registry.app, 'multi', JSON.stringify({ architecture: arch, os: 'linux' }), MEDIA.ociConfig);
      const layer = await pushBlob(registry.app, 'multi', `layer ${arch}`);
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config, layers: [layer] }));
      const res = await request(registry.app).put(`/v2/multi/manifests/${sha256(body)}`).set('Content-Type', MEDIA.ociManifest).send(body.toString());
      assert.equal(res.status, 201);
      children.push({ mediaType: MEDIA.ociManifest, digest: sha256(body), size: body.length, platform: { os: 'linux', architecture: arch } });
    }
    await pushManifest(registry.app, 'multi', 'latest', { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: children }, MEDIA.ociIndex);
    await waitFor(() => listener.received.length >= 1, 'the index event');
    await waitFor(async () => (await registry.webhooks.store.outboxCursor()) >= 2, 'fan-out');
    assert.equal(listener.received.length, 1);
    assert.equal(listener.received[0]!.json.platforms.length, 2);
  });

  test('tag and manifest deletions are delivered', async () => {
    const { registry, listener } = await setup();
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.deleted', 'manifest.deleted'] });
    const image = await pushImage(registry.app, 'app', 'v1');
    await pushManifest(registry.app, 'app', 'v2', image.body);
    assert.equal((await request(registry.app).delete('/v2/app/manifests/v2')).status, 202);
    assert.equal((await request(registry.app).delete(`/v2/app/manifests/${image.digest}`)).status, 202);
    await waitFor(() => listener.received.length === 3, 'three deletion events');
    assert.deepEqual(
      listener.received.map((r) => `${r.json.type} ${r.json.tag ?? '-'} ${r.json.digest === image.digest}`),
      ['tag.deleted v2 true', 'tag.deleted v1 true', 'manifest.deleted - true'],
    );
  });

  test('a subscription gets only events recorded after it was created', async () => {
    const { registry, listener } = await setup();
    await pushImage(registry.app, 'app', 'before');
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'after');
    await waitFor(() => listener.received.length >= 1, 'a delivery');
    await waitFor(async () => (await registry.webhooks.store.outboxCursor()) >= 3, 'fan-out');
    assert.deepEqual(listener.received.map((r) => r.json.tag), ['after']);
  });

});

describe('formats', () => {
  test('distribution envelope, as registry:2 consumers (Keel) read it', async () => {
    const { registry, listener } = await setup({ publicUrl: 'https://registry.example.com' });
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, format: 'distribution' });
    const image = await pushImage(registry.app, 'team/app', '1.4.2');
    const [delivery] = await waitFor(() => listener.received.length > 0 && listener.received, 'a delivery');
    // repository.created has no distribution action: the first delivery is the push.
    assert.equal(delivery!.headers['content-type'], 'application/vnd.docker.distribution.events.v1+json');
    assert.ok(verifySignature(SECRET, delivery!.body, delivery!.headers['x-signature'] as string));
    const { events } = delivery!.json;
    assert.equal(events.length, 1);
    const [event] = events;
    assert.equal(event.action, 'push');
    assert.equal(event.id, delivery!.headers['x-registry-event-id']);
    assert.deepEqual(event.target, {
      repository: 'team/app',
      mediaType: MEDIA.ociManifest,
      digest: image.digest,
      url: `https://registry.example.com/v2/team/app/manifests/${image.digest}`,
      size: image.size,
      length: image.size,
      tag: '1.4.2',
    });
    // Keel: image = request.host + "/" + target.repository
    assert.equal(`${event.request.host}/${event.target.repository}`, 'registry.example.com/team/app');
    assert.equal(event.request.method, 'PUT');
    assert.deepEqual(event.actor, {}, 'anonymous, as distribution writes it');
    assert.ok(!Number.isNaN(Date.parse(event.timestamp)));
    assert.deepEqual(Object.keys(delivery!.json), ['events'], 'nothing outside the envelope schema (test/webhooks/consumers.test.ts)');
  });

  test('CloudEvents 1.0 structured JSON', async () => {
    const { registry, listener } = await setup({ publicUrl: 'https://registry.example.com', webhooks: { cloudEventsTypePrefix: 'com.example.container' } });
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, format: 'cloudevents', events: ['tag.created'] });
    const image = await pushImage(registry.app, 'app', 'v1');
    const [delivery] = await waitFor(() => listener.received.length > 0 && listener.received, 'a delivery');
    assert.equal(delivery!.headers['content-type'], 'application/cloudevents+json; charset=utf-8');
    const event = delivery!.json;
    assert.equal(event.specversion, '1.0');
    assert.equal(event.type, 'com.example.container.tag.created');
    assert.equal(event.source, 'https://registry.example.com');
    assert.equal(event.subject, 'app:v1');
    assert.equal(event.datacontenttype, 'application/json');
    assert.equal(event.id, delivery!.headers['x-registry-event-id']);
    assert.deepEqual(
      { registry: event.data.registry, repository: event.data.repository, tag: event.data.tag, digest: event.data.digest, mediaType: event.data.mediaType },
      { registry: 'registry.example.com', repository: 'app', tag: 'v1', digest: image.digest, mediaType: MEDIA.ociManifest },
    );
    // Argo CD Image Updater's generic CloudEvents handler needs "image" or "container" in the type.
    assert.match(event.type, /container|image/);
  });
});

describe('retries, order and limits', () => {
  test('5xx answers are retried with backoff until the receiver recovers, keeping order per repository', async () => {
    const { registry, listener } = await setup();
    let failures = 3;
    listener.respond = () => (failures-- > 0 ? { status: 503, body: 'busy' } : { status: 200, body: 'ok' });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'one');
    await pushImage(registry.app, 'app', 'two');
    await pushImage(registry.app, 'app', 'three');
    await waitFor(() => listener.received.filter((r) => r.json.tag === 'three').length > 0, 'the last event');

    const tags = listener.received.map((r) => r.json.tag);
    assert.deepEqual(tags, ['one', 'one', 'one', 'one', 'two', 'three'], 'the first is retried; the others wait their turn');
    const ids = new Set(listener.received.filter((r) => r.json.tag === 'one').map((r) => r.json.id));
    assert.equal(ids.size, 1, 'the same event id on every attempt');
    const attempts = listener.received.filter((r) => r.json.tag === 'one').map((r) => r.headers['x-registry-attempt']);
    assert.deepEqual(attempts, ['1', '2', '3', '4']);
    // Each attempt is signed afresh over a body with its own sentAt.
    for (const r of listener.received) assert.ok(verifySignature(SECRET, r.body, r.headers['x-registry-signature-256'] as string));

    const one = (await registry.webhooks.listDeliveries(sub.id)).find((d) => d.payload.tag === 'one')!;
    const detail = await registry.webhooks.getDelivery(sub.id, one.id);
    assert.equal(detail.state, 'delivered');
    assert.deepEqual(detail.log.map((a) => a.status), [503, 503, 503, 200]);
    assert.deepEqual(detail.log.map((a) => a.error), ['HTTP 503', 'HTTP 503', 'HTTP 503', null]);
    assert.equal(detail.log[0]!.responseBody, 'busy');
    for (let i = 1; i < detail.log.length; i++) assert.ok(detail.log[i]!.at > detail.log[i - 1]!.at, 'attempts spaced in time');
  });

  test('a refused connection is retried, and the event arrives once the listener is back', async () => {
    const { registry } = await setup();
    const probe = await startListener();
    const port = probe.port;
    await probe.close();
    const sub = await registry.webhooks.createSubscription({ url: `http://127.0.0.1:${port}/`, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'v1');
    const pending = await waitFor(async () => {
      const [delivery] = await registry.webhooks.listDeliveries(sub.id);
      return delivery && delivery.attempts >= 2 && delivery;
    }, 'two failed attempts');
    assert.equal(pending.state, 'pending');
    assert.match(pending.lastError ?? '', /ECONNREFUSED/);
    const listener = await startListener(port);
    cleanups.push(() => listener.close());
    await waitFor(() => listener.received.length > 0, 'delivery after the listener came back');
    assert.equal(listener.received[0]!.json.id, pending.eventId);
    await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id))[0]?.state === 'delivered', 'delivered state');
  });

  test('a timeout counts as a failure and is retried', async () => {
    const { registry, listener } = await setup({ webhooks: { requestTimeoutMs: 150 } });
    let slow = true;
    listener.respond = () => (slow ? ((slow = false), { status: 200, delayMs: 1_000 }) : { status: 204 });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'v1');
    await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id))[0]?.state === 'delivered', 'delivered');
    const [delivery] = await registry.webhooks.listDeliveries(sub.id);
    const detail = await registry.webhooks.getDelivery(sub.id, delivery!.id);
    assert.match(detail.log[0]!.error ?? '', /timed out after 150 ms/);
    assert.equal(detail.log[0]!.status, null);
    assert.equal(detail.log.at(-1)!.status, 204);
  });

  test('4xx answers are not retried: the delivery fails at once', async () => {
    const { registry, listener } = await setup();
    listener.respond = () => ({ status: 400, body: 'no thanks' });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'v1');
    await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id))[0]?.state === 'failed', 'failed');
    assert.equal(listener.received.length, 1);
  });

  test('after the maximum age a delivery is marked failed, then can be redelivered with the same id', async () => {
    const { registry, listener } = await setup({ webhooks: { maxAgeMs: 300 } });
    let up = false;
    listener.respond = () => (up ? { status: 200 } : { status: 500 });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'v1');
    await pushImage(registry.app, 'app', 'v2');
    const failed = await waitFor(async () => {
      const list = await registry.webhooks.failedDeliveries();
      return list.length === 2 && list;
    }, 'both deliveries failed');
    assert.ok(failed.every((d) => d.subscriptionId === sub.id && d.lastStatus === 500));
    const first = failed.find((d) => d.payload.tag === 'v1')!;
    // v2 waited behind v1 (same repository), so its age may have run out by its first attempt.
    assert.ok(first.attempts >= 2, 'retried until it was too old');

    up = true;
    const before = listener.received.length;
    const requeued = await registry.webhooks.redeliver(sub.id, first.id);
    assert.equal(requeued.state, 'pending');
    await waitFor(() => listener.received.length > before && listener.received.at(-1)!.json.id === first.eventId, 'redelivered');
    await waitFor(async () => (await registry.webhooks.getDelivery(sub.id, first.id)).state === 'delivered', 'delivered');
    assert.deepEqual((await registry.webhooks.failedDeliveries()).map((d) => d.payload.tag), ['v2']);
  });

  test('at most maxInFlightPerEndpoint requests to one endpoint at a time', async () => {
    const { registry, listener } = await setup({ webhooks: { maxInFlightPerEndpoint: 2 } });
    listener.respond = () => ({ status: 200, delayMs: 100 });
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    // Different repositories: their deliveries may go in parallel, up to the bound.
    for (let i = 0; i < 6; i++) await pushImage(registry.app, `repo${i}`, 'v1');
    await waitFor(() => listener.received.length === 6, 'six deliveries');
    assert.ok(listener.concurrent.max <= 2, `at most 2 at once, saw ${listener.concurrent.max}`);
  });

  test('redirects are not followed', async () => {
    const { registry, listener } = await setup();
    listener.respond = () => ({ status: 307, headers: { Location: `${listener.url}/elsewhere` } });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'app', 'v1');
    await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id))[0]?.state === 'failed', 'failed');
    assert.equal(listener.received.length, 1);
    assert.match((await registry.webhooks.listDeliveries(sub.id))[0]!.lastError ?? '', /redirect \(307 to .*\/elsewhere\) not followed/);
  });
});

describe('restarts', () => {
  test('events recorded while the dispatcher was down are delivered once it starts, with their ids', async () => {
    const listener = await startListener();
    cleanups.push(() => listener.close());
    const first = await createTestRegistry({ start: false });
    const root = first.root;
    cleanups.push(() => import('node:fs/promises').then((fs) => fs.rm(root, { recursive: true, force: true })));
    await first.webhooks.createSubscription({ id: 'deploy', url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(first.app, 'app', 'v1');
    const [event] = (await first.registry.metadata.readEvents(0, 10)).filter((e) => e.type === 'tag.created');
    await first.close();
    assert.equal(listener.received.length, 0);

    const second = await createTestRegistry({ root });
    cleanups.push(() => second.close());
    await waitFor(() => listener.received.length > 0, 'delivery after restart');
    assert.equal(listener.received[0]!.json.id, event!.id);
  });

  test('a delivery still pending when the registry stops is resumed by the next one, same id', async () => {
    const listener = await startListener();
    cleanups.push(() => listener.close());
    listener.respond = () => ({ status: 503 });
    const first = await createTestRegistry();
    const root = first.root;
    cleanups.push(() => import('node:fs/promises').then((fs) => fs.rm(root, { recursive: true, force: true })));
    await first.webhooks.createSubscription({ id: 'deploy', url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(first.app, 'app', 'v1');
    await waitFor(() => listener.received.length >= 2, 'failing attempts');
    await first.close();
    const idBefore = listener.received[0]!.json.id;
    const attemptsBefore = listener.received.length;

    listener.respond = () => ({ status: 200 });
    const second = await createTestRegistry({ root });
    cleanups.push(() => second.close());
    await waitFor(() => listener.received.length > attemptsBefore && listener.received.at(-1)!.json.id === idBefore, 'resumed delivery');
    assert.equal(new Set(listener.received.map((r) => r.json.id)).size, 1);
    const [delivery] = await second.webhooks.listDeliveries('deploy');
    await waitFor(async () => (await second.webhooks.getDelivery('deploy', delivery!.id)).state === 'delivered', 'delivered');
    assert.equal(Number(listener.received.at(-1)!.headers['x-registry-attempt']), attemptsBefore + 1, 'attempt count carried over');
  });
});

describe('pulls', () => {
  test('manifest.pulled is opt-in', async () => {
    const { registry, listener } = await setup();
    const pulls = await registry.webhooks.createSubscription({ url: `${listener.url}/pulls`, secret: SECRET, events: ['manifest.pulled'] });
    await registry.webhooks.createSubscription({ url: `${listener.url}/default`, secret: SECRET });
    const image = await pushImage(registry.app, 'app', 'v1');
    await waitFor(() => listener.received.filter((r) => r.url === '/default').length === 2, 'the default subscription got the push');
    assert.equal(listener.received.filter((r) => r.url === '/pulls').length, 0);

    const res = await request(registry.app).get('/v2/app/manifests/v1').set('Accept', MEDIA.ociManifest);
    assert.equal(res.status, 200);
    await request(registry.app).head('/v2/app/manifests/v1');
    const [pull] = await waitFor(() => listener.received.filter((r) => r.url === '/pulls').length > 0 && listener.received.filter((r) => r.url === '/pulls'), 'pull event');
    assert.equal(pull!.json.type, 'manifest.pulled');
    assert.equal(pull!.json.tag, 'v1');
    assert.equal(pull!.json.digest, image.digest);
    assert.match(pull!.json.reference, new RegExp(`^127\\.0\\.0\\.1:\\d+/app:v1@${image.digest}$`));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(listener.received.filter((r) => r.url === '/default').length, 2, 'subscriptions that did not opt in get no pulls');
    assert.equal((await registry.webhooks.listDeliveries(pulls.id)).length, 1, 'HEAD is not a pull');
  });
});

after(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
