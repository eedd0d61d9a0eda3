/**
 * What the agent takes from and gives to its surroundings: deploy commands get a clean environment
 * (issue 11.13: never DEPLOY_AGENT_SECRET), the state file defaults to a data directory rather than
 * the current one (issue 15.10), and DEPLOY_AGENT_* values are read as their settings' types.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { defaultAgentName, loadAgentConfig, validateAgentConfig } from '../../src/agent/config.js';
import { deliver, event, lines, runCleanups, SECRET, spawnAgent, tempDir, waitFor } from './support.js';

afterEach(runCleanups);

describe('the environment of a deploy command', () => {
  test('holds PATH, HOME, the event and the variables the operator lists; never the secret or anything else of the agent', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'env.txt');
    const agent = await spawnAgent(dir, null, {
      HOME: dir,
      DEPLOY_AGENT_LISTEN: '127.0.0.1:0',
      DEPLOY_AGENT_SECRET: SECRET,
      DEPLOY_AGENT_STATE_FILE: path.join(dir, 'state.jsonl'),
      DEPLOY_AGENT_PASS_ENVIRONMENT: 'KUBECONFIG, DOCKER_HOST',
      DEPLOY_AGENT_COMMAND: `env > '${out}'; echo "the command printed its environment"`,
      KUBECONFIG: '/etc/kube/config',
      AWS_SECRET_ACCESS_KEY: 'not-for-deploy-commands',
    });
    const payload = event();
    assert.equal((await deliver(agent.endpoint, payload)).status, 202);
    await waitFor(() => agent.output().includes('"deploy succeeded"'), 'the deploy');
    const env = Object.fromEntries((await lines(out)).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    assert.equal(env.HOME, dir);
    assert.equal(env.PATH, process.env.PATH);
    assert.equal(env.KUBECONFIG, '/etc/kube/config');
    assert.equal(env.IMAGE_REF, payload.reference);
    assert.equal(env.REGISTRY_EVENT_ID, payload.id);
    assert.equal(env.DOCKER_HOST, undefined, 'listed but not set: absent');
    const text = await fs.readFile(out, 'utf8');
    assert.doesNotMatch(text, new RegExp(SECRET), 'the secret never reaches a command');
    assert.doesNotMatch(text, /DEPLOY_AGENT_|AWS_SECRET_ACCESS_KEY/);
    // Only what the shell adds itself besides.
    const extra = Object.keys(env).filter((name) => !/^(PATH|HOME|KUBECONFIG|IMAGE_\w+|REGISTRY_EVENT\w*|PWD|SHLVL|OLDPWD|_)$/.test(name));
    assert.deepEqual(extra, []);
    assert.doesNotMatch(agent.output(), new RegExp(SECRET), 'nor the agent log, which carries the output');
  });

  test('the agent\'s own settings cannot be passed on', () => {
    for (const name of ['DEPLOY_AGENT_SECRET', 'deploy_agent_secret_file']) {
      assert.throws(() => validateAgentConfig({ secret: SECRET, passEnvironment: [name], targets: [{ name: 'x', command: 'y' }] }), /never reach a command/);
      assert.throws(() => validateAgentConfig({ secret: SECRET, targets: [{ name: 'x', command: 'y', passEnvironment: [name] }] }), /never reach a command/);
    }
  });
});

describe('the state file', () => {
  test('defaults to a data directory: $STATE_DIRECTORY, $XDG_STATE_HOME/registry-agent, ~/.local/state/registry-agent', () => {
    const base = { DEPLOY_AGENT_SECRET: SECRET, DEPLOY_AGENT_COMMAND: 'true' };
    const stateFile = (env: Record<string, string>) => loadAgentConfig({ file: '/dev/null', env: { ...base, ...env } }).stateFile;
    assert.equal(stateFile({ STATE_DIRECTORY: '/var/lib/registry-agent:/var/lib/other', HOME: '/home/u' }), '/var/lib/registry-agent/events.jsonl');
    assert.equal(stateFile({ XDG_STATE_HOME: '/home/u/state', HOME: '/home/u' }), '/home/u/state/registry-agent/events.jsonl');
    assert.equal(stateFile({ XDG_STATE_HOME: 'relative', HOME: '/home/u' }), '/home/u/.local/state/registry-agent/events.jsonl');
    assert.equal(stateFile({ HOME: '/home/u' }), '/home/u/.local/state/registry-agent/events.jsonl');
    assert.equal(stateFile({ HOME: '/home/u', DEPLOY_AGENT_STATE_FILE: '/srv/agent.jsonl' }), '/srv/agent.jsonl');
  });

  test('a started agent writes nothing into its current directory and says where its state is', async () => {
    const dir = await tempDir();
    const work = path.join(dir, 'checkout');
    const home = path.join(dir, 'home');
    await fs.mkdir(work);
    await fs.mkdir(home);
    await fs.writeFile(path.join(work, 'registry-agent-events.jsonl'), '');
    const agent = await spawnAgent(dir, null, { HOME: home, DEPLOY_AGENT_LISTEN: '127.0.0.1:0', DEPLOY_AGENT_SECRET: SECRET, DEPLOY_AGENT_COMMAND: 'true' }, work);
    assert.equal((await deliver(agent.endpoint, event())).status, 202);
    await waitFor(() => agent.output().includes('"deploy succeeded"'), 'the deploy');
    const expected = path.join(home, '.local', 'state', 'registry-agent', 'events.jsonl');
    assert.ok((await fs.stat(expected)).size > 0, 'the state is in the data directory');
    assert.deepEqual(await fs.readdir(work), ['registry-agent-events.jsonl'], 'nothing new in the current directory');
    const listening = agent.logs().find((line) => line.msg === 'agent listening')!;
    assert.equal(listening.stateFile, expected);
    assert.ok(agent.logs().some((line) => /earlier default state file/.test(line.msg) && line.found === path.join(work, 'registry-agent-events.jsonl')));
    assert.equal((await agent.stop()).code, 0);
  });
});

describe('DEPLOY_AGENT_* variables', () => {
  test('are read as their settings\' types: an all-digit file name or agent name stays text', () => {
    const config = loadAgentConfig({
      file: '/dev/null',
      env: {
        HOME: '/home/u',
        DEPLOY_AGENT_SECRET: '1234567890123456',
        DEPLOY_AGENT_STATE_FILE: '12345',
        DEPLOY_AGENT_NAME: '4242',
        DEPLOY_AGENT_MAX_SKEW_SECONDS: '60',
        DEPLOY_AGENT_RETRY_ATTEMPTS: '5',
        DEPLOY_AGENT_RETRY_DELAY_SECONDS: '0.5',
        DEPLOY_AGENT_REPORT_ENABLED: 'false',
        DEPLOY_AGENT_COMMAND: 'true',
      },
    });
    assert.equal(config.stateFile, '12345');
    assert.equal(config.name, '4242');
    assert.equal(config.secret, '1234567890123456');
    assert.equal(config.maxSkewSeconds, 60);
    assert.deepEqual(config.retry, { attempts: 5, delaySeconds: 0.5, maxDelaySeconds: 600 });
    assert.equal(config.report.enabled, false);
    assert.throws(() => loadAgentConfig({ file: '/dev/null', env: { DEPLOY_AGENT_SECRET: SECRET, DEPLOY_AGENT_COMMAND: 'true', DEPLOY_AGENT_MAX_SKEW_SECONDS: 'soon' } }), /maxSkewSeconds/);
  });

  test('the agent is named after its host unless told otherwise', () => {
    const config = validateAgentConfig({ secret: SECRET, targets: [{ name: 'x', command: 'y' }] });
    assert.equal(config.name, defaultAgentName());
    assert.match(config.name, /^[A-Za-z0-9._-]{1,128}$/);
    assert.equal(config.name, os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 128) || 'registry-agent');
    assert.throws(() => validateAgentConfig({ name: 'host 4', secret: SECRET, targets: [{ name: 'x', command: 'y' }] }), /name/);
  });
});
