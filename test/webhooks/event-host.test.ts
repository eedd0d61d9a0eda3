/**
 * Issue 11.1: the registry host an event names is decided per request, from the request that
 * made the change (Host, or X-Forwarded-Host/-Proto only from a trusted proxy), validated as
 * host[:port]; http.publicUrl always wins; http.allowedHosts limits what events may name; and
 * nothing another request sends reaches an event it did not make.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import request from 'supertest';
import { MEDIA, sha256 } from '../helpers/app.js';
import { EventOrigins } from '../../src/webhooks/origin.js';
import { cleanupAfterEach, createTestRegistry, type Listener, registryAndListener, startListener, type TestRegistry, waitFor } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const ADMIN_PASSWORD = 'admin-password-for-event-host';

const cleanups = cleanupAfterEach();

async function setup(options: Parameters<typeof createTestRegistry>[0] = {}): Promise<{ registry: TestRegistry; listener: Listener }> {
  const { registry, listener } = await registryAndListener(cleanups, options);
  await registry.webhooks.createSubscription({ url: `${listener.url}/native`, secret: SECRET, events: ['tag.created', 'tag.updated'] });
  await registry.webhooks.createSubscription({ url: `${listener.url}/distribution`, secret: SECRET, events: ['tag.created'], format: 'distribution' });
  return { registry, listener };
}

/** Pushes a one-layer image, every request carrying `headers` (Host, forwarded headers, credentials). */
async function push(app: TestRegistry['app'], name: string, tag: string, headers: Record<string, string>): Promise<string> {
  const blob = async (content: string) => {
    const digest = sha256(content);
    const res = await request(app).post(`/v2/${name}/blobs/uploads/?digest=${digest}`).set(headers).set('Content-Type', 'application/octet-stream').send(content);
    assert.equal(res.status, 201, res.text);
    return { digest, size: Buffer.byteLength(content) };
  };
  const config = await blob(JSON.stringify({ os: 'linux', architecture: 'amd64', tag, name }));
  const layer = await blob(`layer of ${name}:${tag}`);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, ...config },
    layers: [{ mediaType: MEDIA.ociLayer, ...layer }],
  });
  const res = await request(app).put(`/v2/${name}/manifests/${tag}`).set(headers).set('Content-Type', MEDIA.ociManifest).send(manifest);
  assert.equal(res.status, 201, res.text);
  return sha256(manifest);
}

function nativeEvent(listener: Listener, tag: string) {
  return listener.received.find((r) => r.url === '/native' && r.json?.tag === tag)?.json;
}

function distributionEvent(listener: Listener, tag: string) {
  return listener.received.find((r) => r.url === '/distribution' && r.json?.events?.[0]?.target?.tag === tag)?.json.events[0];
}

async function eventsFor(listener: Listener, tag: string) {
  return waitFor(() => {
    const native = nativeEvent(listener, tag);
    const distribution = distributionEvent(listener, tag);
    return native && distribution && { native, distribution };
  }, `both deliveries of ${tag}`);
}

