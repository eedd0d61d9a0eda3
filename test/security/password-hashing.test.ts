/**
 * A login burst does not starve file I/O (issue 11, item 3). scrypt shares libuv's thread pool
 * with file reads and writes; 200 concurrent failed logins once made /readyz time out (503)
 * and a small blob GET wait seconds. Password checks are now bounded (a few at once, a short
 * queue, 429 beyond it), so during the burst /readyz stays 200 and a pull is answered while
 * logins are still being checked. No latency is asserted (bench/ has the figures).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ADMIN, adminBearer, basic, createAuthApp, pushImageAs, type AuthTestApp } from '../auth/helpers.js';
import { waitFor } from '../webhooks/support.js';
import { send, serve, type Answer, type Served } from './support.js';

const BURST = 200;

describe('a burst of 200 failed logins', () => {
  let t: AuthTestApp;
  let served: Served;
  before(async () => {
    // Limits far above the burst, so that every login reaches the password check.
    t = await createAuthApp({ throttle: { maxFailuresPerAccount: 10_000, maxFailuresPerAddress: 10_000 } });
    served = await serve(t.app);
  });
  after(async () => {
    await served.close();
    await t.close();
  });

  it('leaves /readyz at 200 and a blob GET answered while logins are still being checked', async () => {
    const authorization = await adminBearer(t.app, ['repository:team/app:pull,push']);
    const pushed = await pushImageAs(t.app, 'team/app', 'v1', authorization);
    assert.equal(pushed.status, 201);

    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    let received = 0;
    served.server.on('request', () => received++);
    let finished = 0;
    const burst = Promise.all(
      Array.from({ length: BURST }, (_, i) =>
        send(served.port, { path: '/auth/token', headers: { Authorization: basic(`user${i}`, 'a-wrong-password') }, agent, timeoutMs: 120_000 }).finally(() => finished++),
      ),
    );
    let answers: Answer[] = [];
    try {
      // Wait until most of the burst has reached the server, then ask.
      await waitFor(() => received >= BURST / 2, 'the burst to arrive', 30_000);
      const [ready, blob] = await Promise.all([
        send(served.port, { path: '/readyz', timeoutMs: 60_000 }),
        send(served.port, { path: `/v2/team/app/blobs/${pushed.layerDigest}`, headers: { Authorization: authorization }, timeoutMs: 60_000 }).then((answer) => ({
          answer,
          loginsLeft: BURST - finished,
        })),
      ]);
      assert.equal(ready.status, 200, `/readyz during the burst: ${ready.body}`);
      assert.deepEqual(JSON.parse(ready.body).checks, { metadata: 'ok', storage: 'ok' });
      assert.equal(blob.answer.status, 200);
      assert.equal(blob.answer.body, 'layer of team/app:v1');
      assert.ok(blob.loginsLeft > 0, 'the pull was answered before the burst was over');
    } finally {
      answers = await burst;
      agent.destroy();
    }
    const statuses = answers.map((answer) => answer.status);
    assert.ok(statuses.every((status) => status === 401 || status === 429), `statuses: ${[...new Set(statuses)].join(',')}`);
    const busy = answers.filter((answer) => answer.status === 429);
    assert.ok(busy.length > 0, 'beyond the queue, logins are refused at once');
    assert.ok(busy.every((answer) => answer.headers['retry-after'] === '1'));
  });

  it('the right password still works once the burst is over', async () => {
    const res = await send(served.port, { path: '/auth/token', headers: { Authorization: basic(ADMIN.username, ADMIN.password) } });
    assert.equal(res.status, 200);
  });
});
