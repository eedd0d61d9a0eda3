/** Outbound safety: destination allow/deny lists (names, addresses, resolved addresses), redirects, capped bodies, timeouts. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DestinationPolicy, DestinationRefusedError, WebhookSender } from '../../src/webhooks/outbound.js';
import { startListener, type Listener } from './support.js';

const SEND = { timeoutMs: 2_000, maxResponseBytes: 64, followRedirects: false };

let listener: Listener;
const senders: WebhookSender[] = [];
before(async () => {
  listener = await startListener();
});
after(async () => {
  for (const s of senders) s.close();
  await listener.close();
});

function sender(policy: { allowHosts?: string[]; denyHosts?: string[] }, options: Partial<typeof SEND> = {}): WebhookSender {
  const created = new WebhookSender(new DestinationPolicy({ allowHosts: policy.allowHosts ?? [], denyHosts: policy.denyHosts ?? [] }), { ...SEND, ...options });
  senders.push(created);
  return created;
}

describe('destination policy', () => {
  test('host names, wildcards, addresses and CIDR ranges', () => {
    const policy = new DestinationPolicy({ allowHosts: ['hooks.example.com', '*.corp.example', '10.0.0.0/8', '::1'], denyHosts: ['10.0.0.13', 'bad.corp.example'] });
    const ok = (url: string) => {
      try {
        policy.checkUrl(new URL(url));
        return true;
      } catch (error) {
        assert.ok(error instanceof DestinationRefusedError);
        return false;
      }
    };
    assert.ok(ok('https://hooks.example.com/x'));
    assert.ok(ok('https://a.b.corp.example/x'));
    assert.ok(!ok('https://bad.corp.example/x'));
    assert.ok(ok('http://10.1.2.3:8080/'));
    assert.ok(!ok('http://10.0.0.13/'));
    assert.ok(!ok('http://11.0.0.1/'));
    assert.ok(ok('http://[::1]:9000/'));
    assert.ok(!ok('file:///etc/passwd'));
    assert.throws(() => policy.checkAddress('hooks.example.com', '10.0.0.13'), /is denied/);
    assert.throws(() => policy.checkAddress('elsewhere.example', '192.168.1.1'), /not in webhooks.allowHosts/);
    assert.doesNotThrow(() => policy.checkAddress('elsewhere.example', '::ffff:10.9.9.9'));
    assert.throws(() => new DestinationPolicy({ allowHosts: ['not a host!'], denyHosts: [] }), /invalid host rule/);
  });

  test('a denied address is refused even behind a name that resolves to it', async () => {
    const before = listener.received.length;
    const refused = await sender({ denyHosts: ['127.0.0.0/8', '::1'] }).post(`http://localhost:${listener.port}/`, {}, '{}');
    assert.equal(refused.status, null);
    assert.equal(refused.retryable, false);
    assert.match(refused.error ?? '', /localhost \((127\.0\.0\.1|::1)\) is denied/);
    const literal = await sender({ denyHosts: ['127.0.0.1'] }).post(`${listener.url}/`, {}, '{}');
    assert.match(literal.error ?? '', /is denied/);
    assert.equal(listener.received.length, before, 'nothing reached the listener');
  });

  test('an allow list by name admits the name; by range, the resolved address', async () => {
    listener.respond = () => ({ status: 204 });
    assert.equal((await sender({ allowHosts: ['localhost'] }).post(`http://localhost:${listener.port}/`, {}, '{}')).status, 204);
    assert.equal((await sender({ allowHosts: ['127.0.0.0/8'] }).post(`${listener.url}/`, {}, '{}')).status, 204);
    const outside = await sender({ allowHosts: ['10.0.0.0/8'] }).post(`http://localhost:${listener.port}/`, {}, '{}');
    assert.match(outside.error ?? '', /not in webhooks.allowHosts/);
  });
});

describe('sending', () => {
  test('redirects are not followed by default, and followed when configured', async () => {
    listener.respond = (req) => (req.url === '/start' ? { status: 302, headers: { Location: '/end' } } : { status: 200, body: 'arrived' });
    const before = listener.received.length;
    const manual = await sender({}).post(`${listener.url}/start`, {}, '{}');
    assert.equal(manual.status, 302);
    assert.equal(manual.retryable, false);
    assert.match(manual.error ?? '', /redirect \(302 to \/end\) not followed/);
    assert.equal(listener.received.length, before + 1);
    const followed = await sender({}, { followRedirects: true }).post(`${listener.url}/start`, {}, '{}');
    assert.equal(followed.status, 200);
    assert.equal(followed.responseBody, 'arrived');
  });

  test('response bodies are read only up to the cap', async () => {
    listener.respond = () => ({ status: 500, body: 'y'.repeat(1_000_000) });
    const result = await sender({}).post(`${listener.url}/`, {}, '{}');
    assert.equal(result.status, 500);
    assert.equal(result.retryable, true);
    assert.equal(result.responseBody, 'y'.repeat(64));
  });

  test('a slow receiver times out (retryable); 408 and 429 are retryable, other 4xx not', async () => {
    listener.respond = () => ({ status: 200, delayMs: 500 });
    const slow = await sender({}, { timeoutMs: 100 }).post(`${listener.url}/`, {}, '{}');
    assert.deepEqual([slow.status, slow.retryable, slow.error], [null, true, 'timed out after 100 ms']);
    for (const [status, retryable] of [[408, true], [429, true], [401, false], [410, false], [502, true]] as const) {
      listener.respond = () => ({ status, headers: status === 429 ? { 'Retry-After': '7' } : ({} as Record<string, string>) });
      const result = await sender({}).post(`${listener.url}/`, {}, '{}');
      assert.equal(result.retryable, retryable, String(status));
      if (status === 429) assert.equal(result.retryAfterSeconds, 7);
    }
  });

  test('the body and headers go out exactly as given', async () => {
    listener.respond = () => ({ status: 200 });
    await sender({}).post(`${listener.url}/exact`, { 'Content-Type': 'application/json', 'X-Extra': 'yes' }, '{"a": 1}');
    const last = listener.received.at(-1)!;
    assert.equal(last.method, 'POST');
    assert.equal(last.body, '{"a": 1}');
    assert.equal(last.headers['x-extra'], 'yes');
    assert.equal(last.headers['content-type'], 'application/json');
  });
});
