/**
 * Issue 16.2: a deploy the agent had taken survives the agent's crash. A real `registry-agent`
 * process is SIGKILLed in the middle of a deploy: on restart it kills the process group the dead
 * process left running, runs the interrupted deploy again and the queued ones after it, keeps the
 * attempt's deadline (a deploy whose deadline passed while the agent was down is not given a fresh
 * one), and reads back a state file torn by a crash without losing what comes after.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { groupAlive, signalGroup } from '../../src/agent/process-group.js';
import { AgentState } from '../../src/agent/state.js';
import {
  cleanups,
  deliver,
  event,
  lines,
  runCleanups,
  SECRET,
  spawnAgent,
  startInProcess,
  startReportReceiver,
  statuses,
  tempDir,
  waitFor,
} from './support.js';

afterEach(runCleanups);

function agentConfig(dir: string, target: Record<string, unknown>) {
  return {
    listen: '127.0.0.1:0',
    path: '/hooks',
    secret: SECRET,
    stateFile: path.join(dir, 'state', 'events.jsonl'),
    report: { delaySeconds: 0.05 },
    targets: [{ name: 'web', repositories: ['app', 'app2'], timeoutSeconds: 60, retry: { attempts: 1 }, ...target }],
  };
}

/** Waits for the command to write its process group id, and kills that group after the test whatever happens. */
async function commandGroup(file: string): Promise<number> {
  const pgid = await waitFor(async () => Number((await fs.readFile(file, 'utf8').catch(() => '')).trim()) || null, 'the command to start');
  cleanups.push(() => signalGroup(pgid, 'SIGKILL'));
  return pgid;
}

describe('an agent killed in the middle of a deploy', () => {
  test('kills what the dead process left running, then finishes the interrupted and the queued deploys', async () => {
    const dir = await tempDir();
    const runs = path.join(dir, 'runs.txt');
    const marker = path.join(dir, 'first-run');
    const pgidFile = path.join(dir, 'pgid');
    const receiver = await startReportReceiver();
    // The first run of app writes its group id and hangs; any later run is quick.
    const command = `echo "start $IMAGE_REPOSITORY" >> '${runs}'; if [ "$IMAGE_REPOSITORY" = app ] && [ ! -e '${marker}' ]; then touch '${marker}'; echo $$ > '${pgidFile}'; sleep 30; fi; echo "end $IMAGE_REPOSITORY" >> '${runs}'`;
    const config = agentConfig(dir, { command });
    const first = await spawnAgent(dir, config);
    const payload = event();
    const queued = event({ repository: 'app2' });
    assert.equal((await deliver(first.endpoint, payload, { callback: receiver.callback('web', 7) })).status, 202);
    const pgid = await commandGroup(pgidFile);
    assert.deepEqual((await deliver(first.endpoint, queued, { callback: receiver.callback('web', 8) })).body.targets, [{ target: 'web', state: 'waiting' }]);
    await waitFor(() => statuses(receiver, payload.id).length === 1, 'the running report');

    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    assert.ok(groupAlive(pgid), 'the orphaned deploy still runs: the crash left it behind');

    const second = await spawnAgent(dir, config);
    await waitFor(() => !groupAlive(pgid), 'the orphaned process group to be killed');
    await waitFor(async () => (await lines(runs)).length === 5, 'the deploys to run again');
    assert.deepEqual(await lines(runs), ['start app', 'start app', 'end app', 'start app2', 'end app2']);
    await waitFor(() => statuses(receiver, queued.id).length === 2, 'the queued deploy reported');
    assert.deepEqual(statuses(receiver, payload.id), [['running', 1], ['running', 1], ['succeeded', 1]], 'the rerun is the same attempt');
    assert.deepEqual(statuses(receiver, queued.id), [['running', 1], ['succeeded', 1]]);
    assert.ok(second.logs().some((line) => line.msg === 'killing the deploy an earlier agent process left running' && line.pgid === pgid));
    assert.deepEqual(receiver.refused, []);

    // Finished now, so the registry's redeliveries are duplicates.
    assert.equal((await deliver(second.endpoint, payload)).body.duplicate, true);
    assert.equal((await deliver(second.endpoint, queued)).body.duplicate, true);
    assert.equal((await second.stop('SIGTERM')).code, 0);
  });

  test('the deadline holds across the restart: an attempt whose time ran out while the agent was down fails, unrun', async () => {
    const dir = await tempDir();
    const runs = path.join(dir, 'runs.txt');
    const pgidFile = path.join(dir, 'pgid');
    const stateFile = path.join(dir, 'state', 'events.jsonl');
    const receiver = await startReportReceiver();
    const config = agentConfig(dir, { command: `echo start >> '${runs}'; echo $$ > '${pgidFile}'; sleep 30`, timeoutSeconds: 2 });
    const first = await spawnAgent(dir, config);
    const payload = event();
    assert.equal((await deliver(first.endpoint, payload, { callback: receiver.callback() })).status, 202);
    const pgid = await commandGroup(pgidFile);
    const deadline = await waitFor(async () => {
      const records = (await lines(stateFile)).map((line) => JSON.parse(line) as { deadline?: number | null });
      return records.map((record) => record.deadline).find((value) => typeof value === 'number');
    }, 'the deadline on disk');
    await waitFor(() => statuses(receiver, payload.id).length === 1, 'the running report');
    first.child.kill('SIGKILL');
    await first.exited;
    await waitFor(() => Date.now() > deadline + 200, 'the deadline to pass while no agent runs');
    assert.ok(groupAlive(pgid), 'nobody enforced the deadline while the agent was down');

    const second = await spawnAgent(dir, config);
    await waitFor(() => !groupAlive(pgid), 'the overdue process group to be killed');
    await waitFor(() => statuses(receiver, payload.id).length === 2, 'the failed report');
    assert.deepEqual(statuses(receiver, payload.id), [['running', 1], ['failed', 1]]);
    const failed = receiver.reports.at(-1)!.body;
    assert.equal(failed.exitCode, null);
    assert.match(failed.output, /interrupted by an agent restart; its deadline passed/);
    assert.deepEqual(await lines(runs), ['start'], 'not run again with a fresh deadline');
    await second.stop('SIGTERM');
  });
});

