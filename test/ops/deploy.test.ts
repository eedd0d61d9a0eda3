/**
 * The shipping files, read as a build would read them (there is no container engine here):
 * the Dockerfile's runtime stage, docker-compose.yml and the Kubernetes example agree with
 * the code — the entry points they start exist, the health endpoints they probe are served,
 * the settings they pass are valid.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';

const read = (file: string) => fs.readFile(path.join(PROJECT_ROOT, file), 'utf8');
const exists = (file: string) => fs.stat(path.join(PROJECT_ROOT, file)).then(() => true, () => false);
/** A dist/ path the build (tsc -b tsconfig.build.json: src → dist) produces from src/. */
const sourceOf = (dist: string) => dist.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');

describe('Dockerfile', () => {
  it('builds on Node 20 slim in two stages and runs unprivileged with a volume, port 5000 and a health check', async () => {
    const text = await read('Dockerfile');
    assert.match(text, /^ARG NODE_IMAGE=node:20-[a-z]+-slim$/m);
    assert.equal((text.match(/^FROM /gm) ?? []).length, 2, 'a build stage and a runtime stage');
    assert.match(text, /RUN npm ci /);
    assert.match(text, /npm run build/);
    assert.match(text, /npm prune --omit=dev/);
    const runtime = text.slice(text.lastIndexOf('\nFROM '));
    assert.match(runtime, /^USER node$/m);
    assert.match(runtime, /^VOLUME \["\/var\/lib\/registry"\]$/m);
    assert.match(runtime, /^EXPOSE 5000$/m);
    assert.match(runtime, /REGISTRY_STORAGE_ROOT=\/var\/lib\/registry/);
    assert.doesNotMatch(runtime, /COPY (--from=build \/app\/)?src/, 'no sources in the runtime image');
    const health = /^HEALTHCHECK (.*)\\\n\s+CMD \["node", "([^"]+)"\]$/m.exec(runtime);
    assert.ok(health, 'a HEALTHCHECK running node');
    assert.match(health[1]!, /--start-period=\d+s/);
    const cmd = /^CMD (\[.*\])$/m.exec(runtime);
    assert.ok(cmd, 'a CMD in exec form');
    const command = JSON.parse(cmd[1]!) as string[];
    const { scripts } = JSON.parse(await read('package.json')) as { scripts: { start: string } };
    assert.deepEqual(command, scripts.start.split(' '), 'the image starts the registry as `npm start` does');
    for (const entry of [health[2]!, command.at(-1)!]) assert.ok(await exists(sourceOf(entry)), `${entry} is built from ${sourceOf(entry)}`);
    for (const copied of runtime.matchAll(/^COPY (?!--from)(\S+) /gm)) assert.ok(await exists(copied[1]!), `${copied[1]} exists for COPY`);
    const build = JSON.parse(await read('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    assert.deepEqual([build.compilerOptions.rootDir, build.compilerOptions.outDir], ['src', 'dist']);
  });

  it('keeps local data and dependencies out of the build context', async () => {
    const ignore = (await read('.dockerignore')).split('\n');
    for (const entry of ['node_modules', 'storage', 'dist']) assert.ok(ignore.includes(entry), entry);
  });
});

describe('docker-compose.yml', () => {
  it('runs the registry with a deploy agent subscribed to it', async () => {
    const compose = YAML.parse(await read('docker-compose.yml')) as {
      services: Record<string, { command?: string[]; ports?: string[]; environment: Record<string, string>; volumes?: string[]; depends_on?: Record<string, { condition: string }> }>;
    };
    const { registry, agent } = compose.services;
    assert.ok(registry && agent);
    assert.deepEqual(registry.ports, ['5000:5000']);
    assert.ok(registry.volumes?.some((volume) => volume.endsWith(':/var/lib/registry')));
    assert.deepEqual(agent.command, ['registry-agent']);
    assert.equal(agent.depends_on?.registry?.condition, 'service_healthy');
    const mounted = registry.volumes!.find((volume) => volume.includes('/etc/registry/registry.yaml'))!.split(':')[0]!;
    const config = loadConfig({ file: path.join(PROJECT_ROOT, mounted), env: { REGISTRY_ADMIN_PASSWORD: 'change-me-please' } });
    const subscription = config.webhooks.subscriptions[0];
    assert.ok(subscription, 'the compose config subscribes the agent');
    const agentPort = agent.environment.DEPLOY_AGENT_LISTEN!.split(':').pop();
    assert.equal(new URL(subscription.url).host, `agent:${agentPort}`);
  });
});

describe('Kubernetes example', () => {
  it('has a Deployment probing /healthz and /readyz, a PersistentVolumeClaim and a Service', async () => {
    const docs = YAML.parseAllDocuments(await read('deploy/kubernetes/registry.yaml')).map((doc) => doc.toJS() as Record<string, any>);
    const kinds = docs.map((doc) => doc.kind);
    for (const kind of ['Deployment', 'PersistentVolumeClaim', 'Service']) assert.ok(kinds.includes(kind), kind);
    const deployment = docs.find((doc) => doc.kind === 'Deployment')!;
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.ports[0].containerPort, 5000);
    const claim = docs.find((doc) => doc.kind === 'PersistentVolumeClaim')!;
    assert.equal(deployment.spec.template.spec.volumes.find((v: any) => v.persistentVolumeClaim).persistentVolumeClaim.claimName, claim.metadata.name);
    const env = Object.fromEntries(container.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, String(e.value)]));
    loadConfig({ file: '/dev/null', env: { ...env, REGISTRY_ADMIN_PASSWORD: 'change-me-please' } });
    const grace = Number(deployment.spec.template.spec.terminationGracePeriodSeconds);
    assert.ok(grace > Number(env.REGISTRY_HTTP_SHUTDOWN_TIMEOUT_SECONDS), 'the pod is given longer than the shutdown deadline');
  });
});
