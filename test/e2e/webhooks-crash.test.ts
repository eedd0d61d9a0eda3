/**
 * Issue 16.7: the registry process SIGKILLed while an attempt is in flight. The attempt was
 * counted and logged before it was sent, so after a restart the retry goes out as attempt 2
 * and the log keeps both: the first without an outcome, the second with the receiver's answer.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pushImage, type App } from '../helpers/app.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { NO_OUTCOME_ERROR } from '../../src/webhooks/store.js';
import { startListener, waitFor, type Listener } from '../webhooks/support.js';

const SECRET = 'e2e-webhook-secret-0123456789';
const ENV = { REGISTRY_WEBHOOKS_REQUEST_TIMEOUT_MS: '1000', REGISTRY_WEBHOOKS_POLL_INTERVAL_MS: '50' };

describe('a registry killed during an attempt', () => {
  const stops: Array<() => Promise<unknown>> = [];
  after(async () => {
    while (stops.length) await stops.pop()!();
  });

  test('retries it as the next attempt, and the log tells both', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'webhooks-crash-'));
    stops.push(() => fs.rm(root, { recursive: true, force: true }));
    const listener: Listener = await startListener();
    stops.push(() => listener.close());
    // The first request is never answered: the registry dies while it waits.
    listener.respond = (req) => (listener.received.indexOf(req) === 0 ? { status: 200, delayMs: 60_000 } : { status: 200, body: 'deployed' });

    let server: ServerProcess = await startServer({ root, env: ENV });
    stops.push(() => server.kill());
    const created = await fetch(`${server.url}/api/v1/webhooks`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'deploy', url: `${listener.url}/hook`, secret: SECRET, events: ['tag.created'] }),
    });
    assert.equal(created.status, 201);
    await pushImage(server.url as unknown as App, 'team/app', '1.0.0');
    const first = await waitFor(() => listener.received[0], 'the first attempt');
    assert.equal(first.headers['x-registry-attempt'], '1');
    await server.kill();

    server = await startServer({ root, env: ENV });
    stops.push(() => server.kill());
    const second = await waitFor(() => listener.received[1], 'the retry after the restart', 20_000);
    assert.equal(second.headers['x-registry-attempt'], '2', 'the attempt cut short was counted');
    assert.equal(second.headers['x-registry-event-id'], first.headers['x-registry-event-id']);

    const deliveryId = first.headers['x-registry-delivery'] as string;
    const detail = await waitFor(async () => {
      const res = await fetch(`${server.url}/api/v1/webhooks/deploy/deliveries/${deliveryId}`);
      const body = (await res.json()) as { state: string; attempts: number; log: Array<{ attempt: number; status: number | null; error: string | null; responseBody: string | null }> };
      return body.state === 'delivered' && body;
    }, 'the delivery recorded as delivered');
    assert.equal(detail.attempts, 2);
    assert.deepEqual(
      detail.log.map((a) => [a.attempt, a.status, a.error, a.responseBody]),
      [
        [1, null, NO_OUTCOME_ERROR, null],
        [2, 200, null, 'deployed'],
      ],
    );
    assert.equal(listener.received.length, 2, 'sent once per attempt');
  });
});
