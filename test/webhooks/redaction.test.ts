/**
 * Issue 11.12: custom header values and URL credentials or query secrets are write-only: the
 * API, the CLI, delivery logs (lastError) and server logs show them redacted, while deliveries
 * still carry them; sending the redacted values back keeps the stored ones.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import request from 'supertest';
import { pushImage } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { cleanupAfterEach, createTestRegistry, startListener, waitFor } from './support.js';

const SECRETS = ['pa55word', 'qs-secret', 'hdr-secret', 'tok-secret'];
const cleanups = cleanupAfterEach();

function assertNoSecret(text: string, where: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${where} shows ${secret}: ${text.slice(0, 400)}`);
}

describe('subscription secrets besides the HMAC key', () => {
  test('are shown redacted everywhere, and still sent', async () => {
    let logged = '';
    const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => ((logged += chunk.toString()), done()) });
    const registry = await createTestRegistry({ logger: pino({ level: 'debug' }, sink) });
    cleanups.push(() => registry.dispose());
    const listener = await startListener();
    cleanups.push(() => listener.close());
    const closed = await startListener();
    await closed.close();
    const headers = { 'X-Webhook-Secret': 'hdr-secret', Authorization: 'Bearer tok-secret' };
    const open = `http://user:pa55word@127.0.0.1:${listener.port}/hook?token=qs-secret&type=cloudevents`;
    const created = await request(registry.app).post('/api/v1/webhooks').send({ id: 'open', url: open, headers, events: ['tag.created'] });
    assert.equal(created.status, 201);
    assertNoSecret(JSON.stringify(created.body), 'the create response');
    assert.equal(created.body.url, `http://***@127.0.0.1:${listener.port}/hook?token=***&type=***`);
    assert.deepEqual(created.body.headers, { 'X-Webhook-Secret': '***', Authorization: '***' });
    const failing = await request(registry.app)
      .post('/api/v1/webhooks')
      .send({ id: 'closed', url: `http://user:pa55word@127.0.0.1:${closed.port}/hook?token=qs-secret`, headers, events: ['tag.created'] });
    assert.equal(failing.status, 201);

    await pushImage(registry.app, 'team/app', '1.0.0');
    const delivered = await waitFor(() => listener.received[0], 'the delivery');
    assert.equal(delivered.headers['x-webhook-secret'], 'hdr-secret', 'the receiver gets the real values');
    assert.equal(delivered.headers.authorization, 'Bearer tok-secret');
    assert.equal(delivered.url, '/hook?token=qs-secret&type=cloudevents');
    const [failed] = await waitFor(async () => {
      const list = await request(registry.app).get('/api/v1/webhooks/closed/deliveries');
      return list.body.deliveries[0]?.lastError && list.body.deliveries;
    }, 'a failed attempt');
    assert.match(failed.lastError, /ECONNREFUSED/);

    for (const path of ['/api/v1/webhooks', '/api/v1/webhooks/open', '/api/v1/webhooks/closed', '/api/v1/webhooks/closed/deliveries', `/api/v1/webhooks/closed/deliveries/${failed.id}`]) {
      const res = await request(registry.app).get(path);
      assert.equal(res.status, 200, path);
      assertNoSecret(res.text, path);
    }
    const ping = await request(registry.app).post('/api/v1/webhooks/closed/ping');
    assertNoSecret(ping.text, 'a ping reply');
    for (const args of [['webhook', 'list'], ['webhook', 'show', 'open'], ['webhook', 'deliveries', 'closed'], ['webhook', 'delivery', 'closed', String(failed.id)]]) {
      const cli = await runCli(registry.root, args);
      assert.equal(cli.code, 0, `${args.join(' ')}: ${cli.stderr}`);
      assertNoSecret(cli.stdout + cli.stderr, `registry ${args.join(' ')}`);
    }

    // Sending back what the API showed changes nothing secret.
    const shown = (await request(registry.app).get('/api/v1/webhooks/open')).body;
    const patched = await request(registry.app).patch('/api/v1/webhooks/open').send({ url: shown.url, headers: { ...shown.headers, 'X-Extra': 'new' } });
    assert.equal(patched.status, 200);
    await request(registry.app).post('/api/v1/webhooks/open/ping');
    const pinged = await waitFor(() => listener.received.find((r) => r.headers['x-registry-event'] === 'ping'), 'the ping');
    assert.deepEqual([pinged.url, pinged.headers['x-webhook-secret'], pinged.headers.authorization, pinged.headers['x-extra']], ['/hook?token=qs-secret&type=cloudevents', 'hdr-secret', 'Bearer tok-secret', 'new']);

    await waitFor(() => logged.includes('webhook delivery failed'), 'the failure logged');
    assertNoSecret(logged, 'the server log');
  });
});
