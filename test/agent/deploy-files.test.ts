/**
 * Issue 16.4's shipping files for the agent, read as systemd, Kubernetes and a build would read
 * them: the systemd unit verifies with systemd-analyze and gives the agent a data directory and time
 * to finish deploys; the Kubernetes manifest's agent configuration is valid, and the mounts, ports,
 * probes, permissions and grace period agree with it; the container image's default state
 * directory is a directory the image creates for its user.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { defaultStateFile, validateAgentConfig } from '../../src/agent/config.js';
import { PROJECT_ROOT } from './support.js';

const read = (file: string) => fs.readFile(path.join(PROJECT_ROOT, file), 'utf8');

/** `key=value` lines of a systemd unit, per section (comments and blank lines left out). */
function parseUnit(text: string): Record<string, Record<string, string>> {
  const sections: Record<string, Record<string, string>> = {};
  let current: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const section = /^\[(\w+)\]$/.exec(line.trim());
    if (section) sections[section[1]!] = current = {};
    else if (/^\w+=/.test(line)) current[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  return sections;
}

const seconds = (value: string) => {
  const match = /^(\d+)(min|s)?$/.exec(value);
  assert.ok(match, `a duration: ${value}`);
  return Number(match[1]) * (match[2] === 'min' ? 60 : 1);
};

describe('systemd unit', () => {
  test('runs registry-agent with a state directory, restarts it on failure, and lets running deploys finish on stop', async (t) => {
    const text = await read('deploy/systemd/registry-agent.service');
    const { Service: service, Install: install } = parseUnit(text);
    assert.ok(service && install);
    assert.match(service.ExecStart!, /^\/\S+\/registry-agent --config \/etc\/registry-agent\/registry-agent\.yaml$/);
    assert.equal(service.StateDirectory, 'registry-agent');
    assert.equal(defaultStateFile({ STATE_DIRECTORY: '/var/lib/registry-agent' }), '/var/lib/registry-agent/events.jsonl', 'the default state file follows StateDirectory=');
    assert.equal(service.Restart, 'on-failure');
    assert.equal(service.KillMode, 'mixed', 'SIGTERM to the agent alone, which waits for its deploys');
    assert.ok(seconds(service.TimeoutStopSec!) > 900, 'longer than the default deploy timeout');
    assert.notEqual(service.User, 'root');
    assert.equal(install.WantedBy, 'multi-user.target');

    const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (analyze.error) {
      t.skip(`systemd-analyze is not installed (${analyze.error.message}); unit not verified`);
      return;
    }
    // Verified as written, but for the binary and user this machine has.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'agent-unit-'));
    try {
      const unit = path.join(dir, 'registry-agent.service');
      await fs.writeFile(unit, text.replace(/^ExecStart=\S+/m, 'ExecStart=/bin/true').replace(/^(User|Group)=.*$/gm, '$1=root'));
      const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(verify.status, 0, verify.stderr);
      assert.equal(verify.stderr.trim(), '', 'no unknown keys or bad values');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Kubernetes manifest', () => {
  test('a valid agent configuration, mounted where the command reads it, with its secrets, state, port, probes and permissions', async () => {
    const docs = YAML.parseAllDocuments(await read('deploy/kubernetes/registry-agent.yaml')).map((doc) => doc.toJS() as Record<string, any>);
    const find = (kind: string) => {
      const found = docs.find((doc) => doc.kind === kind);
      assert.ok(found, kind);
      return found;
    };
    const configMap = find('ConfigMap');
    const config = validateAgentConfig(YAML.parse(configMap.data['registry-agent.yaml']), 'the ConfigMap');
    const deployment = find('Deployment');
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    const mount = (name: string) => container.volumeMounts.find((m: any) => m.name === name);
    const volume = (name: string) => pod.volumes.find((v: any) => v.name === name);

    const configPath = container.command[container.command.indexOf('--config') + 1];
    assert.equal(container.command[0], 'registry-agent');
    assert.equal(mount('config').mountPath, configPath);
    assert.equal(volume('config').configMap.name, configMap.metadata.name);
    assert.equal(mount('config').subPath, 'registry-agent.yaml');

    assert.equal(path.dirname(config.stateFile), mount('state').mountPath, 'the state file is on the volume');
    assert.equal(volume('state').persistentVolumeClaim.claimName, find('PersistentVolumeClaim').metadata.name);
    assert.equal(deployment.spec.replicas, 1);
    assert.equal(deployment.spec.strategy.type, 'Recreate', 'never two agents on one state file');

    for (const file of [config.secretFile!, config.status.tokenFile!]) assert.equal(path.dirname(file), mount('secret').mountPath, file);
    assert.match(await read('deploy/kubernetes/registry-agent.yaml'), /--from-literal=webhook-secret=.*--from-literal=status-token=/s);
    assert.deepEqual([config.secretFile, config.status.tokenFile].map((f) => path.basename(f!)), ['webhook-secret', 'status-token']);

    const port = Number(config.listen.split(':').pop());
    assert.equal(container.ports[0].containerPort, port);
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(container.readinessProbe.httpGet.path, '/healthz');
    const service = find('Service');
    assert.equal(service.spec.ports[0].port, port);
    assert.match(await read('deploy/kubernetes/registry-agent.yaml'), new RegExp(`registry-agent\\.prod\\.svc:${port}${config.path}`));

    assert.ok(pod.terminationGracePeriodSeconds > Math.max(...config.targets.map((target) => target.timeoutSeconds)), 'running deploys may finish on a rollout');
    assert.deepEqual(config.passEnvironment, ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'], 'kubectl finds the API server from the clean environment');
    assert.equal(pod.serviceAccountName, find('ServiceAccount').metadata.name);
    const rules = find('Role').rules as Array<{ resources: string[]; verbs: string[] }>;
    assert.ok(rules.some((rule) => rule.resources.includes('deployments') && rule.verbs.includes('patch')), 'kubectl set image patches the deployment');
    assert.equal(find('RoleBinding').roleRef.name, find('Role').metadata.name);
    assert.match(config.targets[0]!.command, /kubectl set image .*"\$IMAGE_REF"/);

    const dockerfile = await read('deploy/kubernetes/registry-agent.Dockerfile');
    assert.match(dockerfile, /COPY --from=kubectl \/bin\/kubectl \/usr\/local\/bin\/kubectl/);
    assert.match(dockerfile, new RegExp(`-t ${container.image.replace(/[.]/g, '\\.')}`), 'the image the manifest runs is the one the Dockerfile builds');
  });
});

describe('container image', () => {
  test('the agent\'s default state directory is one the image creates for its user', async () => {
    const runtime = (await read('Dockerfile')).split(/\nFROM /).at(-1)!;
    const env = /^ENV STATE_DIRECTORY=(\S+)$/m.exec(runtime);
    assert.ok(env, 'STATE_DIRECTORY is set');
    assert.equal(env[1], '/var/lib/registry-agent');
    assert.match(runtime, /mkdir -p [^\n]*\/var\/lib\/registry-agent/);
    assert.match(runtime, /chown node:node [^\n]*\/var\/lib\/registry-agent/);
    assert.equal(defaultStateFile({ STATE_DIRECTORY: env[1] }), '/var/lib/registry-agent/events.jsonl');
  });
});
