/**
 * End-to-end webhooks: the real registry process, pushes with skopeo, deliveries to real
 * listeners on loopback, the registry killed with SIGKILL right after a push, and the
 * `registry-agent` process deploying what was pushed.
 *
 * The cases run in order against one server (the SIGKILL case restarts it over the same
 * storage). Subscriptions are made through the admin API, open here because auth is off.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { verifySignature } from '../../src/webhooks/signing.js';
import { buildOciImage, buildOciIndex, seededBytes } from '../helpers/oci-layout.js';
import { PROJECT_ROOT, startServer, type ServerProcess } from '../helpers/server-process.js';
import { hasCommand, type RunResult } from '../helpers/tools.js';
import { skopeoRunner } from '../helpers/skopeo.js';
import { startListener, waitFor, type Listener, type Received } from '../webhooks/support.js';

const hasSkopeo = hasCommand('skopeo');
if (!hasSkopeo) console.log('webhooks skopeo e2e skipped: skopeo is not installed');

const SECRET = 'e2e-webhook-secret-0123456789';
const SERVER_ENV = {
  REGISTRY_AUTH_MODE: 'none',
  REGISTRY_WEBHOOKS_INITIAL_BACKOFF_MS: '100',
  REGISTRY_WEBHOOKS_MAX_BACKOFF_MS: '400',
};

describe('webhooks with skopeo and the registry process', { skip: hasSkopeo ? false : 'skopeo is not installed' }, () => {
  let work: string;
  let root: string;
  let server: ServerProcess;
  let listener: Listener;
  let skopeo: (...args: string[]) => Promise<RunResult>;
  const latencies: number[] = [];

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'webhooks-e2e-'));
    root = path.join(work, 'storage');
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));
    listener = await startListener();
    server = await startServer({ root, env: SERVER_ENV });
    await subscribe({ id: 'all', url: `${listener.url}/all`, secret: SECRET });
    await subscribe({ id: 'v-only', url: `${listener.url}/v`, secret: SECRET, repositories: ['demo/*'], tags: ['v*'] });
  });

  after(async () => {
    await server?.stop();
    await listener?.close();
    if (latencies.length) {
      const sorted = [...latencies].sort((a, b) => a - b);
      console.log(`push-to-delivery latency (commit → listener), ms: ${sorted.join(', ')}; median ${sorted[Math.floor(sorted.length / 2)]}`);
    }
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  async function api(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${server.url}${url}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  async function subscribe(fields: Record<string, unknown>): Promise<void> {
    const created = await api('POST', '/api/v1/webhooks', fields);
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }

  async function push(seed: string, target: string): Promise<string> {
    const image = await buildOciImage(path.join(work, `image-${seed}`), [{ file: 'app.bin', content: seededBytes(seed, 16 * 1024) }]);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${image.dir}:latest`, `docker://${server.host}/${target}`);
    return image.manifestDigest;
  }

  const deliveries = (route: string, type: string, repository: string, tag: string) =>
    listener.received.filter((r) => r.url === route && r.json?.type === type && r.json?.repository === repository && r.json?.tag === tag);

  function record(received: Received): void {
    latencies.push(received.at - Date.parse(received.json.timestamp));
  }

  it('a skopeo push of a new tag delivers tag.created, signed', async () => {
    const digest = await push('first', 'demo/app:latest');
    const [event] = await waitFor(() => deliveries('/all', 'tag.created', 'demo/app', 'latest').length > 0 && deliveries('/all', 'tag.created', 'demo/app', 'latest'), 'tag.created');
    record(event!);
    assert.ok(verifySignature(SECRET, event!.body, event!.headers['x-registry-signature-256'] as string), 'valid signature');
    assert.ok(verifySignature(SECRET, event!.body, event!.headers['x-signature'] as string), 'valid Flux signature');
    assert.equal(event!.json.digest, digest);
    assert.equal(event!.json.registry, server.host);
    assert.equal(event!.json.reference, `${server.host}/demo/app:latest@${digest}`);
    assert.equal(event!.json.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(event!.headers['x-registry-event-id'], event!.json.id);
  });

  it('pushing the same tag with new content delivers tag.updated with the previous digest', async () => {
    const previous = deliveries('/all', 'tag.created', 'demo/app', 'latest')[0]!.json.digest;
    const digest = await push('second', 'demo/app:latest');
    const [event] = await waitFor(() => deliveries('/all', 'tag.updated', 'demo/app', 'latest').length > 0 && deliveries('/all', 'tag.updated', 'demo/app', 'latest'), 'tag.updated');
    record(event!);
    assert.equal(event!.json.digest, digest);
    assert.equal(event!.json.previousDigest, previous);
    assert.notEqual(digest, previous);
  });

  it('filters hold: the v* subscription gets only v tags of demo/*', async () => {
    await push('release', 'demo/app:v1.0.0');
    await push('other-repo', 'elsewhere/app:v1.0.0');
    const [event] = await waitFor(() => deliveries('/v', 'tag.created', 'demo/app', 'v1.0.0').length > 0 && deliveries('/v', 'tag.created', 'demo/app', 'v1.0.0'), 'v1.0.0 on /v');
    record(event!);
    await waitFor(() => deliveries('/all', 'tag.created', 'elsewhere/app', 'v1.0.0').length > 0, 'the other repository on /all');
    const log = await api('GET', '/api/v1/webhooks/v-only/deliveries');
    assert.deepEqual(
      log.body.deliveries.map((d: { eventType: string; repository: string; payload: { tag: string } }) => `${d.eventType} ${d.repository}:${d.payload.tag}`),
      ['tag.created demo/app:v1.0.0'],
    );
    assert.deepEqual(listener.received.filter((r) => r.url === '/v').map((r) => r.json.tag), ['v1.0.0']);
  });

  it('a multi-platform index is one event carrying its platforms', async () => {
    const index = await buildOciIndex(path.join(work, 'multi'), [
      { architecture: 'amd64', layers: [{ file: 'a.bin', content: seededBytes('multi-amd64', 8 * 1024) }] },
      { architecture: 'arm64', layers: [{ file: 'a.bin', content: seededBytes('multi-arm64', 8 * 1024) }] },
    ]);
    await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${index.dir}:latest`, `docker://${server.host}/demo/multi:v2`);
    const [event] = await waitFor(() => deliveries('/all', 'tag.created', 'demo/multi', 'v2').length > 0 && deliveries('/all', 'tag.created', 'demo/multi', 'v2'), 'index event');
    record(event!);
    assert.equal(event!.json.digest, index.indexDigest);
    assert.deepEqual(event!.json.platforms, [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    const all = await api('GET', '/api/v1/webhooks/all/deliveries?limit=500');
    const forRepo = all.body.deliveries.filter((d: { repository: string }) => d.repository === 'demo/multi');
    assert.deepEqual(forRepo.map((d: { eventType: string }) => d.eventType).sort(), ['repository.created', 'tag.created'], 'no event per child manifest');
  });

  it('with the listener down, deliveries retry and arrive when it returns', async () => {
    const probe = await startListener();
    const port = probe.port;
    await probe.close();
    await subscribe({ id: 'flaky', url: `http://127.0.0.1:${port}/hook`, secret: SECRET, repositories: ['flaky/*'], events: ['tag.created'] });
    const digest = await push('flaky', 'flaky/app:1');
    const pending = await waitFor(async () => {
      const log = await api('GET', '/api/v1/webhooks/flaky/deliveries');
      const [delivery] = log.body.deliveries;
      return delivery && delivery.attempts >= 3 && delivery;
    }, 'several refused attempts');
    assert.equal(pending.state, 'pending');
    assert.match(pending.lastError, /ECONNREFUSED/);

    const back = await startListener(port);
    try {
      const [event] = await waitFor(() => back.received.length > 0 && back.received, 'delivery once the listener is back');
      assert.equal(event!.json.id, pending.eventId);
      assert.equal(event!.json.digest, digest);
      assert.ok(Number(event!.headers['x-registry-attempt']) > pending.attempts, 'a later attempt of the same delivery');
      assert.ok(verifySignature(SECRET, event!.body, event!.headers['x-registry-signature-256'] as string));
      await waitFor(async () => (await api('GET', '/api/v1/webhooks/flaky/deliveries')).body.deliveries[0].state === 'delivered', 'delivered state');
    } finally {
      await back.close();
    }
  });

  it('the registry killed with SIGKILL right after a push: after restart the event is delivered, same id', async () => {
    const crash = await startListener();
    try {
      let up = false;
      crash.respond = () => (up ? { status: 200 } : { status: 503 });
      await subscribe({ id: 'crash', url: `${crash.url}/hook`, secret: SECRET, repositories: ['crash/*'], events: ['tag.created'] });
      const digest = await push('crash', 'crash/app:1');
      // skopeo has exited: the manifest PUT was acknowledged. Kill at once, no shutdown.
      server.child.kill('SIGKILL');
      await new Promise<void>((resolve) => (server.child.exitCode !== null || server.child.signalCode !== null ? resolve() : server.child.once('exit', () => resolve())));
      const before = crash.received.length;

      up = true;
      server = await startServer({ root, env: SERVER_ENV });
      const event = await waitFor(() => crash.received.slice(before).find((r) => r.json?.repository === 'crash/app'), 'delivery after restart');
      assert.equal(event.json.type, 'tag.created');
      assert.equal(event.json.digest, digest);
      assert.ok(verifySignature(SECRET, event.body, event.headers['x-registry-signature-256'] as string));
      // Same id as any attempt before the kill, and one delivery in the registry's record.
      assert.equal(new Set(crash.received.filter((r) => r.json?.repository === 'crash/app').map((r) => r.json.id)).size, 1);
      const log = await waitFor(async () => {
        const res = await api('GET', '/api/v1/webhooks/crash/deliveries');
        return res.body.deliveries.length > 0 && res.body.deliveries[0].state === 'delivered' && res.body.deliveries;
      }, 'delivered state after restart');
      assert.equal(log.length, 1, 'exactly one delivery of the event');
      assert.equal(log[0].eventId, event.json.id);
      const db = new Database(path.join(root, 'registry.db'), { readonly: true, fileMustExist: true });
      try {
        const outbox = db.prepare("SELECT id FROM events WHERE repository = 'crash/app' AND type = 'tag.created'").pluck().all();
        assert.deepEqual(outbox, [event.json.id], 'exactly one outbox event, with the delivered id');
      } finally {
        db.close();
      }
    } finally {
      await crash.close();
    }
  });

  it('the registry-agent deploys what skopeo pushed', async () => {
    const out = path.join(work, 'agent-deploys.txt');
    const agent = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'registry-agent.js')], {
      cwd: work,
      env: {
        PATH: process.env.PATH,
        HOME: work,
        DEPLOY_AGENT_LISTEN: '127.0.0.1:0',
        DEPLOY_AGENT_PATH: '/hooks/registry',
        DEPLOY_AGENT_SECRET: SECRET,
        DEPLOY_AGENT_STATE_FILE: path.join(work, 'agent-events.jsonl'),
        DEPLOY_AGENT_COMMAND: `printf '%s %s\\n' "$REGISTRY_EVENT_TYPE" "$IMAGE_REF" >> '${out}'`,
        DEPLOY_AGENT_REPOSITORIES: 'deploy/*',
        DEPLOY_AGENT_TAGS: 'semver',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    let output = '';
    agent.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    agent.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    try {
      const url = await waitFor(() => {
        const line = output.split('\n').find((l) => l.includes('"agent listening"'));
        return line ? (JSON.parse(line) as { url: string }).url : null;
      }, 'the agent to listen', 20_000);
      await subscribe({ id: 'agent', url, secret: SECRET, repositories: ['deploy/*'], events: ['tag.created', 'tag.updated'] });
      await push('not-semver', 'deploy/web:latest');
      const digest = await push('deploy', 'deploy/web:2.0.0');
      const readLines = async () => (await fs.readFile(out, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      await waitFor(async () => (await readLines()).length > 0, 'the deploy command');
      await waitFor(() => output.includes('"deploy succeeded"'), 'the outcome in the agent log');
      assert.deepEqual(await readLines(), [`tag.created ${server.host}/deploy/web:2.0.0@${digest}`], 'only the semver tag deployed');
      const redelivered = await api('POST', '/api/v1/webhooks/agent/redeliver', {
        eventId: (await api('GET', '/api/v1/webhooks/agent/deliveries')).body.deliveries.find((d: { payload: { tag: string } }) => d.payload.tag === '2.0.0').eventId,
      });
      assert.equal(redelivered.status, 202);
      await waitFor(() => output.includes('"duplicate delivery dropped"'), 'the agent to drop the redelivery');
      assert.equal((await readLines()).length, 1, 'a redelivered event does not deploy twice');
    } finally {
      if (agent.exitCode === null) agent.kill('SIGTERM');
      const timer = setTimeout(() => agent.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  });
});

