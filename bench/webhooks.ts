/**
 * The webhook series (issue 16.8): the registry process (built, default webhook settings) and a
 * fast receiver on loopback, in this process so that "acknowledged" and "delivered" are read on
 * one clock.
 * - A CI burst: 200 pushes from 8 parallel clients over 20 repositories; the time from each
 *   push's manifest PUT answer to its delivery arriving: median and p99 (target p99 < 100 ms).
 * - Single pushes, one at a time: median (target < 50 ms).
 * - Throughput: events queued while the subscription is paused, then resumed; deliveries per
 *   second until every one arrived (target >= 1,000/s), with per-repository order kept and
 *   nothing lost or duplicated (checked, not just measured).
 *
 *   npm run bench                                # as part of the whole benchmark
 *   node --import tsx bench/webhooks.ts [--quick]  # this series alone (builds dist/ first)
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { cpuSeconds, startOurs, type BenchServer } from './lib/servers.js';

export interface WebhookResult {
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  target: string;
  value: number;
}

interface Arrival {
  id: string;
  repository: string;
  tag: string;
  at: number;
}

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

/** A receiver that answers 204 at once (keep-alive) and notes when each event arrived. */
async function startReceiver(): Promise<{ url: string; arrivals: Arrival[]; close(): Promise<void> }> {
  const arrivals: Arrival[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const at = performance.now();
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string; repository: string; tag: string };
      arrivals.push({ id: event.id, repository: event.repository, tag: event.tag, at });
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const digestOf = (bytes: string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function expectStatus(response: Response, status: number, what: string): Promise<void> {
  if (response.status !== status) throw new Error(`${what}: ${response.status} ${await response.text()}`);
}

/** Pushes a one-layer image (config and layer unique to `seed`); returns when the manifest PUT was answered, and its manifest. */
async function pushImage(base: string, repository: string, tag: string, seed: string): Promise<{ ackedAt: number; manifest: string }> {
  const blob = async (content: string) => {
    const digest = digestOf(content);
    await expectStatus(await fetch(`${base}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: content }), 201, 'blob');
    return { digest, size: Buffer.byteLength(content) };
  };
  const config = await blob(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = await blob(`layer of ${seed}`);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
  });
  return { ackedAt: await putManifest(base, repository, tag, manifest), manifest };
}

async function putManifest(base: string, repository: string, tag: string, manifest: string): Promise<number> {
  const response = await fetch(`${base}/v2/${repository}/manifests/${tag}`, { method: 'PUT', headers: { 'Content-Type': MANIFEST_TYPE }, body: manifest });
  const ackedAt = performance.now();
  await expectStatus(response, 201, 'manifest');
  return ackedAt;
}

async function api(base: string, method: string, apiPath: string, body?: unknown): Promise<any> {
  const response = await fetch(`${base}${apiPath}`, { method, headers: { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status >= 300) throw new Error(`${method} ${apiPath}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Push-acknowledged → delivered, in ms, for pushes made by `clients` parallel clients. */
async function burst(base: string, receiver: Awaited<ReturnType<typeof startReceiver>>, label: string, pushes: number, clients: number, repositories: number): Promise<number[]> {
  const acked = new Map<string, number>();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let n = client; n < pushes; n += clients) {
        const repository = `bench/${label}${n % repositories}`;
        const tag = `v${n}`;
        acked.set(`${repository}:${tag}`, (await pushImage(base, repository, tag, `${label}-${n}`)).ackedAt);
      }
    }),
  );
  await until(() => [...acked.keys()].every((key) => receiver.arrivals.some((a) => `${a.repository}:${a.tag}` === key)), `${label}: every delivery`, 60_000);
  return [...acked].map(([key, ackedAt]) => Math.max(0, receiver.arrivals.find((a) => `${a.repository}:${a.tag}` === key)!.at - ackedAt));
}

export interface WebhookSeriesOptions {
  /** Settings added to the registry's (bench/postgres.ts: metadata on PostgreSQL). */
  env?: Record<string, string>;
  /** Names the rows apart ("PG: "). */
  prefix?: string;
  /** CPU seconds used so far by the database server, when it runs beside the registry: adds its CPU per delivery. */
  databaseCpuSeconds?: () => Promise<number>;
}

export async function runWebhookSeries(work: string, quick: boolean, options: WebhookSeriesOptions = {}): Promise<WebhookResult[]> {
  const prefix = options.prefix ?? '';
  const receiver = await startReceiver();
  const root = path.join(work, `${prefix.replace(/\W+/g, '-')}webhooks-root`);
  let server: BenchServer | undefined;
  try {
    server = await startOurs(root, options.env);
    const base = `http://${server.host}`;
    const subscription = await api(base, 'POST', '/api/v1/webhooks', { url: receiver.url, events: ['tag.created'] });

    const ciBurst = await burst(base, receiver, 'burst', quick ? 80 : 200, 8, 20);
    const single: number[] = [];
    for (let n = 0; n < (quick ? 10 : 30); n++) {
      const { ackedAt } = await pushImage(base, 'bench/single', `s${n}`, `single-${n}`);
      await until(() => receiver.arrivals.some((a) => a.repository === 'bench/single' && a.tag === `s${n}`), 'a single push', 10_000);
      single.push(Math.max(0, receiver.arrivals.find((a) => a.repository === 'bench/single' && a.tag === `s${n}`)!.at - ackedAt));
    }

    // Throughput: queue events while paused (20 repositories, tags of one image each), then resume.
    const perRepository = quick ? 25 : 100;
    await api(base, 'PATCH', `/api/v1/webhooks/${subscription.id}`, { state: 'paused' });
    const repositories = Array.from({ length: 20 }, (_, i) => `bench/flow${i}`);
    await Promise.all(
      repositories.map(async (repository) => {
        const { manifest } = await pushImage(base, repository, 't0', repository);
        for (let n = 1; n < perRepository; n++) await putManifest(base, repository, `t${n}`, manifest);
      }),
    );
    const total = repositories.length * perRepository;
    const pending = async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return Number(/^registry_webhook_deliveries\{state="pending"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    await until(async () => (await pending()) >= total, 'every event queued', 60_000);
    const before = receiver.arrivals.length;
    const cpuBefore = await cpuSeconds(server.pid);
    const databaseCpuBefore = await options.databaseCpuSeconds?.();
    const resumed = performance.now();
    await api(base, 'PATCH', `/api/v1/webhooks/${subscription.id}`, { state: 'active' });
    await until(() => receiver.arrivals.length - before >= total, 'every queued delivery', 120_000);
    const seconds = (receiver.arrivals.at(-1)!.at - resumed) / 1000;
    // CPU per delivery says what the rate would be on an idle core, whatever else the machine runs.
    const cpuPerDeliveryMs = ((await cpuSeconds(server.pid)) - cpuBefore) * 1000 / total;
    const databaseCpuAfter = await options.databaseCpuSeconds?.();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const flow = receiver.arrivals.slice(before);
    if (flow.length !== total || new Set(flow.map((a) => a.id)).size !== total) throw new Error(`throughput: ${flow.length} deliveries of ${total} events (lost or duplicated)`);
    for (const repository of repositories) {
      const tags = flow.filter((a) => a.repository === repository).map((a) => Number(a.tag.slice(1)));
      if (tags.some((tag, i) => tag !== i)) throw new Error(`throughput: ${repository} delivered out of order`);
    }

    return [
      { title: `${prefix}Webhook push→delivered, 200 pushes / 8 clients / 20 repositories, median`, unit: 'ms', better: 'lower', target: '—', value: percentile(ciBurst, 50) },
      { title: `${prefix}Webhook push→delivered, 200 pushes / 8 clients / 20 repositories, p99`, unit: 'ms', better: 'lower', target: '< 100 ms', value: percentile(ciBurst, 99) },
      { title: `${prefix}Webhook push→delivered, single pushes, median`, unit: 'ms', better: 'lower', target: '< 50 ms', value: percentile(single, 50) },
      { title: `${prefix}Webhook deliveries to a fast receiver (${total} queued, 20 repositories, order kept)`, unit: 'deliveries/s', better: 'higher', target: '≥ 1000/s', value: total / seconds },
      { title: `${prefix}Webhook deliveries: the registry process CPU per delivery in that backlog`, unit: 'ms', better: 'lower', target: '≤ 1 ms (1,000/s on one core)', value: cpuPerDeliveryMs },
      ...(databaseCpuBefore === undefined || databaseCpuAfter === undefined
        ? []
        : [{ title: `${prefix}Webhook deliveries: the database server's CPU per delivery in that backlog`, unit: 'ms', better: 'lower' as const, target: '—', value: ((databaseCpuAfter - databaseCpuBefore) * 1000) / total }]),
    ];
  } finally {
    await server?.stop();
    await receiver.close();
    await fs.rm(root, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  await promisify(execFile)('npm', ['run', 'build'], { cwd: path.resolve(import.meta.dirname, '..'), timeout: 300_000 });
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-bench-webhooks-'));
  try {
    for (const result of await runWebhookSeries(work, quick)) console.log(`${result.title}: ${result.value.toFixed(1)} ${result.unit} (target ${result.target})`);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
