/**
 * Shared contract 2 and the formats the agent reads: a delivery is taken when its
 * X-Registry-Signature-Timestamp verifies with a fresh t, or when a body signature
 * (X-Registry-Signature-256, X-Hub-Signature-256, X-Signature) verifies and the body's sentAt is
 * fresh. Distribution envelopes and Docker Hub bodies carry nothing outside their schema, so only
 * the first way fits them.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { deliver, DIGEST, distributionBody, dockerHubBody, event, lines, recorder, runCleanups, startInProcess, tempDir, waitFor } from './support.js';

afterEach(runCleanups);

const now = () => Math.floor(Date.now() / 1000);

async function agentRecording(dir: string) {
  const out = path.join(dir, 'deploys.txt');
  const agent = await startInProcess(dir, [{ name: 'web', repositories: ['**'], events: ['tag.created', 'tag.updated'], command: recorder(out), timeoutSeconds: 30 }]);
  return { agent, out };
}

describe('delivery authentication (shared contract 2)', () => {
  test('a distribution envelope without sentAt, signed in X-Registry-Signature-Timestamp, deploys request.host/target', async () => {
    const dir = await tempDir();
    const { agent, out } = await agentRecording(dir);
    const payload = event({ repository: 'team/app', tag: '2.1.0' });
    const body = distributionBody(payload);
    assert.doesNotMatch(body, /sentAt/);
    const answer = await deliver(agent.endpoint, payload, { body, signatureHeader: 'X-Registry-Signature-256', timestamp: true });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const [line] = await waitFor(async () => (await lines(out)).length > 0 && lines(out), 'the deploy');
    assert.equal(line, `registry.example.com:5000/team/app:2.1.0@${DIGEST}|team/app|2.1.0|${DIGEST}|tag.created|{"events":[{"id":"${payload.id.slice(0, 2)}`);
    // With the body signature alone there is no fresh timestamp to trust.
    const unstamped = await deliver(agent.endpoint, event(), { body: distributionBody(event()) });
    assert.equal(unstamped.status, 401);
    assert.match(unstamped.body.error, /no signed timestamp/);
  });

  test('either way suffices: a fresh timestamp signature, or a body signature in any of three headers with a fresh sentAt', async () => {
    const dir = await tempDir();
    const { agent, out } = await agentRecording(dir);
    const stale = new Date(Date.now() - 10 * 60_000);
    const accepted = [
      ['timestamp only', { signatureHeader: null, timestamp: true, body: JSON.stringify({ ...event(), sentAt: undefined }) }],
      ['X-Registry-Signature-256', { signatureHeader: 'X-Registry-Signature-256' }],
      ['X-Hub-Signature-256', { signatureHeader: 'X-Hub-Signature-256' }],
      ['X-Signature', { signatureHeader: 'X-Signature' }],
      ['stale timestamp, fresh sentAt', { timestamp: now() - 600 }],
      ['stale sentAt, fresh timestamp', { sentAt: stale, timestamp: true }],
    ] as const;
    for (const [index, [what, options]] of accepted.entries()) {
      // A repository each: deploys of one repository coalesce (newest wins), and every one must run.
      const payload = event({ repository: `team/app-${index}`, tag: what.replace(/[^A-Za-z0-9]+/g, '-') });
      const body = 'body' in options ? JSON.stringify({ ...payload, sentAt: undefined }) : undefined;
      const answer = await deliver(agent.endpoint, payload, { ...options, ...(body ? { body } : {}) });
      assert.equal(answer.status, 202, `${what}: ${JSON.stringify(answer.body)}`);
    }
    await waitFor(async () => (await lines(out)).length === accepted.length, 'every deploy');
  });

  test('refused: stale or future t, a tampered body, a wrong secret, a timestamp signature moved to another body', async () => {
    const dir = await tempDir();
    const { agent, out } = await agentRecording(dir);
    const unsignedBody = (payload = event()) => JSON.stringify({ ...payload, sentAt: undefined });
    const cases: Array<[string, Parameters<typeof deliver>[2], RegExp]> = [
      ['stale t', { body: unsignedBody(), signatureHeader: null, timestamp: now() - 600 }, /outside the allowed 300 s/],
      ['future t', { body: unsignedBody(), signatureHeader: null, timestamp: now() + 600 }, /outside the allowed 300 s/],
      ['tampered', { body: unsignedBody(), signatureHeader: null, timestamp: true, tamper: (b) => b.replace('"app"', '"evil"') }, /bad or missing signature/],
      ['wrong secret', { body: unsignedBody(), signatureHeader: null, timestamp: true, secret: 'somebody-elses-secret' }, /bad or missing signature/],
      ['stale sentAt, no timestamp', { sentAt: new Date(Date.now() - 600_000) }, /outside the allowed 300 s/],
      ['no signature at all', { signatureHeader: null }, /bad or missing signature/],
    ];
    for (const [what, options, error] of cases) {
      const answer = await deliver(agent.endpoint, event(), options);
      assert.equal(answer.status, 401, what);
      assert.match(answer.body.error, error, what);
    }
    // A captured timestamp header does not vouch for any other body.
    const captured = await fetch(agent.endpoint, { method: 'POST', body: unsignedBody() });
    assert.equal(captured.status, 401);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await lines(out), [], 'nothing ran');
  });
});

describe('formats', () => {
  test('Docker Hub: repository.repo_name and push_data.tag, the id from X-Registry-Event-Id, the host from repo_name', async () => {
    const dir = await tempDir();
    const { agent, out } = await agentRecording(dir);
    const payload = event({ repository: 'team/api', tag: 'v3' });
    const body = dockerHubBody(payload, 'https://registry.example.com/api/v1/webhooks/hub/deliveries/5/deploys');
    const answer = await deliver(agent.endpoint, payload, { body, signatureHeader: 'X-Hub-Signature-256', timestamp: true });
    assert.deepEqual([answer.status, answer.body.id], [202, payload.id]);
    const [line] = await waitFor(async () => (await lines(out)).length > 0 && lines(out), 'the deploy');
    assert.equal(line, `registry.example.com:5000/team/api:v3@${payload.digest}|team/api|v3|${payload.digest}|tag.created|{"callback_url":"htt`);
    assert.equal((await deliver(agent.endpoint, payload, { body, signatureHeader: null, timestamp: true })).body.duplicate, true);
    const withoutId = await deliver(agent.endpoint, event(), { body, signatureHeader: null, timestamp: true, headers: { 'X-Registry-Event-Id': '' } });
    assert.deepEqual([withoutId.status, withoutId.body.error], [400, 'event has no id']);
  });

  test('native and CloudEvents bodies with their sentAt still work', async () => {
    const dir = await tempDir();
    const { agent, out } = await agentRecording(dir);
    assert.equal((await deliver(agent.endpoint, event({ tag: 'native' }))).status, 202);
    assert.equal((await deliver(agent.endpoint, event({ tag: 'cloudevents' }), { format: 'cloudevents' })).status, 202);
    await waitFor(async () => (await lines(out)).length === 2, 'two deploys');
    assert.deepEqual((await lines(out)).map((l) => l.split('|')[2]).sort(), ['cloudevents', 'native']);
  });
});