describe('the host an event names', () => {
  test('with the default 0.0.0.0:5000 listener, events name the host each client pushed to', async () => {
    const { registry, listener } = await setup({ http: { addr: '0.0.0.0:5000' } });
    const local = await push(registry.app, 'team/app', 'local', { Host: 'localhost:5000' });
    const named = await push(registry.app, 'team/app', 'named', { Host: 'Registry.Example.com' });

    const first = await eventsFor(listener, 'local');
    assert.equal(first.native.registry, 'localhost:5000');
    assert.equal(first.native.reference, `localhost:5000/team/app:local@${local}`);
    assert.equal(first.distribution.request.host, 'localhost:5000');
    assert.equal(first.distribution.target.url, `http://localhost:5000/v2/team/app/manifests/${local}`);
    const second = await eventsFor(listener, 'named');
    assert.equal(second.native.registry, 'registry.example.com');
    assert.equal(second.native.reference, `registry.example.com/team/app:named@${named}`);
    assert.ok(!listener.received.some((r) => r.body.includes('0.0.0.0')), 'no event names the unspecified listen address');
  });

  test('without trustProxy, X-Forwarded-Host and -Proto are ignored', async () => {
    const { registry, listener } = await setup();
    await push(registry.app, 'team/app', 'v1', { Host: 'internal:5000', 'X-Forwarded-Host': 'evil.example', 'X-Forwarded-Proto': 'https' });
    const { native, distribution } = await eventsFor(listener, 'v1');
    assert.equal(native.registry, 'internal:5000');
    assert.match(distribution.target.url, /^http:\/\/internal:5000\//);
  });

  test('behind a trusted proxy, the forwarded host and scheme of the push itself', async () => {
    const { registry, listener } = await setup({ http: { trustProxy: true } });
    const digest = await push(registry.app, 'team/app', 'v1', { 'X-Forwarded-Host': 'registry.example.com', 'X-Forwarded-Proto': 'https' });
    const { native, distribution } = await eventsFor(listener, 'v1');
    assert.equal(native.registry, 'registry.example.com');
    assert.equal(distribution.target.url, `https://registry.example.com/v2/team/app/manifests/${digest}`);
  });

  test('trustProxy naming other proxies: this peer’s forwarded headers are ignored', async () => {
    const { registry, listener } = await setup({ http: { trustProxy: ['10.0.0.0/8'] } });
    await push(registry.app, 'team/app', 'v1', { Host: 'internal:5000', 'X-Forwarded-Host': 'evil.example' });
    assert.equal((await eventsFor(listener, 'v1')).native.registry, 'internal:5000');
  });

  test('a malformed host is never named: the listen address stands in', async () => {
    const { registry, listener } = await setup({ http: { addr: '0.0.0.0:5000', trustProxy: true } });
    await push(registry.app, 'team/app', 'path', { 'X-Forwarded-Host': 'evil.example/x?y' });
    await push(registry.app, 'team/app', 'userinfo', { 'X-Forwarded-Host': 'user@evil.example' });
    await push(registry.app, 'team/app', 'port', { 'X-Forwarded-Host': 'evil.example:99999' });
    for (const tag of ['path', 'userinfo', 'port']) {
      const { native, distribution } = await eventsFor(listener, tag);
      assert.equal(native.registry, 'localhost:5000', tag);
      assert.equal(distribution.request.host, 'localhost:5000', tag);
    }
    assert.ok(!listener.received.some((r) => r.body.includes('evil.example')));
  });

  test('http.publicUrl always wins', async () => {
    const { registry, listener } = await setup({ publicUrl: 'https://public.example.org', http: { trustProxy: true } });
    await push(registry.app, 'team/app', 'v1', { Host: 'internal:5000', 'X-Forwarded-Host': 'registry.example.com' });
    const { native, distribution } = await eventsFor(listener, 'v1');
    assert.equal(native.registry, 'public.example.org');
    assert.match(distribution.target.url, /^https:\/\/public\.example\.org\/v2\//);
  });

  test('http.allowedHosts: only listed hosts are named, the first stands in for the others', async () => {
    const { registry, listener } = await setup({ http: { allowedHosts: ['registry.example.com', 'localhost:5000'] } });
    await push(registry.app, 'team/app', 'listed-port', { Host: 'localhost:5000' });
    await push(registry.app, 'team/app', 'other-port', { Host: 'localhost:6000' });
    await push(registry.app, 'team/app', 'any-port', { Host: 'registry.example.com:8443' });
    await push(registry.app, 'team/app', 'unlisted', { Host: 'evil.example' });
    assert.equal((await eventsFor(listener, 'listed-port')).native.registry, 'localhost:5000');
    assert.equal((await eventsFor(listener, 'other-port')).native.registry, 'registry.example.com');
    assert.equal((await eventsFor(listener, 'any-port')).native.registry, 'registry.example.com:8443', 'an entry without a port allows any port');
    assert.equal((await eventsFor(listener, 'unlisted')).native.registry, 'registry.example.com');
  });

  test('an anonymous PUT /v2/ with X-Forwarded-Host never reaches the events of concurrent pushes', async () => {
    const { registry, listener } = await setup({
      http: { trustProxy: true },
      auth: { mode: 'token', adminPassword: ADMIN_PASSWORD },
    });
    const token = await request(registry.app).get('/auth/token').query({ service: 'harbormaster-registry' });
    assert.equal(token.status, 200, 'anonymous tokens are free');
    const attacker = { Authorization: `Bearer ${token.body.token as string}`, 'X-Forwarded-Host': 'evil.example', 'X-Forwarded-Proto': 'https' };
    const admin = await request(registry.app)
      .get('/auth/token')
      .query(`service=harbormaster-registry&${[0, 1, 2].map((i) => `scope=repository:team/app${i}:pull,push`).join('&')}`)
      .auth('admin', ADMIN_PASSWORD);
    assert.equal(admin.status, 200, admin.text);
    const legitimate = { Authorization: `Bearer ${admin.body.token as string}`, 'X-Forwarded-Host': 'registry.example.com', 'X-Forwarded-Proto': 'https' };
    let pushing = true;
    let attacks = 0;
    const attack = (async () => {
      for (let i = 0; i < 5_000 && pushing; i++) {
        await request(registry.app).put('/v2/').set(attacker);
        attacks++;
      }
    })();
    const tags = Array.from({ length: 10 }, (_, i) => `v${i}`);
    try {
      await Promise.all(tags.map((tag, i) => push(registry.app, `team/app${i % 3}`, tag, legitimate)));
      await waitFor(() => tags.every((tag) => nativeEvent(listener, tag) && distributionEvent(listener, tag)), 'every delivery');
    } finally {
      pushing = false;
      await attack;
    }
    assert.ok(attacks > 0, 'the attacker ran alongside the pushes');
    for (const tag of tags) {
      assert.equal(nativeEvent(listener, tag).registry, 'registry.example.com', tag);
      assert.equal(distributionEvent(listener, tag).request.host, 'registry.example.com', tag);
    }
    assert.ok(!listener.received.some((r) => r.body.includes('evil.example')), 'no event names the attacker’s host');
  });
});

describe('EventOrigins', () => {
  test('changes without a request (retention, GC, CLI) name the listen address, unspecified read as localhost', () => {
    const origins = new EventOrigins({ allowedHosts: [], listenAddress: '0.0.0.0:5000', tls: false });
    assert.deepEqual(origins.of(null), { host: 'localhost:5000', scheme: 'http' });
    origins.listening('https://[::]:40123');
    assert.deepEqual(origins.of(null), { host: 'localhost:40123', scheme: 'http' });
    const bound = new EventOrigins({ allowedHosts: [], listenAddress: '10.1.2.3:0', tls: true });
    bound.listening('https://10.1.2.3:5443');
    assert.deepEqual(bound.of(null), { host: '10.1.2.3:5443', scheme: 'https' });
  });

  test('the first allowed host names them when the list is set; publicUrl above everything', () => {
    const listed = new EventOrigins({ allowedHosts: ['Registry.Example.com'], listenAddress: '0.0.0.0:5000', tls: true });
    assert.deepEqual(listed.of(null), { host: 'registry.example.com', scheme: 'https' });
    const fixed = new EventOrigins({ publicUrl: 'https://pub.example:8443/', allowedHosts: ['a.example'], listenAddress: ':5000', tls: false });
    const request = { id: 'r1', host: 'a.example', scheme: 'http' as const, addr: null, userAgent: null, method: 'PUT' };
    assert.deepEqual(fixed.of(request), { host: 'pub.example:8443', scheme: 'https' });
  });
});
