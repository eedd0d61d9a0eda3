/**
 * Issue 16.1: coalescing happens per target and repository. A newer event of one repository
 * replaces only that repository's waiting deploy; a waiting deploy of another repository on the
 * same target is never superseded; an event older than one already taken for its repository
 * (a late retry, a redelivery) does not roll back.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { deliver, event, lines, runCleanups, startInProcess, tempDir, waitFor } from './support.js';

afterEach(runCleanups);

/** A command that logs its start, waits (bounded, 20 s) until `release` exists, then logs its end. */
function gated(log: string, release: string): string {
  return `echo "start $IMAGE_REPOSITORY:$IMAGE_TAG" >> '${log}'; i=0; while [ ! -e '${release}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo "end $IMAGE_REPOSITORY:$IMAGE_TAG" >> '${log}'`;
}

const at = (seconds: number) => new Date(Date.UTC(2025, 5, 1, 12, 0, seconds)).toISOString();

describe('coalescing per target and repository', () => {
  test('a newer event of one repository never cancels the waiting deploy of another', async () => {
    const dir = await tempDir();
    const log = path.join(dir, 'runs.txt');
    const release = path.join(dir, 'release');
    const agent = await startInProcess(dir, [{ name: 'team', repositories: ['team/a1', 'team/a2'], command: gated(log, release), timeoutSeconds: 60 }]);
    const a1v0 = event({ repository: 'team/a1', tag: '1.0.0', timestamp: at(1) });
    const a2v0 = event({ repository: 'team/a2', tag: '1.0.0', timestamp: at(2) });
    const a1v1 = event({ repository: 'team/a1', tag: '1.0.1', timestamp: at(3) });
    const a1v2 = event({ repository: 'team/a1', tag: '1.0.2', timestamp: at(4) });

    assert.deepEqual((await deliver(agent.endpoint, a1v0)).body.targets, [{ target: 'team', state: 'started' }]);
    await waitFor(async () => (await lines(log)).length === 1, 'the first deploy to start');
    assert.deepEqual((await deliver(agent.endpoint, a2v0)).body.targets, [{ target: 'team', state: 'waiting' }]);
    assert.deepEqual((await deliver(agent.endpoint, a1v1)).body.targets, [{ target: 'team', state: 'waiting' }]);
    assert.equal(agent.state.outcome(a2v0.id), 'queued', 'a2 still waits: an a1 event does not replace it');
    assert.deepEqual((await deliver(agent.endpoint, a1v2)).body.targets, [{ target: 'team', state: 'waiting' }]);
    assert.equal(agent.state.outcome(a1v1.id), 'superseded', 'the newest a1 event replaced the older waiting a1 one');

    await fs.writeFile(release, '');
    await waitFor(() => agent.state.outcome(a1v2.id) === 'succeeded', 'the newest a1 deploy');
    assert.deepEqual(await lines(log), ['start team/a1:1.0.0', 'end team/a1:1.0.0', 'start team/a2:1.0.0', 'end team/a2:1.0.0', 'start team/a1:1.0.2', 'end team/a1:1.0.2']);
    assert.equal(agent.state.outcome(a2v0.id), 'succeeded');

    // The a2 deploy ran, so a redelivery of it is a duplicate; the superseded a1 event is taken
    // again, but it is older than what was deployed since, so it is superseded at once.
    assert.equal((await deliver(agent.endpoint, a2v0)).body.duplicate, true);
    const again = await deliver(agent.endpoint, a1v1);
    assert.equal(again.status, 202);
    assert.deepEqual(again.body.targets, [{ target: 'team', state: 'superseded' }]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await lines(log)).length, 6, 'nothing rolled back to 1.0.1');
  });

  test('an event older than a waiting one of its repository is superseded at once, whatever the arrival order', async () => {
    const dir = await tempDir();
    const log = path.join(dir, 'runs.txt');
    const release = path.join(dir, 'release');
    const agent = await startInProcess(dir, [{ name: 'team', repositories: ['team/**'], command: gated(log, release), timeoutSeconds: 60 }]);
    const busy = event({ repository: 'team/other', tag: '9', timestamp: at(1) });
    const newer = event({ repository: 'team/app', tag: '2.0.0', timestamp: at(20) });
    const older = event({ repository: 'team/app', tag: '1.9.0', timestamp: at(10) });
    assert.deepEqual((await deliver(agent.endpoint, busy)).body.targets, [{ target: 'team', state: 'started' }]);
    assert.deepEqual((await deliver(agent.endpoint, newer)).body.targets, [{ target: 'team', state: 'waiting' }]);
    assert.deepEqual((await deliver(agent.endpoint, older)).body.targets, [{ target: 'team', state: 'superseded' }]);
    await fs.writeFile(release, '');
    await waitFor(() => agent.state.outcome(newer.id) === 'succeeded', 'the newer deploy');
    assert.deepEqual(await lines(log), ['start team/other:9', 'end team/other:9', 'start team/app:2.0.0', 'end team/app:2.0.0']);
    assert.equal(agent.state.outcome(older.id), 'superseded');
  });
});
