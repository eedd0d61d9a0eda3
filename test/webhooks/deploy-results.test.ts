/**
 * Shared contracts 1 and 2, registry side: every delivery names its deploy callback
 * (X-Registry-Deploy-Callback) and carries a timestamped signature outside the body
 * (X-Registry-Signature-Timestamp); receivers post signed deploy reports there, which the
 * registry checks, keeps (latest per delivery and agent, with a count), sums up as `deploy`,
 * shows in the API and CLI, and counts in metrics.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import request from 'supertest';
import { pushImage } from '../helpers/app.js';
import { describeDeliveryDetail } from '../../src/webhooks/cli-support.js';
import { DEPLOY_CALLBACK_HEADER, sign, TIMESTAMP_SIGNATURE_HEADER, verifyTimestamped } from '../../src/webhooks/signing.js';
import { cleanupAfterEach, registryAndListener, waitFor, type Listener, type TestRegistry } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const cleanups = cleanupAfterEach();

interface Pushed {
  registry: TestRegistry;
  listener: Listener;
  subscriptionId: string;
  callback: URL;
  eventId: string;
  deliveryId: number;
}

/** A registry with one subscription, after one push whose delivery arrived. */
async function pushed(format: 'native' | 'distribution' = 'native'): Promise<Pushed> {
  const { registry, listener } = await registryAndListener(cleanups);
  const subscription = await registry.webhooks.createSubscription({ url: `${listener.url}/hook`, secret: SECRET, events: ['tag.created'], format });
  await pushImage(registry.app, 'team/app', '1.0.0');
  const delivery = await waitFor(() => listener.received[0], 'the delivery');
  const callback = new URL(delivery.headers[DEPLOY_CALLBACK_HEADER.toLowerCase()] as string);
  return {
    registry,
    listener,
    subscriptionId: subscription.id,
    callback,
    eventId: delivery.headers['x-registry-event-id'] as string,
    deliveryId: Number(delivery.headers['x-registry-delivery']),
  };
}

function report(eventId: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  const now = new Date();
  return {
    agent: 'host-1',
    eventId,
    status: 'succeeded',
    attempt: 1,
    exitCode: 0,
    durationMs: 1234,
    output: 'pulled\nstarted',
    startedAt: new Date(now.getTime() - 1234).toISOString(),
    finishedAt: now.toISOString(),
    sentAt: now.toISOString(),
    ...fields,
  };
}

/** Posts a report body to the delivery's callback path, signed unless `signature` says otherwise. */
function post(setup: Pushed, body: unknown, signature?: string | null) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const req = request(setup.registry.app).post(setup.callback.pathname).set('Content-Type', 'application/json');
  if (signature !== null) req.set('X-Registry-Signature-256', signature ?? sign(SECRET, raw));
  return req.send(raw);
}

async function shown(setup: Pushed): Promise<any> {
  const res = await request(setup.registry.app).get(`/api/v1/webhooks/${setup.subscriptionId}/deliveries/${setup.deliveryId}`);
  assert.equal(res.status, 200);
  return res.body;
}

