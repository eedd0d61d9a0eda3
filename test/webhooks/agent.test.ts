/**
 * The deploy agent: signature and timestamp checks, filters, duplicate suppression (on disk,
 * across restarts), one deploy at a time per target, and the `registry-agent` launcher.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { loadAgentConfig, validateAgentConfig, AgentConfigError } from '../../src/agent/config.js';
import { sign } from '../../src/webhooks/signing.js';
import type { EventPayload } from '../../src/webhooks/types.js';
import {
  cleanups,
  deliver,
  DIGEST,
  event,
  lines,
  PROJECT_ROOT,
  recorder,
  runCleanups,
  SECRET,
  startInProcess as start,
  tempDir,
  waitFor,
} from '../agent/support.js';

afterEach(runCleanups);

describe('deploy agent', () => {
  test('runs the command of a matching target with the event in its environment', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'deploys.txt');
    const agent = await start(dir, [
      { name: 'web', repositories: ['app'], tags: ['semver'], events: ['tag.created', 'tag.updated'], command: recorder(out), timeoutSeconds: 30, env: {} },
    ]);
    const payload = event();
    const answer = await deliver(agent.endpoint, payload);
    assert.equal(answer.status, 202);
    assert.deepEqual(answer.body, { accepted: true, id: payload.id, targets: [{ target: 'web', state: 'started' }] });
    const [line] = await waitFor(async () => (await lines(out)).length > 0 && lines(out), 'the deploy');
    assert.equal(line, `registry.example.com:5000/app:1.4.2@${DIGEST}|app|1.4.2|${DIGEST}|tag.created|{"id":"${payload.id.slice(0, 13)}`);
    await waitFor(() => agent.state.outcome(payload.id) === 'succeeded', 'outcome recorded');
  });

  test('refuses a bad signature, a stale or future timestamp, and a body that is not an event', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'deploys.txt');
    const agent = await start(dir, [{ name: 'web', repositories: [], tags: [], events: ['tag.created'], command: recorder(out), timeoutSeconds: 30, env: {} }]);
    const wrongSecret = await deliver(agent.endpoint, event(), { secret: 'somebody-elses-secret' });
    assert.equal(wrongSecret.status, 401);
    const tampered = await deliver(agent.endpoint, event(), { tamper: (body) => body.replace('"app"', '"evil"') });
    assert.equal(tampered.status, 401);
    const unsigned = await fetch(agent.endpoint, { method: 'POST', body: JSON.stringify({ ...event(), sentAt: new Date().toISOString() }) });
    assert.equal(unsigned.status, 401);
    const stale = await deliver(agent.endpoint, event(), { sentAt: new Date(Date.now() - 10 * 60_000) });
    assert.equal(stale.status, 401);
    assert.match(stale.body.error, /outside the allowed 300 s/);
    const future = await deliver(agent.endpoint, event(), { sentAt: new Date(Date.now() + 10 * 60_000) });
    assert.equal(future.status, 401);
    const notEvent = await fetch(agent.endpoint, { method: 'POST', headers: { 'X-Signature': sign(SECRET, '{"hello":1}') }, body: '{"hello":1}' });
    assert.equal(notEvent.status, 400);
    assert.equal((await fetch(`${agent.url}/elsewhere`, { method: 'POST', body: '{}' })).status, 404);
    assert.equal((await fetch(agent.endpoint)).status, 405);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await lines(out), [], 'nothing ran');
  });

  test('refuses names a registry could not have sent (400) and a body over maxBodyBytes (413), running nothing', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'deploys.txt');
    const agent = await start(dir, [{ name: 'web', repositories: [], tags: [], events: ['tag.created'], command: recorder(out), timeoutSeconds: 30, env: {} }], {
      maxBodyBytes: 2048,
    });
    const cases: Array<[Partial<EventPayload>, RegExp]> = [
      [{ repository: 'app$(id)' }, /invalid repository name/],
      [{ repository: `a${'b'.repeat(255)}` }, /invalid repository name/],
      [{ tag: '1.0;ls' }, /invalid tag/],
      [{ digest: 'sha256:$(id)' }, /invalid digest/],
    ];
    for (const [overrides, error] of cases) {
      const answer = await deliver(agent.endpoint, event(overrides));
      assert.equal(answer.status, 400, JSON.stringify(overrides));
      assert.match(answer.body.error, error);
    }
    const large = await deliver(agent.endpoint, event({ repository: 'app' }), { tamper: (body) => body.replace('"app"', `"app","padding":"${'x'.repeat(4096)}"`) });
    assert.equal(large.status, 413);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await lines(out), [], 'nothing ran');
  });

  test('drops a replayed event id, also after a restart; a failed deploy may be redelivered', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'deploys.txt');
    const flag = path.join(dir, 'fail-next');
    const targets = [
      {
        name: 'web',
        repositories: [],
        tags: [],
        events: ['tag.created' as const],
        command: `${recorder(out)}; if [ -e '${flag}' ]; then rm '${flag}'; exit 3; fi`,
        timeoutSeconds: 30,
        retry: { attempts: 1 },
        env: {},
      },
    ];
    const first = await start(dir, targets);
    const payload = event();
    assert.equal((await deliver(first.endpoint, payload)).status, 202);
    const replay = await deliver(first.endpoint, payload, { signatureHeader: 'X-Signature' });
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.body, { duplicate: true, id: payload.id });
    await waitFor(() => first.state.outcome(payload.id) === 'succeeded', 'first deploy done');

    // A deploy that fails is remembered as failed, so a redelivery runs it again.
    await fs.writeFile(flag, '');
    const failing = event({ tag: '2.0.0' });
    assert.equal((await deliver(first.endpoint, failing)).status, 202);
    await waitFor(() => first.state.outcome(failing.id) === 'failed', 'failed deploy');
    await first.close();

    const second = await start(dir, targets);
    assert.equal((await deliver(second.endpoint, payload)).body.duplicate, true, 'remembered across a restart');
    assert.equal((await deliver(second.endpoint, failing)).status, 202, 'a failed one is taken again');
    await waitFor(() => second.state.outcome(failing.id) === 'succeeded', 'retried deploy');
    assert.deepEqual((await lines(out)).map((l) => l.split('|')[2]), ['1.4.2', '2.0.0', '2.0.0']);
  });

  test('filters by event type, repository and tag', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'deploys.txt');
    const agent = await start(dir, [
      { name: 'web', repositories: ['team/*'], tags: ['v*'], events: ['tag.created', 'tag.updated'], command: recorder(out), timeoutSeconds: 30, env: {} },
    ]);
    const ignored = [
      event({ repository: 'other/app', tag: 'v1' }),
      event({ repository: 'team/app', tag: 'latest' }),
      event({ repository: 'team/app', tag: 'v1', type: 'tag.deleted' }),
      event({ repository: 'team/app', tag: null, type: 'manifest.deleted' }),
    ];
    for (const payload of ignored) {
      const answer = await deliver(agent.endpoint, payload);
      assert.deepEqual([answer.status, answer.body.ignored], [200, true], JSON.stringify([payload.repository, payload.tag, payload.type]));
    }
    const ping = await deliver(agent.endpoint, event({ type: 'ping', repository: null, tag: null, digest: null, reference: null }));
    assert.deepEqual([ping.status, ping.body], [200, { pong: true }]);
    assert.equal((await deliver(agent.endpoint, event({ repository: 'team/app', tag: 'v2', type: 'tag.updated' }))).status, 202);
    await waitFor(async () => (await lines(out)).length === 1, 'one deploy');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual((await lines(out)).map((l) => l.split('|').slice(1, 3).join(':')), ['team/app:v2']);
  });

  test('reads distribution and CloudEvents deliveries too', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'deploys.txt');
    const agent = await start(dir, [{ name: 'web', repositories: [], tags: [], events: ['tag.created'], command: recorder(out), timeoutSeconds: 30, env: {} }]);
    assert.equal((await deliver(agent.endpoint, event({ tag: 'from-distribution' }), { format: 'distribution', timestamp: true })).status, 202);
    assert.equal((await deliver(agent.endpoint, event({ tag: 'from-cloudevents' }), { format: 'cloudevents' })).status, 202);
    await waitFor(async () => (await lines(out)).length === 2, 'two deploys');
    const refs = (await lines(out)).map((l) => l.split('|')[0]).sort();
    assert.deepEqual(refs, [
      `registry.example.com:5000/app:from-cloudevents@${DIGEST}`,
      `registry.example.com:5000/app:from-distribution@${DIGEST}`,
    ]);
  });

  test('one deploy at a time per target; a waiting deploy is superseded by a newer event', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'runs.txt');
    const command = `echo "start $IMAGE_TAG" >> '${out}'; sleep 0.3; echo "end $IMAGE_TAG" >> '${out}'`;
    const agent = await start(dir, [
      { name: 'web', repositories: ['app'], tags: [], events: ['tag.created'], command, timeoutSeconds: 30, env: {} },
      { name: 'worker', repositories: ['worker'], tags: [], events: ['tag.created'], command: recorder(path.join(dir, 'worker.txt')), timeoutSeconds: 30, env: {} },
    ]);
    const [one, two, three] = [event({ tag: 'one' }), event({ tag: 'two' }), event({ tag: 'three' })];
    assert.deepEqual((await deliver(agent.endpoint, one!)).body.targets, [{ target: 'web', state: 'started' }]);
    assert.deepEqual((await deliver(agent.endpoint, two!)).body.targets, [{ target: 'web', state: 'waiting' }]);
    assert.deepEqual((await deliver(agent.endpoint, three!)).body.targets, [{ target: 'web', state: 'waiting' }]);
    // Another target is not held up by this one.
    const worker = event({ repository: 'worker', tag: 'w1' });
    assert.deepEqual((await deliver(agent.endpoint, worker)).body.targets, [{ target: 'worker', state: 'started' }]);
    await waitFor(() => agent.state.outcome(three!.id) === 'succeeded', 'the last deploy');
    assert.deepEqual(await lines(out), ['start one', 'end one', 'start three', 'end three']);
    assert.equal(agent.state.outcome(two!.id), 'superseded');
    assert.equal(agent.state.outcome(worker.id), 'succeeded');
  });

  test('a command that outlives its timeout is killed and the deploy fails', async () => {
    const dir = await tempDir();
    const marker = path.join(dir, 'finished');
    const agent = await start(dir, [
      { name: 'web', repositories: [], tags: [], events: ['tag.created'], command: `sleep 5; touch '${marker}'`, timeoutSeconds: 1, env: {}, retry: { attempts: 1 } },
    ]);
    const payload = event();
    assert.equal((await deliver(agent.endpoint, payload)).status, 202);
    await waitFor(() => agent.state.outcome(payload.id) === 'failed', 'failed by timeout', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await assert.rejects(fs.stat(marker), 'the command was killed with its process group');
  });

  test('the event log stays bounded', async () => {
    const dir = await tempDir();
    const agent = await start(dir, [{ name: 'web', repositories: ['none'], tags: [], events: ['tag.created'], command: 'true', timeoutSeconds: 30, env: {} }], {
      rememberEvents: 100,
    });
    for (let i = 0; i < 450; i++) agent.state.record(`id-${i}`, 'succeeded');
    const text = await fs.readFile(path.join(dir, 'state', 'events.jsonl'), 'utf8');
    assert.ok(text.split('\n').filter(Boolean).length <= 200);
    assert.equal(agent.state.outcome('id-449'), 'succeeded');
    assert.equal(agent.state.outcome('id-0'), undefined);
  });
});

describe('agent configuration', () => {
  test('file plus DEPLOY_AGENT_* overrides, and a target from the environment alone', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'agent.yaml');
    await fs.writeFile(file, `listen: 127.0.0.1:9999\nsecretFile: ${path.join(dir, 'secret')}\ntargets:\n  - name: web\n    command: deploy.sh\n    tags: [semver]\n`);
    const config = loadAgentConfig({ file, env: { DEPLOY_AGENT_LISTEN: '127.0.0.1:0', DEPLOY_AGENT_MAX_SKEW_SECONDS: '60', DEPLOY_AGENT_COMMAND: 'kubectl rollout', DEPLOY_AGENT_REPOSITORIES: 'app, api' } });
    assert.equal(config.listen, '127.0.0.1:0');
    assert.equal(config.maxSkewSeconds, 60);
    assert.deepEqual(config.targets.map((t) => [t.name, t.command, t.repositories, t.events]), [
      ['web', 'deploy.sh', [], ['tag.created', 'tag.updated']],
      ['env', 'kubectl rollout', ['app', 'api'], ['tag.created', 'tag.updated']],
    ]);
    assert.throws(() => validateAgentConfig({ secret: SECRET, targets: [] }), AgentConfigError);
    assert.throws(() => validateAgentConfig({ targets: [{ name: 'x', command: 'y' }] }), /exactly one of secret and secretFile/);
    assert.throws(() => validateAgentConfig({ secret: SECRET, targets: [{ name: 'x', command: 'y', tags: ['/(bad/'] }] }), /invalid pattern/);
  });

  test('the registry-agent launcher starts the agent from the package bin', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'deploys.txt');
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'registry-agent.js')], {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DEPLOY_AGENT_LISTEN: '127.0.0.1:0',
        DEPLOY_AGENT_SECRET: SECRET,
        DEPLOY_AGENT_COMMAND: recorder(out),
        DEPLOY_AGENT_STATE_FILE: path.join(dir, 'events.jsonl'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    const url = await waitFor(() => {
      const line = output.split('\n').find((l) => l.includes('"agent listening"'));
      return line ? (JSON.parse(line) as { url: string }).url : null;
    }, `the agent to listen; output so far: ${output}`, 20_000);
    assert.equal((await deliver(url, event({ tag: 'via-bin' }))).status, 202);
    await waitFor(async () => (await lines(out)).length === 1, 'the deploy');
    await waitFor(() => output.includes('"deploy succeeded"'), 'the outcome in the log');
    assert.doesNotMatch(output, new RegExp(SECRET), 'the secret is never logged');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    assert.equal(await exited, 0, 'a clean exit on SIGTERM');
    clearTimeout(timer);
  });
});
