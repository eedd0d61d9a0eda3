/**
 * Fidelity with the tools that consume registry webhooks (issue 16.9-16.12): each delivery is
 * read the way the consumer's own code reads it. The readers below restate, in TypeScript, what
 * those receivers do (read through the search tool: distribution notifications/event.go and
 * bridge.go; Keel pkg/http/registry_notifications.go and dockerhub_webhook_trigger.go; Argo CD
 * Image Updater pkg/webhook/webhook.go, cloudevents.go and docker.go; Flux notification-controller
 * internal/server/receiver_handlers.go with go-github's ValidatePayload).
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import os from 'node:os';
import { describe, test } from 'node:test';
import request from 'supertest';
import { pushImage } from '../helpers/app.js';
import { TIMESTAMP_SIGNATURE_HEADER, verifyTimestamped } from '../../src/webhooks/signing.js';
import { cleanupAfterEach, registryAndListener, waitFor, type Received } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const cleanups = cleanupAfterEach();

/** distribution's Event, ActorRecord, RequestRecord, SourceRecord and Envelope: the JSON keys they have. */
const DISTRIBUTION_SCHEMA = {
  envelope: ['events'],
  event: ['id', 'timestamp', 'action', 'target', 'request', 'actor', 'source'],
  target: ['mediaType', 'size', 'digest', 'urls', 'annotations', 'platform', 'length', 'repository', 'fromRepository', 'url', 'tag', 'references'],
  request: ['id', 'addr', 'host', 'method', 'useragent'],
  actor: ['name'],
  source: ['addr', 'instanceID'],
};

function keysWithin(value: Record<string, unknown>, allowed: string[], where: string): void {
  for (const key of Object.keys(value)) assert.ok(allowed.includes(key), `${where}.${key} is not in distribution's schema`);
}

/** Keel's registryNotificationHandler: push events with a tag; image = request.host + "/" + target.repository. */
function keelRegistryTrigger(body: string): Array<{ name: string; tag: string; digest: string }> {
  const notification = JSON.parse(body) as { events: Array<{ action: string; target: { tag?: string; repository: string; digest?: string }; request: { host: string } }> };
  return notification.events
    .filter((e) => e.action === 'push' && e.target.tag)
    .map((e) => ({ name: `${e.request.host}/${e.target.repository}`, tag: e.target.tag!, digest: e.target.digest ?? '' }));
}