describe('what every delivery carries', () => {
  test('the deploy callback names the host the event names; the timestamped signature covers "<t>.<body>"', async () => {
    for (const format of ['native', 'distribution'] as const) {
      const setup = await pushed(format);
      const [delivery] = setup.listener.received;
      assert.match(setup.callback.href, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/api/v1/webhooks/${setup.subscriptionId}/deliveries/${setup.deliveryId}/deploys$`));
      const registryHost = format === 'native' ? delivery!.json.registry : delivery!.json.events[0].request.host;
      assert.equal(setup.callback.host, registryHost, format);
      const header = delivery!.headers[TIMESTAMP_SIGNATURE_HEADER.toLowerCase()] as string;
      assert.match(header, /^t=\d+,sha256=[0-9a-f]{64}$/);
      const window = { maxAgeSeconds: 300, maxFutureSeconds: 60 };
      assert.ok(verifyTimestamped(SECRET, delivery!.body, header, Date.now(), window), `${format}: verifies`);
      assert.equal(verifyTimestamped(SECRET, `${delivery!.body} `, header, Date.now(), window), null, 'another body does not');
      assert.equal(verifyTimestamped('another-secret-entirely', delivery!.body, header, Date.now(), window), null);
      assert.equal(verifyTimestamped(SECRET, delivery!.body, header, Date.now() + 301_000, window), null, 'a stale one does not');
      const t = Number(/^t=(\d+)/.exec(header)![1]);
      assert.ok(Math.abs(t * 1000 - Date.now()) < 60_000);
    }
  });
});

describe('deploy reports', () => {
  test('are recorded per agent; the delivery shows deploy: running, then failed when any agent failed', async () => {
    const setup = await pushed();
    assert.equal((await shown(setup)).deploy, null, 'no report yet');
    assert.equal((await post(setup, report(setup.eventId, { status: 'running', exitCode: null, durationMs: null, finishedAt: null, output: null }))).status, 204);
    let delivery = await shown(setup);
    assert.equal(delivery.deploy, 'running');
    assert.deepEqual(delivery.deploys.map((d: any) => [d.agent, d.status, d.reports]), [['host-1', 'running', 1]]);

    assert.equal((await post(setup, report(setup.eventId))).status, 204);
    delivery = await shown(setup);
    assert.equal(delivery.deploy, 'succeeded');
    const [first] = delivery.deploys;
    assert.equal(first.exitCode, 0);
    assert.equal(first.durationMs, 1234);
    assert.equal(first.output, 'pulled\nstarted');
    assert.equal(first.reports, 2);
    for (const field of ['startedAt', 'finishedAt', 'reportedAt']) assert.ok(!Number.isNaN(Date.parse(first[field])), field);

    const failed = report(setup.eventId, { agent: 'host-4', status: 'failed', exitCode: 3, attempt: 2, output: 'error: no space left' });
    assert.equal((await post(setup, failed)).status, 204);
    delivery = await shown(setup);
    assert.equal(delivery.deploy, 'failed');
    assert.deepEqual(delivery.deploys.map((d: any) => [d.agent, d.status, d.attempt, d.exitCode]), [
      ['host-1', 'succeeded', 1, 0],
      ['host-4', 'failed', 2, 3],
    ]);

    const listed = await request(setup.registry.app).get(`/api/v1/webhooks/${setup.subscriptionId}/deliveries`);
    assert.equal(listed.body.deliveries.find((d: any) => d.id === setup.deliveryId).deploy, 'failed', 'the log shows it too');
    const lines = describeDeliveryDetail(await setup.registry.webhooks.getDelivery(setup.subscriptionId, setup.deliveryId));
    assert.match(lines[0]!, /deploy=failed/);
    assert.equal(lines[1], 'deploy: failed');
    assert.ok(lines.some((line) => /host-4 {2}failed {2}attempt=2 {2}exit=3/.test(line)));
    assert.ok(lines.some((line) => line.includes('| error: no space left')));

    const metrics = await request(setup.registry.app).get('/metrics');
    assert.match(metrics.text, /registry_webhook_deploys\{status="failed"\} 1/);
    assert.match(metrics.text, /registry_webhook_deploys\{status="succeeded"\} 1/);
    assert.match(metrics.text, /registry_webhook_deploys\{status="running"\} 0/);
  });

  test('a report sent before the stored one does not replace it, but is counted', async () => {
    const setup = await pushed();
    const later = new Date();
    const earlier = new Date(later.getTime() - 10_000);
    await post(setup, report(setup.eventId, { status: 'succeeded', sentAt: later.toISOString() }));
    assert.equal((await post(setup, report(setup.eventId, { status: 'running', sentAt: earlier.toISOString(), finishedAt: null }))).status, 204);
    const [only] = (await shown(setup)).deploys;
    assert.deepEqual([only.status, only.reports], ['succeeded', 2]);
  });

  test('refusals: signature 401, stale or future sentAt 401, bad body 400, unknown or mismatched 404', async () => {
    const setup = await pushed();
    const body = report(setup.eventId);
    const expectError = (res: request.Response, status: number, code: string) => {
      assert.equal(res.status, status, res.text);
      assert.equal(res.body.errors[0].code, code);
      assert.equal(typeof res.body.errors[0].message, 'string');
    };
    expectError(await post(setup, body, null), 401, 'UNAUTHORIZED');
    expectError(await post(setup, body, sign('another-secret-entirely', JSON.stringify(body))), 401, 'UNAUTHORIZED');
    expectError(await post(setup, body, 'sha256=00'), 401, 'UNAUTHORIZED');
    expectError(await post(setup, report(setup.eventId, { sentAt: new Date(Date.now() - 6 * 60_000).toISOString() })), 401, 'UNAUTHORIZED');
    expectError(await post(setup, report(setup.eventId, { sentAt: new Date(Date.now() + 2 * 60_000).toISOString() })), 401, 'UNAUTHORIZED');
    expectError(await post(setup, '{"agent":'), 400, 'WEBHOOK_INVALID');
    expectError(await post(setup, report(setup.eventId, { agent: 'host 4' })), 400, 'WEBHOOK_INVALID');
    expectError(await post(setup, report(setup.eventId, { status: 'exploded' })), 400, 'WEBHOOK_INVALID');
    expectError(await post(setup, report(setup.eventId, { attempt: 0 })), 400, 'WEBHOOK_INVALID');
    expectError(await post(setup, report(setup.eventId, { output: 'x'.repeat(4097) })), 400, 'WEBHOOK_INVALID');
    expectError(await post(setup, report(setup.eventId, { startedAt: 'yesterday' })), 400, 'WEBHOOK_INVALID');
    expectError(await post(setup, report('another-event-id')), 404, 'WEBHOOK_UNKNOWN');
    const raw = JSON.stringify(body);
    const elsewhere = (path: string) => request(setup.registry.app).post(path).set('X-Registry-Signature-256', sign(SECRET, raw)).send(raw);
    expectError(await elsewhere(`/api/v1/webhooks/${setup.subscriptionId}/deliveries/999999/deploys`), 404, 'WEBHOOK_UNKNOWN');
    expectError(await elsewhere(`/api/v1/webhooks/wh_unknown/deliveries/${setup.deliveryId}/deploys`), 404, 'WEBHOOK_UNKNOWN');
    assert.deepEqual((await shown(setup)).deploys, [], 'nothing refused was recorded');
  });

  test('a redelivery of a delivery whose deploy failed goes out again with the same event id and callback', async () => {
    const setup = await pushed();
    await post(setup, report(setup.eventId, { status: 'failed', exitCode: 1 }));
    const res = await request(setup.registry.app).post(`/api/v1/webhooks/${setup.subscriptionId}/deliveries/${setup.deliveryId}/redeliver`);
    assert.equal(res.status, 202);
    const again = await waitFor(() => setup.listener.received[1], 'the redelivery');
    assert.equal(again.headers['x-registry-event-id'], setup.eventId);
    assert.equal(again.headers['x-registry-attempt'], '2');
    assert.equal(again.headers[DEPLOY_CALLBACK_HEADER.toLowerCase()], setup.callback.href);
    assert.equal((await post(setup, report(setup.eventId, { attempt: 2 }))).status, 204);
    assert.equal((await shown(setup)).deploy, 'succeeded', 'the re-run replaces the failed report');
  });
});
