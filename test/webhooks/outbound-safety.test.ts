/**
 * Issue 11.4 and 11.5, against our own listeners on 127.0.0.0/8 and ::1 with a deny list that
 * names them: unspecified and IPv4-embedding IPv6 addresses are judged as what they reach, and
 * every redirect hop is checked before connecting; a redirect to another origin is refused.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import request from 'supertest';
import { DestinationPolicy, WebhookSender } from '../../src/webhooks/outbound.js';
import { sign } from '../../src/webhooks/signing.js';
import { cleanupAfterEach, createTestRegistry, startListener, type Listener } from './support.js';

const SEND = { timeoutMs: 2_000, maxResponseBytes: 256, followRedirects: true };
const SECRET = 'a-test-secret-of-some-length';

let allowed: Listener; // 127.0.0.1: the subscription's endpoint
let other: Listener; // 127.0.0.1, another port: another origin, allowed by the lists
let denied: Listener; // 127.0.0.3: denied
let denied6: Listener; // ::1: denied
const senders: WebhookSender[] = [];
const cleanups = cleanupAfterEach();

before(async () => {
  [allowed, other, denied, denied6] = await Promise.all([startListener(), startListener(), startListener(0, '127.0.0.3'), startListener(0, '::1')]);
  denied.respond = () => ({ status: 200, body: 'secret internal answer' });
});
after(async () => {
  for (const sender of senders) sender.close();
  await Promise.all([allowed, other, denied, denied6].map((l) => l.close()));
});

function sender(denyHosts: string[], options: Partial<typeof SEND> = {}): WebhookSender {
  const created = new WebhookSender(new DestinationPolicy({ allowHosts: [], denyHosts }), { ...SEND, ...options });
  senders.push(created);
  return created;
}

describe('addresses judged as what they reach', () => {
  test('0.0.0.0, [::] and IPv4-in-IPv6 forms do not get around a deny list naming loopback', async () => {
    const s = sender(['127.0.0.0/8', '::1']);
    const port = denied.port;
    const targets = [
      `http://0.0.0.0:${allowed.port}/`,
      `http://[::]:${denied6.port}/`,
      `http://[::ffff:127.0.0.3]:${port}/`,
      `http://[::ffff:7f00:3]:${port}/`,
      `http://[::127.0.0.3]:${port}/`,
      `http://[64:ff9b::127.0.0.3]:${port}/`,
      `http://[2002:7f00:3::1]:${port}/`,
      `http://[::ffff:0.0.0.0]:${allowed.port}/`,
    ];
    for (const url of targets) {
      const result = await s.post(url, {}, '{}');
      assert.equal(result.status, null, url);
      assert.match(result.error ?? '', /is denied/, url);
      assert.equal(result.retryable, false, url);
    }
    assert.equal(allowed.received.length + denied.received.length + denied6.received.length, 0, 'nothing reached any listener');
    const unrelated = sender(['10.0.0.0/8']);
    assert.equal((await unrelated.post(`http://[::ffff:127.0.0.3]:${port}/mapped`, {}, '{}')).status, 200, 'judged as 127.0.0.3, which that list allows');
  });
});

describe('redirects', () => {
  beforeEach(() => {
    for (const listener of [allowed, other, denied, denied6]) listener.received.length = 0;
  });

  test('each hop is checked before connecting: an IP-literal Location to a denied listener is refused', async () => {
    const s = sender(['127.0.0.3', '::1']);
    for (const location of [`http://127.0.0.3:${denied.port}/internal`, `http://[::1]:${denied6.port}/internal`, `http://0.0.0.0:${denied6.port}/`]) {
      allowed.respond = () => ({ status: 307, headers: { Location: location } });
      const result = await s.post(`${allowed.url}/hook`, { 'X-Registry-Signature-256': sign(SECRET, '{}') }, '{}');
      assert.equal(result.retryable, false, location);
      assert.match(result.error ?? '', /is denied|another origin/, location);
      assert.doesNotMatch(result.responseBody ?? '', /secret internal answer/);
    }
    assert.equal(denied.received.length + denied6.received.length, 0, 'no denied listener was contacted');
  });

  test('a redirect to another origin is refused: the signed body and custom headers never leave for it', async () => {
    const s = sender([]);
    allowed.respond = () => ({ status: 307, headers: { Location: `${other.url}/elsewhere?token=abc` } });
    const result = await s.post(`${allowed.url}/hook`, { 'X-Webhook-Secret': 'custom-secret', 'X-Registry-Signature-256': sign(SECRET, '{"a":1}') }, '{"a":1}');
    assert.equal(result.status, 307);
    assert.match(result.error ?? '', /redirect to another origin refused \(307 to http:\/\/127\.0\.0\.1:\d+\/elsewhere\?token=\*\*\*\)/);
    assert.equal(other.received.length, 0);
  });

  test('within the origin, the same POST follows (at most 5 hops); with followRedirects off, none', async () => {
    const s = sender([]);
    allowed.respond = (req) => (req.url === '/hook' ? { status: 308, headers: { Location: '/moved' } } : { status: 200, body: 'ok' });
    const result = await s.post(`${allowed.url}/hook`, { 'X-Webhook-Secret': 'custom-secret' }, '{"a":1}');
    assert.equal(result.status, 200);
    const [first, moved] = allowed.received;
    assert.deepEqual([first!.url, moved!.url, moved!.method, moved!.body, moved!.headers['x-webhook-secret']], ['/hook', '/moved', 'POST', '{"a":1}', 'custom-secret']);

    allowed.respond = () => ({ status: 302, headers: { Location: '/again' } });
    assert.match((await s.post(`${allowed.url}/loop`, {}, '{}')).error ?? '', /more than 5 redirects/);
    const off = sender([], { followRedirects: false });
    assert.match((await off.post(`${allowed.url}/x`, {}, '{}')).error ?? '', /redirect \(302 to \/again\) not followed/);
  });

  test('a ping through an allowed host never shows a denied listener’s answer', async () => {
    const registry = await createTestRegistry({ webhooks: { followRedirects: true, denyHosts: ['127.0.0.3', '::1'] } });
    cleanups.push(() => registry.dispose());
    allowed.respond = () => ({ status: 307, headers: { Location: `http://127.0.0.3:${denied.port}/` } });
    const sub = await registry.webhooks.createSubscription({ url: `${allowed.url}/hook`, secret: SECRET });
    const ping = await request(registry.app).post(`/api/v1/webhooks/${sub.id}/ping`);
    assert.equal(ping.status, 502);
    assert.doesNotMatch(JSON.stringify(ping.body), /secret internal answer/);
    assert.equal(denied.received.length, 0);
  });
});
