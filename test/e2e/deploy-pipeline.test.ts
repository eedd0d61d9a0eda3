/**
 * The whole deploy pipeline against real parts only (issue 16, "Proof with the real Docker
 * engine"; docs/agent.md, "The whole pipeline"): a real dockerd, the registry process with token
 * auth, `docker build` of a service with a HEALTHCHECK and `docker push` as a CI robot, a
 * subscription with `tags: ["semver:stable"]` delivering to a real `registry-agent` process on
 * loopback, whose target runs deploy/agent/docker-deploy.sh: `docker pull "$IMAGE_REF"` as a
 * pull-only robot (its own DOCKER_CONFIG) on the same engine, the release started beside the
 * running one, and the old container replaced once the new one is healthy (exit 3 when it is not).
 *
 * The cases run in order on one engine, one registry and one agent. Local images are removed
 * after each push, so every container runs what the agent pulled from the registry.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCleanups, spawnAgent, type AgentProcess } from '../agent/support.js';
import { adminApi } from '../helpers/admin-api.js';
import { buildServiceImage, containerImageDigests, dockerEngineForSuite, dockerLogin, pushImage, waitForHealthy, type DockerEngine } from '../helpers/docker.js';
import { PROJECT_ROOT, startServer, type ServerProcess } from '../helpers/server-process.js';
import { run } from '../helpers/tools.js';

const ADMIN_PASSWORD = 'pipeline-e2e-admin-password';
const SECRET = 'pipeline-e2e-webhook-secret-0123456789';
const STATUS_TOKEN = 'pipeline-e2e-status-token-0123';
const AGENT_NAME = 'app-host-1';
const REPOSITORY = 'team/svc';
const SUBSCRIPTION = 'svc-deploy';
const SERVER_ENV = { REGISTRY_AUTH: 'token', REGISTRY_ADMIN_PASSWORD: ADMIN_PASSWORD };
const DEPLOY_SCRIPT = path.join(PROJECT_ROOT, 'deploy', 'agent', 'docker-deploy.sh');

const suite = await dockerEngineForSuite('deploy pipeline e2e');

describe('the deploy pipeline: docker push as CI, webhook, registry-agent, docker run of the exact digest', { skip: suite.skip }, () => {
  const engine = suite.engine as DockerEngine;
  const docker = async (...args: string[]) => (await engine.docker(args)).stdout.trim();
  let work: string;
  let server: ServerProcess;
  let agent: AgentProcess;
  let registry: string;
  /** The pushed digest of each release, by tag. */
  const digests: Record<string, string> = {};
  /** Push committed → the deploy command done, the release healthy, per release. */
  const timings = new Map<string, string>();

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'pipeline-e2e-'));
    server = await startServer({ env: SERVER_ENV });
    registry = server.host;
    const ci = await api<{ secret: string }>('POST', '/api/v1/robots', { name: 'ci', grants: [{ pattern: REPOSITORY, actions: ['pull', 'push'] }] });
    const puller = await api<{ secret: string }>('POST', '/api/v1/robots', { name: 'deployer', grants: [{ pattern: REPOSITORY, actions: ['pull'] }] });
    await dockerLogin(engine, registry, 'robot+ci', ci.secret);

    // The agent's docker: the same engine, its own client config, logged in as the pull-only robot.
    const agentDockerConfig = path.join(work, 'agent-docker');
    await fs.mkdir(agentDockerConfig, { mode: 0o700 });
    const agentDockerEnv = { DOCKER_HOST: engine.host, DOCKER_CONFIG: agentDockerConfig };
    await run('docker', ['login', '--username', 'robot+deployer', '--password-stdin', registry], { env: { ...engine.env, ...agentDockerEnv }, input: puller.secret });

    agent = await spawnAgent(work, {
      name: AGENT_NAME,
      listen: '127.0.0.1:0',
      path: '/hooks/registry',
      secret: SECRET,
      stateFile: path.join(work, 'agent-state', 'events.jsonl'),
      status: { token: STATUS_TOKEN },
      targets: [
        {
          name: 'svc',
          repositories: [REPOSITORY],
          tags: ['semver:stable'],
          command: DEPLOY_SCRIPT,
          env: { ...agentDockerEnv, SERVICE_NAME: 'svc', DOCKER_RUN_OPTIONS: '--network=none', HEALTH_TIMEOUT_SECONDS: '30' },
          timeoutSeconds: 120,
          retry: { attempts: 1 },
        },
      ],
    });
    await api('POST', '/api/v1/webhooks', {
      id: SUBSCRIPTION,
      url: agent.endpoint,
      secret: SECRET,
      repositories: [REPOSITORY],
      tags: ['semver:stable'],
      events: ['tag.created', 'tag.updated'],
    });
  });

  after(async () => {
    if (timings.size) console.log(`push committed → new release running healthy: ${[...timings.values()].join('; ')}`);
    // The engine first (it removes every container): a deploy still running after a failed test
    // then fails at its next docker command, and the agent's graceful stop, which waits for it, is quick.
    await engine.stop();
    await agent?.stop('SIGTERM');
    await runCleanups();
    await server?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const api = <T = any>(method: string, route: string, body?: unknown) => adminApi(server, ADMIN_PASSWORD)(method, route, body) as Promise<T>;

  /** Polls (every 250 ms, bounded) until `check` returns something truthy. */
  async function eventually<T>(check: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- agent ---\n${agent.output().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** CI's part: build the release, push it as the robot, forget the local image (the deploy must pull it). */
  async function release(tag: string, options: { unhealthy?: boolean } = {}): Promise<string> {
    const reference = `${registry}/${REPOSITORY}:${tag}`;
    await buildServiceImage(engine, reference, { release: tag, ...options });
    digests[tag] = await pushImage(engine, reference);
    await docker('rmi', reference);
    return digests[tag]!;
  }

  /** `registry webhook delivery ID N`, the CLI with the server's own settings and storage. */
  async function cliDelivery(id: number): Promise<string> {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...SERVER_ENV, REGISTRY_STORAGE_ROOT: server.root };
    return (await run(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'registry.js'), 'webhook', 'delivery', SUBSCRIPTION, String(id)], { env, cwd: PROJECT_ROOT })).stdout;
  }

  const deliveries = async () => (await api<{ deliveries: any[] }>('GET', `/api/v1/webhooks/${SUBSCRIPTION}/deliveries`)).deliveries;
  const deliveryOf = (tag: string) => eventually(async () => (await deliveries()).find((d) => d.payload.tag === tag), `the delivery of ${tag}`);
  /** The delivery's record once the agent reported an outcome. */
  const settledDelivery = (id: number) =>
    eventually(async () => {
      const detail = await api('GET', `/api/v1/webhooks/${SUBSCRIPTION}/deliveries/${id}`);
      return ['succeeded', 'failed'].includes(detail.deploy) && detail;
    }, `a deploy outcome on delivery ${id}`);
  const timelineEvent = async (tag: string) =>
    (await api<{ events: any[] }>('GET', `/api/v1/events?repository=${REPOSITORY}`)).events.find((e) => e.tag === tag && e.type.startsWith('tag.'));
  const running = async () => ({ id: await docker('inspect', '--format', '{{.Id}}', 'svc'), digests: await containerImageDigests(engine, 'svc') });
  const containerNames = async () => (await docker('ps', '-a', '--format', '{{.Names}}')).split('\n').filter(Boolean).sort();

  function assertSucceeded(detail: any, digest: string): void {
    assert.equal(detail.state, 'delivered');
    assert.equal(detail.deploy, 'succeeded', JSON.stringify(detail.deploys));
    assert.equal(detail.deploys.length, 1);
    const [report] = detail.deploys;
    assert.equal(report.agent, AGENT_NAME);
    assert.equal(report.status, 'succeeded');
    assert.equal(report.exitCode, 0);
    assert.equal(report.attempt, 1);
    assert.match(report.output, new RegExp(`svc: running ${registry}/${REPOSITORY}:[^@]+@${digest}`));
    timings.set(detail.payload.tag, `${detail.payload.tag}: ${Date.parse(report.finishedAt) - Date.parse(detail.payload.timestamp)} ms (deploy command ${report.durationMs} ms)`);
  }

  let firstContainer: string;

  it('1. a pushed release reaches the agent, which runs exactly the pushed digest, healthy', async () => {
    const digest = await release('1.0.0');
    const delivery = await deliveryOf('1.0.0');
    assert.equal(delivery.payload.digest, digest, 'the event names the digest the push reported');
    assert.equal(delivery.payload.reference, `${registry}/${REPOSITORY}:1.0.0@${digest}`);
    assert.equal(delivery.payload.actor.kind, 'robot');
    assertSucceeded(await settledDelivery(delivery.id), digest);

    await waitForHealthy(engine, 'svc', 30_000);
    const { id, digests: runningDigests } = await running();
    assert.deepEqual(runningDigests, [`${registry}/${REPOSITORY}@${digest}`]);
    assert.equal(await docker('exec', 'svc', 'cat', '/www/release.txt'), '1.0.0');
    assert.equal(await docker('inspect', '--format', '{{index .Config.Labels "dev.harbormaster.deploy.event-id"}}', 'svc'), delivery.eventId);
    firstContainer = id;
  });

  let secondContainer: string;

  it('2. a second release replaces it: the old container is gone, the new one healthy on the new digest', async () => {
    const digest = await release('1.1.0');
    assert.notEqual(digest, digests['1.0.0']);
    const delivery = await deliveryOf('1.1.0');
    assert.equal(delivery.payload.digest, digest);
    assertSucceeded(await settledDelivery(delivery.id), digest);

    await waitForHealthy(engine, 'svc', 30_000);
    const { id, digests: runningDigests } = await running();
    assert.notEqual(id, firstContainer);
    assert.deepEqual(runningDigests, [`${registry}/${REPOSITORY}@${digest}`]);
    assert.deepEqual(await containerNames(), ['svc'], 'the old container is removed');
    await assert.rejects(engine.docker(['inspect', firstContainer]), /No such object/);
    assert.equal(await docker('exec', 'svc', 'cat', '/www/release.txt'), '1.1.0');
    secondContainer = id;
  });

  it('3. a pre-release is not delivered (semver:stable): no delivery, no deploy, the container unchanged', async () => {
    const digest = await release('1.2.0-rc.1');
    const event = await timelineEvent('1.2.0-rc.1');
    assert.equal(event?.digest, digest, 'the push is in the events timeline');
    // The dispatcher judges outbox events in order; once none is left, this one was judged.
    const metrics = await server.metricsWhen((m) => m.registry_webhook_outbox_backlog === 0, 10_000);
    assert.equal(metrics.registry_webhook_outbox_backlog, 0);
    assert.deepEqual((await timelineEvent('1.2.0-rc.1')).deliveries, [], 'no delivery was made for it');
    assert.equal((await deliveries()).filter((d) => d.payload.tag === '1.2.0-rc.1').length, 0);
    const status = await fetch(`${agent.url}/status`, { headers: { Authorization: `Bearer ${STATUS_TOKEN}` }, signal: AbortSignal.timeout(10_000) });
    assert.equal(status.status, 200);
    const seen = ((await status.json()) as { deploys: Array<{ tag: string; status: string }> }).deploys;
    assert.deepEqual(seen.map((d) => [d.tag, d.status]), [['1.1.0', 'succeeded'], ['1.0.0', 'succeeded']]);
    assert.equal((await running()).id, secondContainer);
    assert.deepEqual((await running()).digests, [`${registry}/${REPOSITORY}@${digests['1.1.0']}`]);
  });

  it('4. a release that comes up unhealthy fails its deploy (exit 3): failed on the delivery, in the CLI and the timeline', async () => {
    const digest = await release('2.0.0', { unhealthy: true });
    const delivery = await deliveryOf('2.0.0');
    assert.equal(delivery.payload.digest, digest);
    const detail = await settledDelivery(delivery.id);
    assert.equal(detail.state, 'delivered', 'the webhook itself was delivered');
    assert.equal(detail.deploy, 'failed', JSON.stringify(detail.deploys));
    const [report] = detail.deploys;
    assert.equal(report.agent, AGENT_NAME);
    assert.equal(report.status, 'failed');
    assert.equal(report.exitCode, 3);
    assert.equal(report.attempt, 1);
    assert.ok(Number.isInteger(report.durationMs) && report.durationMs > 0);
    assert.match(report.output, /svc: .*2\.0\.0@sha256:[0-9a-f]{64} is unhealthy; keeping the running release/);

    const cli = await cliDelivery(delivery.id);
    assert.match(cli, /^deploy: failed$/m);
    assert.match(cli, new RegExp(`^  ${AGENT_NAME}  failed  attempt=1  exit=3  `, 'm'));
    const tail = cli.split('\n').filter((line) => line.startsWith('    | '));
    assert.match(tail.at(-1)!, /^    \| svc: .*2\.0\.0@sha256:[0-9a-f]{64} is unhealthy; keeping the running release$/, `the output ends with why:\n${cli}`);

    const event = await timelineEvent('2.0.0');
    assert.equal(event.digest, digest);
    assert.deepEqual(
      event.deploys.map((d: any) => [d.deliveryId, d.subscriptionId, d.agent, d.status, d.exitCode]),
      [[delivery.id, SUBSCRIPTION, AGENT_NAME, 'failed', 3]],
    );

    // The script kept the running release and removed the unhealthy one.
    assert.deepEqual(await containerNames(), ['svc']);
    assert.equal((await running()).id, secondContainer);
    await waitForHealthy(engine, 'svc', 10_000);
  });

  it('5. the successful deploys show succeeded with the agent name, on the deliveries, the timeline and the metrics', async () => {
    for (const tag of ['1.0.0', '1.1.0']) {
      const delivery = (await deliveries()).find((d) => d.payload.tag === tag);
      const detail = await api('GET', `/api/v1/webhooks/${SUBSCRIPTION}/deliveries/${delivery.id}`);
      assertSucceeded(detail, digests[tag]!);
      const cli = await cliDelivery(delivery.id);
      assert.match(cli, /^deploy: succeeded$/m);
      assert.match(cli, new RegExp(`^  ${AGENT_NAME}  succeeded  attempt=1  exit=0  `, 'm'));
      const event = await timelineEvent(tag);
      assert.deepEqual(
        event.deploys.map((d: any) => [d.deliveryId, d.agent, d.status, d.exitCode]),
        [[delivery.id, AGENT_NAME, 'succeeded', 0]],
      );
    }
    const metrics = await server.metrics();
    assert.equal(metrics['registry_webhook_deploys{status="succeeded"}'], 2);
    assert.equal(metrics['registry_webhook_deploys{status="failed"}'], 1);
  });
});