describe('a state file torn by a crash', () => {
  test('a torn last line is cut off, so what is recorded next survives the next restart', async () => {
    const dir = await tempDir();
    const stateFile = path.join(dir, 'state', 'events.jsonl');
    const targets = [{ name: 'web', command: 'true', timeoutSeconds: 30 }];
    const agent = await startInProcess(dir, targets);
    const earlier = [event(), event({ tag: '2.0.0' })];
    for (const payload of earlier) assert.equal((await deliver(agent.endpoint, payload)).status, 202);
    await waitFor(() => earlier.every((payload) => agent.state.outcome(payload.id) === 'succeeded'), 'the deploys');
    await agent.close();
    cleanups.pop();
    // A crash in the middle of an append leaves half a line with no newline.
    const whole = await fs.readFile(stateFile, 'utf8');
    await fs.writeFile(stateFile, `${whole}{"id":"torn-by-a-cra`);

    const reopened = await startInProcess(dir, targets);
    for (const payload of earlier) assert.equal((await deliver(reopened.endpoint, payload)).body.duplicate, true, 'the complete lines are read');
    // The first line written after the tear must not be glued to the fragment.
    reopened.state.record('first-after-the-tear', 'failed');
    const next = event({ tag: '3.0.0' });
    assert.equal((await deliver(reopened.endpoint, next)).status, 202);
    await waitFor(() => reopened.state.outcome(next.id) === 'succeeded', 'the next deploy');
    await reopened.close();
    cleanups.pop();

    const third = await startInProcess(dir, targets);
    assert.equal(third.state.outcome('first-after-the-tear'), 'failed', 'the record written after the torn line was kept');
    assert.deepEqual((await deliver(third.endpoint, next)).body, { duplicate: true, id: next.id });
    assert.equal(await fs.readFile(`${stateFile}.damaged`, 'utf8'), `${whole}{"id":"torn-by-a-cra`, 'the damaged file is kept aside');
  });

  test('cut anywhere or damaged in the middle, the file opens with every intact record', async () => {
    const dir = await tempDir();
    const source = path.join(dir, 'source.jsonl');
    const state = AgentState.open(source, 100);
    for (let i = 0; i < 30; i++) state.record(`event-${i}`, i % 3 === 0 ? 'failed' : 'succeeded');
    state.close();
    const bytes = await fs.readFile(source);
    const newlineEnds = [...bytes.entries()].filter(([, byte]) => byte === 0x0a).map(([index]) => index + 1);
    for (let cut = 1; cut < bytes.length; cut += 37) {
      const file = path.join(dir, `cut-${cut}.jsonl`);
      await fs.writeFile(file, bytes.subarray(0, cut));
      const opened = AgentState.open(file, 100);
      const intact = newlineEnds.filter((end) => end <= cut).length;
      for (let i = 0; i < 30; i++) assert.equal(opened.outcome(`event-${i}`) !== undefined, i < intact, `cut at ${cut}: event-${i}`);
      opened.record('after-the-cut', 'succeeded');
      opened.close();
      const again = AgentState.open(file, 100);
      assert.equal(again.outcome('after-the-cut'), 'succeeded', `cut at ${cut}`);
      again.close();
    }
    // Zeros a power cut can leave, and garbage, in the middle of the file.
    const text = bytes.toString('utf8').split('\n');
    text.splice(5, 1, '\0\0\0\0\0\0', '{"id":"half');
    const damaged = path.join(dir, 'damaged.jsonl');
    await fs.writeFile(damaged, text.join('\n'));
    const opened = AgentState.open(damaged, 100);
    assert.equal(opened.damagedLines, 2);
    assert.equal(opened.outcome('event-5'), undefined, 'the damaged line is lost');
    for (const i of [0, 4, 6, 29]) assert.ok(opened.outcome(`event-${i}`), `event-${i} is kept`);
    opened.close();
    assert.doesNotMatch(await fs.readFile(damaged, 'utf8'), /\0|"half/, 'rewritten clean');
  });
});