describe('CNCF distribution envelope (Keel and other registry:2 consumers)', () => {
  test('request, source and actor as distribution fills them; nothing outside its schema', async () => {
    const { registry, listener } = await registryAndListener(cleanups, { http: { addr: '0.0.0.0:5000' } });
    await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, format: 'distribution', events: ['tag.created', 'tag.deleted'] });
    const image = await pushImage(registry.app, 'team/app', 'seed');
    const push = await request(registry.app)
      .put('/v2/team/app/manifests/1.4.2')
      .set({ Host: 'registry.example.com:5000', 'User-Agent': 'docker/27.0.3 go/go1.22 os/linux arch/amd64', 'X-Request-Id': 'req-42', 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' })
      .send(image.body.toString('utf8'));
    assert.equal(push.status, 201);
    const [seed, delivery] = await waitFor(() => listener.received.length >= 2 && listener.received, 'two pushes');

    const envelope = delivery!.json;
    keysWithin(envelope, DISTRIBUTION_SCHEMA.envelope, 'envelope');
    assert.equal(envelope.events.length, 1);
    const [event] = envelope.events;
    keysWithin(event, DISTRIBUTION_SCHEMA.event, 'event');
    keysWithin(event.target, DISTRIBUTION_SCHEMA.target, 'target');
    keysWithin(event.request, DISTRIBUTION_SCHEMA.request, 'request');
    keysWithin(event.actor, DISTRIBUTION_SCHEMA.actor, 'actor');
    keysWithin(event.source, DISTRIBUTION_SCHEMA.source, 'source');

    assert.deepEqual(event.request, {
      id: 'req-42',
      addr: '127.0.0.1',
      host: 'registry.example.com:5000',
      method: 'PUT',
      useragent: 'docker/27.0.3 go/go1.22 os/linux arch/amd64',
    });
    assert.deepEqual(event.actor, {}, 'anonymous: an empty actor, as distribution');
    assert.equal(event.source.addr, `${os.hostname()}:5000`);
    assert.match(event.source.instanceID, /^[0-9a-f-]{36}$/);
    assert.equal(seed!.json.events[0].source.instanceID, event.source.instanceID, 'one instance id per process');
    assert.notEqual(seed!.json.events[0].request.id, 'req-42', 'each request its own id');
    assert.equal(event.target.url, `http://registry.example.com:5000/v2/team/app/manifests/${image.digest}`);

    // The attempt time travels in the signed header instead of the body.
    const header = delivery!.headers[TIMESTAMP_SIGNATURE_HEADER.toLowerCase()] as string;
    assert.ok(verifyTimestamped(SECRET, delivery!.body, header, Date.now(), { maxAgeSeconds: 300, maxFutureSeconds: 60 }));

    assert.deepEqual(keelRegistryTrigger(delivery!.body), [{ name: 'registry.example.com:5000/team/app', tag: '1.4.2', digest: image.digest }]);

    // A deletion: action delete, the request's own method; Keel ignores it.
    const deleted = await request(registry.app).delete('/v2/team/app/manifests/1.4.2').set('Host', 'registry.example.com:5000');
    assert.equal(deleted.status, 202);
    const removal = await waitFor(() => listener.received.find((r: Received) => r.json.events[0]?.action === 'delete'), 'the tag deletion');
    assert.equal(removal.json.events[0].request.method, 'DELETE');
    assert.deepEqual(keelRegistryTrigger(removal.body), []);
  });

  test('one request id for every event of one request', async () => {
    const { registry, listener } = await registryAndListener(cleanups);
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, format: 'distribution', events: ['tag.deleted', 'manifest.deleted'] });
    const image = await pushImage(registry.app, 'team/app', 'v1');
    await request(registry.app).put('/v2/team/app/manifests/latest').set('Content-Type', image.mediaType).send(image.body.toString('utf8'));
    // Deleting the manifest by digest deletes both its tags and the manifest: three events, one request.
    const deleted = await request(registry.app).delete(`/v2/team/app/manifests/${image.digest}`).set('X-Request-Id', 'delete-1');
    assert.equal(deleted.status, 202);
    const received = await waitFor(() => listener.received.length === 3 && listener.received, 'three deletion events');
    assert.deepEqual(received.map((r) => r.json.events[0].request.id), ['delete-1', 'delete-1', 'delete-1']);
    assert.deepEqual(new Set(received.map((r) => r.json.events[0].id)).size, 3, 'each event its own id');
    assert.equal((await registry.webhooks.listDeliveries(sub.id)).length, 3);
  });
});

