/**
 * Issue 16.3, agent side: a failed deploy is retried with backoff, and every deploy's outcome is
 * reported to the registry per shared contract 1 (to a real listener that checks signature,
 * freshness and fields); reports are retried a bounded number of times and never hold up a
 * deploy; a redelivered event runs again when its last outcome was failed or interrupted.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import {
  deliver,
  dockerHubBody,
  event,
  lines,
  runCleanups,
  startInProcess,
  startReportReceiver,
  statuses,
  tempDir,
  waitFor,
} from './support.js';

afterEach(runCleanups);

const quickReports = { delaySeconds: 0.05, attempts: 3, timeoutSeconds: 2 };

describe('retries and deploy reports', () => {
  test('a failed deploy is retried with doubling delays, and every attempt is reported, signed', async () => {
    const dir = await tempDir();
    const counter = path.join(dir, 'count');
    const receiver = await startReportReceiver();
    // Fails (exit 3, with output) on its first two runs.
    const command = `n=$(cat '${counter}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${counter}'; echo "run $n of $IMAGE_TAG"; if [ $n -lt 3 ]; then echo "not yet" >&2; exit 3; fi`;
    const agent = await startInProcess(dir, [{ name: 'web', command, timeoutSeconds: 30, retry: { attempts: 3, delaySeconds: 0.2, maxDelaySeconds: 5 } }], {
      name: 'host-4',
      report: quickReports,
    });
    const payload = event();
    assert.equal((await deliver(agent.endpoint, payload, { callback: receiver.callback('web', 12) })).status, 202);
    await waitFor(() => statuses(receiver, payload.id).length === 6, 'six reports', 15_000);
    assert.deepEqual(statuses(receiver, payload.id), [
      ['running', 1],
      ['failed', 1],
      ['running', 2],
      ['failed', 2],
      ['running', 3],
      ['succeeded', 3],
    ]);
    const bodies = receiver.reports.map((r) => r.body);
    assert.ok(receiver.reports.every((r) => r.path === '/api/v1/webhooks/web/deliveries/12/deploys'));
    assert.ok(bodies.every((b) => b.agent === 'host-4' && b.eventId === payload.id));
    assert.deepEqual([bodies[1]!.exitCode, bodies[5]!.exitCode], [3, 0]);
    assert.match(bodies[1]!.output, /run 1 of 1\.4\.2\nnot yet/);
    assert.ok(bodies[1]!.durationMs >= 0 && bodies[0]!.durationMs === null && bodies[0]!.output === null);
    // The backoff: 0.2 s before the second attempt, 0.4 s before the third.
    const gap = (from: number, to: number) => Date.parse(bodies[to]!.startedAt) - Date.parse(bodies[from]!.finishedAt);
    assert.ok(gap(1, 2) >= 200, `first retry after ${gap(1, 2)} ms`);
    assert.ok(gap(3, 4) >= 400, `second retry after ${gap(3, 4)} ms`);
    assert.equal(agent.state.outcome(payload.id), 'succeeded');
    assert.equal((await deliver(agent.endpoint, payload)).body.duplicate, true, 'a succeeded event is a duplicate');
    assert.deepEqual(receiver.refused, []);
  });

  test('retries stop after the configured attempts; a redelivery of the failed event runs it again', async () => {
    const dir = await tempDir();
    const runs = path.join(dir, 'runs');
    const receiver = await startReportReceiver();
    const agent = await startInProcess(dir, [{ name: 'web', command: `echo run >> '${runs}'; exit 3`, timeoutSeconds: 30 }], {
      retry: { attempts: 2, delaySeconds: 0.05 },
      report: quickReports,
    });
    const payload = event();
    assert.equal((await deliver(agent.endpoint, payload, { callback: receiver.callback('web', 1) })).status, 202);
    await waitFor(() => agent.state.outcome(payload.id) === 'failed', 'the deploy to fail for good');
    await waitFor(() => statuses(receiver, payload.id).length === 4, 'four reports');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await lines(runs)).length, 2, 'two attempts, no more');

    // The operator redelivers (a new delivery of the same event): it runs again, with new attempts.
    const again = await deliver(agent.endpoint, payload, { callback: receiver.callback('web', 2) });
    assert.equal(again.status, 202);
    await waitFor(() => statuses(receiver, payload.id).length === 8, 'the reports of the rerun');
    assert.deepEqual(
      receiver.reports.filter((r) => r.path.endsWith('/deliveries/2/deploys')).map((r) => [r.body.status, r.body.attempt]),
      [['running', 3], ['failed', 3], ['running', 4], ['failed', 4]],
      'the rerun reports to the new delivery, counting attempts on',
    );
    assert.equal((await lines(runs)).length, 4);
  });

  test('a queued or running event is a duplicate; one interrupted under an earlier agent version runs again', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'runs');
    const release = path.join(dir, 'release');
    const interrupted = event({ repository: 'third', tag: 'interrupted' });
    // An agent before this version wrote "accepted" and crashed before the deploy's outcome.
    await fs.mkdir(path.join(dir, 'state'));
    await fs.writeFile(path.join(dir, 'state', 'events.jsonl'), `${JSON.stringify({ id: interrupted.id, outcome: 'accepted', at: Date.now() - 60_000 })}\n`);
    const command = `echo "$IMAGE_TAG" >> '${out}'; i=0; while [ ! -e '${release}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`;
    const agent = await startInProcess(dir, [{ name: 'web', repositories: ['app', 'other', 'third'], command, timeoutSeconds: 30 }]);
    const running = event({ tag: 'running' });
    const queued = event({ repository: 'other', tag: 'queued' });
    assert.equal((await deliver(agent.endpoint, running)).status, 202);
    assert.equal((await deliver(agent.endpoint, queued)).status, 202);
    assert.equal((await deliver(agent.endpoint, running)).body.duplicate, true, 'running');
    assert.equal((await deliver(agent.endpoint, queued)).body.duplicate, true, 'queued');
    assert.equal((await deliver(agent.endpoint, interrupted)).status, 202, 'interrupted: taken again');
    await fs.writeFile(release, '');
    await waitFor(() => agent.state.outcome(interrupted.id) === 'succeeded', 'the interrupted deploy');
    assert.deepEqual(await lines(out), ['running', 'queued', 'interrupted']);
  });

  test('the report URL: the callback header, Docker Hub callback_url, and registryUrl replacing the origin', async () => {
    const dir = await tempDir();
    const receiver = await startReportReceiver();
    const agent = await startInProcess(dir, [{ name: 'web', command: 'true', timeoutSeconds: 30 }], {
      report: { ...quickReports, registryUrl: receiver.listener.url },
    });
    const viaHeader = event();
    await deliver(agent.endpoint, viaHeader, { callback: 'https://registry.internal.example:5000/api/v1/webhooks/prod/deliveries/41/deploys' });
    const viaBody = event({ repository: 'team/app', tag: '2.0' });
    const hubBody = dockerHubBody(viaBody, 'https://registry.internal.example:5000/api/v1/webhooks/hub/deliveries/42/deploys');
    assert.equal((await deliver(agent.endpoint, viaBody, { body: hubBody, signatureHeader: null, timestamp: true })).status, 202);
    const notACallback = event({ tag: 'x' });
    await deliver(agent.endpoint, notACallback, { callback: `${receiver.listener.url}/v2/_catalog` });
    await waitFor(() => statuses(receiver, viaHeader.id).length === 2 && statuses(receiver, viaBody.id).length === 2, 'both reports');
    assert.deepEqual(
      [...new Set(receiver.reports.map((r) => r.path))].sort(),
      ['/api/v1/webhooks/hub/deliveries/42/deploys', '/api/v1/webhooks/prod/deliveries/41/deploys'],
    );
    await waitFor(() => agent.state.outcome(notACallback.id) === 'succeeded', 'the third deploy');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(!receiver.listener.received.some((r) => r.url.startsWith('/v2/')), 'nothing is posted to a URL that is not a deploy-results one');
  });

  test('report posting is retried a bounded number of times and never holds up deploys', async () => {
    const dir = await tempDir();
    let mode: 'flaky' | 'down' | 'hang' = 'flaky';
    const tries = new Map<string, number>();
    const receiver = await startReportReceiver(undefined, (report) => {
      const key = `${report.body.eventId} ${report.body.status}`;
      const n = (tries.get(key) ?? 0) + 1;
      tries.set(key, n);
      if (mode === 'flaky') return n < 3 ? 503 : 204;
      if (mode === 'down') return 500;
      return { status: 204, delayMs: 3_000 };
    });
    const agent = await startInProcess(dir, [{ name: 'web', repositories: ['**'], command: 'true', timeoutSeconds: 30 }], {
      report: { attempts: 3, delaySeconds: 0.05, timeoutSeconds: 1 },
    });
    const flaky = event();
    await deliver(agent.endpoint, flaky, { callback: receiver.callback() });
    await waitFor(() => statuses(receiver, flaky.id).at(-1)?.[0] === 'succeeded', 'the final report through, on its third try');
    assert.equal(tries.get(`${flaky.id} succeeded`), 3);
    // The running report may have given way to the newer one between its tries.
    assert.ok((tries.get(`${flaky.id} running`) ?? 0) <= 3);

    mode = 'down';
    const down = event({ repository: 'down' });
    await deliver(agent.endpoint, down, { callback: receiver.callback() });
    await waitFor(() => agent.state.outcome(down.id) === 'succeeded', 'the deploy, whatever the reports');
    await waitFor(() => tries.get(`${down.id} succeeded`) === 3, 'the last report tried three times');
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(tries.get(`${down.id} succeeded`), 3, 'and given up');
    assert.ok((tries.get(`${down.id} running`) ?? 0) <= 3);

    mode = 'hang';
    const slow = event({ repository: 'slow' });
    const next = event({ repository: 'next' });
    await deliver(agent.endpoint, slow, { callback: receiver.callback() });
    await deliver(agent.endpoint, next, { callback: receiver.callback() });
    await waitFor(() => agent.state.outcome(next.id) === 'succeeded', 'the next deploy');
    assert.ok(receiver.listener.concurrent.now > 0, 'deployed while reports of the one before still hang');
  });
});
