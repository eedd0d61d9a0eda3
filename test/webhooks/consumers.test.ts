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
