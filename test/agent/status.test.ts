/**
 * Issue 16.4: the agent's status view of recent deploys, behind a bearer token of its own, and
 * its health endpoint for probes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { deliver, event, runCleanups, startInProcess, tempDir, waitFor } from './support.js';

afterEach(runCleanups);

const TOKEN = 'status-token-0123456789abcdef';

describe('status view', () => {
  test('lists recent deploys newest first, with their outcome, for the bearer token only', async () => {
    const dir = await tempDir();
    const agent = await startInProcess(dir, [{ name: 'web', repositories: ['**'], command: 'echo "deploying $IMAGE_TAG"; [ "$IMAGE_TAG" != bad ]', timeoutSeconds: 30, retry: { attempts: 1 } }], {
      name: 'host-4',
      status: { token: TOKEN },
    });
    const good = event({ repository: 'team/app', tag: '1.0.0' });
    const bad = event({ repository: 'team/other', tag: 'bad' });
    await deliver(agent.endpoint, good);
    await waitFor(() => agent.state.outcome(good.id) === 'succeeded', 'the first deploy');
    await deliver(agent.endpoint, bad);
    await waitFor(() => agent.state.outcome(bad.id) === 'failed', 'the second deploy');

    const view = (headers: Record<string, string> = {}, query = '') => fetch(`${agent.url}/status${query}`, { headers });
    const attempts: Array<Record<string, string>> = [{}, { Authorization: 'Bearer wrong-token-0123456789' }, { Authorization: `Basic ${TOKEN}` }];
    for (const headers of attempts) {
      const refused = await view(headers);
      assert.equal(refused.status, 401, JSON.stringify(headers));
      assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="registry-agent"');
    }
    const answer = await view({ Authorization: `Bearer ${TOKEN}` });
    assert.equal(answer.status, 200);
    const body = (await answer.json()) as any;
    assert.equal(body.agent, 'host-4');
    assert.deepEqual(body.counts, { succeeded: 1, failed: 1 });
    assert.deepEqual(
      body.deploys.map((d: any) => [d.eventId, d.target, d.repository, d.tag, d.status, d.attempt, d.exitCode]),
      [
        [bad.id, 'web', 'team/other', 'bad', 'failed', 1, 1],
        [good.id, 'web', 'team/app', '1.0.0', 'succeeded', 1, 0],
      ],
    );
    assert.equal(body.deploys[1].output, 'deploying 1.0.0\n');
    assert.equal(body.deploys[1].reference, good.reference);
    assert.ok(Date.parse(body.deploys[1].finishedAt) >= Date.parse(body.deploys[1].startedAt));
    const limited = (await (await view({ Authorization: `Bearer ${TOKEN}` }, '?limit=1')).json()) as any;
    assert.deepEqual(limited.deploys.map((d: any) => d.eventId), [bad.id]);
    assert.equal((await view({ Authorization: `Bearer ${TOKEN}` }, '?limit=0')).status, 400);
    assert.equal((await fetch(`${agent.url}/status`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } })).status, 405);
  });

  test('is off without a token; /healthz answers anyone', async () => {
    const dir = await tempDir();
    const agent = await startInProcess(dir, [{ name: 'web', command: 'true' }]);
    const off = await fetch(`${agent.url}/status`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(off.status, 404);
    assert.match(((await off.json()) as any).error, /status view is off/);
    const health = await fetch(`${agent.url}/healthz`);
    assert.deepEqual([health.status, await health.json()], [200, { ok: true }]);
  });

  test('the token may come from a file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'token');
    await fs.writeFile(file, `${TOKEN}\n`);
    const agent = await startInProcess(dir, [{ name: 'web', command: 'true' }], { status: { tokenFile: file, path: '/deploys' } });
    assert.equal((await fetch(`${agent.url}/deploys`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status, 200);
  });
});