/** go-github's ValidatePayload as Flux's `github` receiver calls it: application/json only, X-Hub-Signature-256 (else the sha1 one). */
function githubValidatePayload(received: Received, secret: string): boolean {
  const contentType = String(received.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (contentType !== 'application/json' && contentType !== 'application/x-www-form-urlencoded') return false;
  return hmacMatches(String(received.headers['x-hub-signature-256'] ?? received.headers['x-hub-signature'] ?? ''), received.body, secret);
}

/** go-github's ValidateSignature (Flux `generic-hmac` on X-Signature): `<sha1|sha256|sha512>=<hex>`. */
function hmacMatches(header: string, body: string, secret: string): boolean {
  const match = /^(sha1|sha256|sha512)=([0-9a-f]+)$/.exec(header);
  if (!match) return false;
  const expected = createHmac(match[1]!, secret).update(body).digest();
  const given = Buffer.from(match[2]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Flux's receiver `events` check: X-GitHub-Event must be listed when the Receiver lists any. */
function fluxGithubEventAllowed(received: Received, events: string[]): boolean {
  const event = String(received.headers['x-github-event'] ?? '');
  return events.length === 0 || events.some((e) => e.toLowerCase() === event.toLowerCase());
}

describe('GitHub-style signatures and Flux receivers', () => {
  test('X-Hub-Signature-256 beside the others: Flux generic-hmac and github receivers verify deliveries', async () => {
    const { registry, listener } = await registryAndListener(cleanups);
    await registry.webhooks.createSubscription({ url: `${listener.url}/native`, secret: SECRET, events: ['tag.created'], headers: { 'X-GitHub-Event': 'push' } });
    await registry.webhooks.createSubscription({ url: `${listener.url}/hub`, secret: SECRET, events: ['tag.created'], format: 'dockerhub' });
    await registry.webhooks.createSubscription({ url: `${listener.url}/ce`, secret: SECRET, events: ['tag.created'], format: 'cloudevents' });
    await pushImage(registry.app, 'team/app', '1.0.0');
    await waitFor(() => listener.received.length === 3, 'three deliveries');
    for (const received of listener.received) {
      const hub = received.headers['x-hub-signature-256'];
      assert.equal(hub, received.headers['x-registry-signature-256'], received.url);
      assert.ok(hmacMatches(String(received.headers['x-signature']), received.body, SECRET), `${received.url}: generic-hmac accepts`);
      assert.ok(!hmacMatches(String(received.headers['x-signature']), received.body, 'another-secret-entirely'));
    }
    const byPath = (path: string) => listener.received.find((r) => r.url === path)!;
    assert.ok(githubValidatePayload(byPath('/native'), SECRET), 'github receiver: native (application/json)');
    assert.ok(githubValidatePayload(byPath('/hub'), SECRET), 'github receiver: dockerhub (application/json)');
    assert.ok(!githubValidatePayload(byPath('/ce'), SECRET), 'github receiver refuses application/cloudevents+json');
    assert.ok(fluxGithubEventAllowed(byPath('/native'), ['push']), 'a custom X-GitHub-Event header satisfies a Receiver listing push');
    assert.ok(!fluxGithubEventAllowed(byPath('/hub'), ['push']), 'without it, only a Receiver with no events accepts');
    assert.ok(fluxGithubEventAllowed(byPath('/hub'), []));
  });
});

/** Keel's dockerHubHandler: repo_name and push_data.tag required; the image is repo_name. */
function keelDockerHubTrigger(body: string): { status: number; name?: string; tag?: string } {
  const hook = JSON.parse(body) as { push_data?: { tag?: string }; repository?: { repo_name?: string } };
  if (!hook.repository?.repo_name) return { status: 400 };
  if (!hook.push_data?.tag) return { status: 400 };
  return { status: 200, name: hook.repository.repo_name, tag: hook.push_data.tag };
}

describe('Docker Hub format', () => {
  test('push_data, repository and callback_url as Docker Hub documents them; only pushes are sent', async () => {
    const { registry, listener } = await registryAndListener(cleanups, { http: { addr: '0.0.0.0:5000' } });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, format: 'dockerhub' });
    const first = await pushImage(registry.app, 'team/app', '1.4.2');
    await request(registry.app).delete('/v2/team/app/manifests/1.4.2');
    const second = await pushImage(registry.app, 'solo', 'latest');
    const [latest] = await registry.webhooks.store.listEvents({ limit: 1 });
    await waitFor(async () => (await registry.webhooks.store.outboxCursor()) === latest!.seq, 'fan-out of every event');
    const received = await waitFor(() => listener.received.length === 2 && listener.received, 'the two pushes, nothing else');
    assert.deepEqual((await registry.webhooks.listDeliveries(sub.id)).map((d) => d.eventType).sort(), ['tag.created', 'tag.created']);

    const [hook] = received;
    assert.equal(hook!.headers['content-type'], 'application/json');
    const body = hook!.json;
    assert.deepEqual(Object.keys(body).sort(), ['callback_url', 'push_data', 'repository']);
    assert.equal(body.callback_url, hook!.headers['x-registry-deploy-callback']);
    assert.equal(body.push_data.tag, '1.4.2');
    assert.equal(body.push_data.pusher, 'anonymous');
    assert.ok(Number.isInteger(body.push_data.pushed_at) && Math.abs(body.push_data.pushed_at * 1000 - Date.now()) < 60_000);
    assert.deepEqual(body.push_data.images, [first.digest]);
    const host = body.repository.repo_name.split('/')[0];
    assert.match(host, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      [body.repository.repo_name, body.repository.namespace, body.repository.name, body.repository.status, body.repository.is_private],
      [`${host}/team/app`, `${host}/team`, 'app', 'Active', true],
    );
    // Each supertest request has its own ephemeral port: each event names the one its push used.
    const soloHost = received[1]!.json.repository.namespace;
    assert.match(soloHost, /^127\.0\.0\.1:\d+$/);
    assert.equal(received[1]!.json.repository.repo_name, `${soloHost}/solo`);
    assert.deepEqual(received[1]!.json.push_data.images, [second.digest]);

    assert.deepEqual(keelDockerHubTrigger(hook!.body), { status: 200, name: `${host}/team/app`, tag: '1.4.2' }, 'Keel deploys host/team/app:1.4.2');
    const ping = await request(registry.app).post(`/api/v1/webhooks/${sub.id}/ping`);
    const pinged = listener.received[2]!;
    assert.equal(ping.status, 200);
    assert.equal(pinged.json.repository.repo_name, null);
    assert.equal(keelDockerHubTrigger(pinged.body).status, 400, 'Keel refuses a ping (no repository): nothing deploys');
  });
});

/**
 * Argo CD Image Updater's webhook server: the handler is chosen by `?type=` (or the
 * X-Registry-Type header); the cloudevents handler checks the secret (`?secret=` or
 * X-Webhook-Secret), wants a type containing "container" or "image", and reads
 * data.repository, data.tag, data.digest and data.registry (subject "repo:tag" as fallback).
 */
function argoImageUpdater(received: Received, secret: string): { status: number; event?: { registryURL: string; repository: string; tag: string; digest: string } } {
  const url = new URL(received.url, 'http://argocd-image-updater');
  const type = url.searchParams.get('type') ?? String(received.headers['x-registry-type'] ?? '');
  if (type !== 'cloudevents') return { status: 400 };
  const given = url.searchParams.get('secret') ?? String(received.headers['x-webhook-secret'] ?? '');
  if (given !== secret) return { status: 400 };
  const contentType = String(received.headers['content-type']);
  if (!contentType.includes('application/json') && !contentType.includes('application/cloudevents+json')) return { status: 400 };
  const payload = received.json as { specversion?: string; type?: string; subject?: string; data?: Record<string, unknown> };
  if (!payload.specversion || !payload.type) return { status: 400 };
  if (!payload.type.includes('container') && !payload.type.includes('image')) return { status: 400 };
  let [repository, tag] = (payload.subject ?? '').includes(':') ? payload.subject!.split(/:(.*)/s) : ['', ''];
  if (typeof payload.data?.repository === 'string' && payload.data.repository) repository = payload.data.repository;
  if (typeof payload.data?.tag === 'string' && payload.data.tag) tag = payload.data.tag;
  const digest = typeof payload.data?.digest === 'string' ? payload.data.digest : '';
  const registryURL = typeof payload.data?.registry === 'string' ? payload.data.registry : '';
  if (!repository || !tag || !registryURL) return { status: 400 };
  return { status: 200, event: { registryURL, repository: repository!, tag: tag!, digest } };
}

describe('Argo CD Image Updater', () => {
  test('the documented set-up: cloudevents, ?type=cloudevents, X-Webhook-Secret, events tag.created and tag.updated', async () => {
    const { registry, listener } = await registryAndListener(cleanups, { publicUrl: 'https://registry.example.com' });
    const argoSecret = 'argo-webhook-secret-value';
    await registry.webhooks.createSubscription({
      url: `${listener.url}/webhook?type=cloudevents`,
      secret: SECRET,
      format: 'cloudevents',
      events: ['tag.created', 'tag.updated'],
      headers: { 'X-Webhook-Secret': argoSecret },
    });
    // Without the event filter every change would reach Argo: a deletion would read as a push.
    await registry.webhooks.createSubscription({ url: `${listener.url}/unfiltered?type=cloudevents`, secret: SECRET, format: 'cloudevents', headers: { 'X-Webhook-Secret': argoSecret } });
    const first = await pushImage(registry.app, 'team/app', '1.0.0');
    const second = await pushImage(registry.app, 'team/app', '1.0.0', 'rebuilt');
    await request(registry.app).delete('/v2/team/app/manifests/1.0.0');
    // repository.created, tag.created, tag.updated, tag.deleted
    await waitFor(() => listener.received.filter((r) => r.url.startsWith('/unfiltered')).length === 4, 'every change to the unfiltered one');
    const argo = listener.received.filter((r) => r.url.startsWith('/webhook')).map((r) => argoImageUpdater(r, argoSecret));
    assert.deepEqual(argo, [
      { status: 200, event: { registryURL: 'registry.example.com', repository: 'team/app', tag: '1.0.0', digest: first.digest } },
      { status: 200, event: { registryURL: 'registry.example.com', repository: 'team/app', tag: '1.0.0', digest: second.digest } },
    ]);
    // Argo matches an application's image `registry.example.com/team/app` by registry and name.
    const unfiltered = listener.received.filter((r) => r.url.startsWith('/unfiltered'));
    const misfires = unfiltered.filter((r) => r.json.type.endsWith('.tag.deleted')).map((r) => argoImageUpdater(r, argoSecret));
    assert.equal(misfires[0]!.status, 200, 'a tag.deleted event reads as a push to Argo: hence the events filter');
    assert.equal(argoImageUpdater(unfiltered.find((r) => r.json.type.endsWith('.repository.created'))!, argoSecret).status, 400, 'and repository.created fails the delivery');
    assert.equal(argoImageUpdater(listener.received[0]!, 'wrong-secret').status, 400);
  });
});

