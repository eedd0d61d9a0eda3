/**
 * Side-by-side benchmark: this registry against CNCF distribution (Debian's docker-registry),
 * driven by the same real clients on loopback, alternating A B / B A over several rounds.
 * Prints, for each measure, the median of both, their ratio and the target.
 *
 *   npm run bench                 # full run (512 MiB layer, 5 rounds)
 *   npm run bench -- --quick      # smoke run (32 MiB layer, 1 round, short load tests)
 *   npm run bench -- --series s3  # only some series: push, load, scale, s3 (S3 on radosgw),
 *                                 # postgres (metadata on PostgreSQL), ui, webhooks
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { buildOciImage, seededBytes } from '../test/helpers/oci-layout.js';
import { buildLargeImage, buildManyLayerImage, folderBytes } from './lib/fixtures.js';
import { startTcpProxy } from '../test/helpers/tcp-proxy.js';
import { repositoryName, seedDistribution, seedOurs, tagName, type ScaleSpec } from './lib/seed.js';
import { cpuSeconds, startDistribution, startOurs, withPeakRss, type BenchServer } from './lib/servers.js';
import { uiRounds } from './ui.js';
import { s3Rounds } from './s3.js';
import { postgresRounds } from './postgres.js';
import { measureLargeLayer, measureLoad, measureLoadWithTokenAuth, type BenchKit, type Name, type Series } from './lib/measures.js';
import { runWebhookSeries } from './webhooks.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    'large-mib': { type: 'string' },
    'load-seconds': { type: 'string' },
    tags: { type: 'string' },
    repositories: { type: 'string' },
    /** Comma-separated series to run: push, load, scale, s3, postgres, ui, webhooks (default: all). */
    series: { type: 'string' },
  },
});
const series = new Set((args.series ?? 'push,load,scale,s3,postgres,ui,webhooks').split(','));
const quick = args.quick ?? false;
const rounds = Number(args.rounds ?? (quick ? 1 : 5));
const largeBytes = Number(args['large-mib'] ?? (quick ? 32 : 512)) * MiB;
const loadSeconds = Number(args['load-seconds'] ?? (quick ? 2 : 5));
const scale: ScaleSpec = {
  tagRepository: 'scale/tags',
  tags: Number(args.tags ?? (quick ? 5_000 : 100_000)),
  repositories: Number(args.repositories ?? (quick ? 1_000 : 10_000)),
};

interface Measure {
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  target: string;
  values: Record<Name, number[]> & Partial<Record<Series, number[]>>;
}
const measures = new Map<string, Measure>();
function record(title: string, unit: string, better: Measure['better'], target: string, name: Series, value: number): void {
  let measure = measures.get(title);
  if (!measure) {
    measure = { title, unit, better, target, values: { ours: [], distribution: [] } };
    measures.set(title, measure);
  }
  (measure.values[name] ??= []).push(value);
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-bench-'));
const skopeoCacheFiles = ['/var/lib/containers/cache/blob-info-cache-v1.boltdb', path.join(os.homedir(), '.local/share/containers/cache/blob-info-cache-v1.boltdb')];

/** Forget where skopeo has seen blobs, so it cannot mount from memory. */
async function clearClientCache(): Promise<void> {
  for (const file of skopeoCacheFiles) await fs.rm(file, { force: true });
}

async function skopeo(...argv: string[]): Promise<number> {
  const started = performance.now();
  await run('skopeo', ['--insecure-policy', ...argv], { maxBuffer: 16 * MiB, timeout: 600_000 });
  return (performance.now() - started) / 1000;
}

async function metricValue(server: BenchServer, metric: string): Promise<number> {
  const text = await (await fetch(`http://${server.host}/metrics`)).text();
  const match = new RegExp(`^${metric} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function startBoth(label: string): Promise<Record<Name, BenchServer>> {
  const ours = await startOurs(path.join(work, `${label}-ours`));
  const distribution = await startDistribution(path.join(work, `${label}-distribution`));
  return { ours, distribution };
}

async function stopBoth(servers: Record<Name, BenchServer>): Promise<void> {
  await Promise.all([servers.ours.stop(), servers.distribution.stop()]);
  await Promise.all([fs.rm(servers.ours.root, { recursive: true, force: true }), fs.rm(servers.distribution.root, { recursive: true, force: true })]);
}

function order(round: number): Name[] {
  return round % 2 === 0 ? ['ours', 'distribution'] : ['distribution', 'ours'];
}

async function pushPullRounds(): Promise<void> {
  const fixtures = path.join(work, 'fixtures');
  const large = path.join(fixtures, 'large');
  console.error(`building a ${largeBytes / MiB} MiB layer…`);
  const { layerBytes, layerDigest, layerFile } = await buildLargeImage(large, largeBytes);

  for (let round = 0; round < rounds; round++) {
    const many = path.join(fixtures, `many-${round}`);
    const changed = path.join(fixtures, `changed-${round}`);
    const layers = 20;
    const layerSize = 1 * MiB;
    await buildManyLayerImage(many, `round-${round}`, layers, layerSize);
    // The second image shares 19 of the 20 layers: only the last differs.
    await buildOciImage(changed, [
      ...Array.from({ length: layers - 1 }, (_, i) => ({ file: `layer-${i}`, content: seededBytes(`round-${round}-${i}`, layerSize) })),
      { file: `layer-${layers - 1}`, content: seededBytes(`round-${round}-changed`, layerSize) },
    ]);

    const servers = await startBoth(`round-${round}`);
    try {
      for (const name of order(round)) {
        const server = servers[name];
        console.error(`round ${round + 1}/${rounds}: ${name}`);
        // skopeo itself moves about 160 MB/s on this machine (oci: to dir: with no registry), so
        // its push and pull figures are bounded by the client; curl shows what each server can take and give.
        await measureLargeLayer(kit, server, '', { dir: large, layerBytes, layerDigest, layerFile }, '< 100 MiB');

        const proxy = await startTcpProxy(server.host);
        try {
          await clearClientCache();
          const firstSeconds = await skopeo('copy', '--dest-tls-verify=false', `oci:${many}:latest`, `docker://${proxy.host}/bench/many:1`);
          record('20-layer push', 's', 'lower', '', name, firstSeconds);
          record('20-layer push: bytes sent', 'MiB', 'lower', '', name, proxy.uploaded() / MiB);

          proxy.reset();
          const secondSeconds = await skopeo('copy', '--dest-tls-verify=false', `oci:${changed}:latest`, `docker://${proxy.host}/bench/many:2`);
          record('push sharing 19 of 20 layers', 's', 'lower', '', name, secondSeconds);
          record('push sharing 19 of 20 layers: bytes sent', 'MiB', 'lower', '', name, proxy.uploaded() / MiB);

          proxy.reset();
          const mountedBefore = name === 'ours' ? await metricValue(server, 'registry_blobs_mounted_total') : 0;
          await skopeo('copy', '--dest-tls-verify=false', `oci:${many}:latest`, `docker://${proxy.host}/bench/copy-warm:1`);
          record('same image into a new repository (client cache warm): bytes sent', 'MiB', 'lower', '', name, proxy.uploaded() / MiB);

          proxy.reset();
          await clearClientCache();
          await skopeo('copy', '--dest-tls-verify=false', `oci:${many}:latest`, `docker://${proxy.host}/bench/copy-cold:1`);
          record('same image into a new repository (client cache empty): bytes sent', 'MiB', 'lower', '', name, proxy.uploaded() / MiB);
          if (name === 'ours') {
            const mounted = (await metricValue(server, 'registry_blobs_mounted_total')) - mountedBefore;
            console.error(`  ours: ${mounted} blobs mounted or linked for the two new-repository pushes`);
          }
        } finally {
          await proxy.close();
        }
      }
    } finally {
      await stopBoth(servers);
      await fs.rm(many, { recursive: true, force: true });
      await fs.rm(changed, { recursive: true, force: true });
    }
  }
  await fs.rm(large, { recursive: true, force: true });
}

/** A blob pushed as docker does it, with curl streaming the file: POST, one PATCH, PUT with the digest. */
async function curlUpload(server: BenchServer, repository: string, file: string, digest: string): Promise<{ seconds: number; cpu: number }> {
  const cpuBefore = await cpuSeconds(server.pid);
  const started = performance.now();
  const { stdout: headers } = await run('curl', ['-sS', '-f', '-D', '-', '-o', '/dev/null', '-X', 'POST', `http://${server.host}/v2/${repository}/blobs/uploads/`]);
  const location = new URL(/^location: (\S+)/im.exec(headers)![1]!, `http://${server.host}`);
  const { stdout: patched } = await run(
    'curl',
    ['-sS', '-f', '-D', '-', '-o', '/dev/null', '-X', 'PATCH', '-H', 'Content-Type: application/octet-stream', '-T', file, location.href],
    { timeout: 600_000 },
  );
  const next = new URL(/^location: (\S+)/im.exec(patched)![1]!, `http://${server.host}`);
  next.searchParams.set('digest', digest);
  await run('curl', ['-sS', '-f', '-o', '/dev/null', '-X', 'PUT', next.href]);
  return { seconds: (performance.now() - started) / 1000, cpu: (await cpuSeconds(server.pid)) - cpuBefore };
}

/** GET of a blob by curl into /dev/null; returns the bytes received, seconds and server CPU seconds. */
async function curlDownload(server: BenchServer, url: string): Promise<{ bytes: number; seconds: number; cpu: number }> {
  const cpuBefore = await cpuSeconds(server.pid);
  const started = performance.now();
  const { stdout } = await run('curl', ['-sS', '-f', '-o', '/dev/null', '-w', '%{size_download}', url], { timeout: 600_000 });
  return { bytes: Number(stdout), seconds: (performance.now() - started) / 1000, cpu: (await cpuSeconds(server.pid)) - cpuBefore };
}

/** Runs `hey` against a URL; returns requests/s and p99 latency in ms. */
async function hey(method: 'GET' | 'HEAD', url: string, accept?: string, token?: string): Promise<{ rps: number; p99: number }> {
  const argv = ['-z', `${loadSeconds}s`, '-c', '32', '-m', method];
  if (accept) argv.push('-H', `Accept: ${accept}`);
  if (token) argv.push('-H', `Authorization: Bearer ${token}`);
  const { stdout } = await run('hey', [...argv, url], { maxBuffer: 64 * MiB, timeout: (loadSeconds + 60) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p99 = Number(/99% in ([\d.]+) secs/.exec(stdout)?.[1]) * 1000;
  const codes = /Status code distribution:\s+((?:\s*\[\d+\]\s+\d+ responses)+)/.exec(stdout)?.[1] ?? '';
  if (!/\[200\]/.test(codes) || /\[[3-5]\d\d\]/.test(codes)) throw new Error(`unexpected statuses from ${method} ${url}: ${codes.trim()}`);
  return { rps, p99 };
}

async function loadRounds(): Promise<void> {
  const image = path.join(work, 'fixtures', 'load');
  const built = await buildManyLayerImage(image, 'load', 3, 64 * 1024);
  const servers = await startBoth('load');
  try {
    for (const name of ['ours', 'distribution'] as const) {
      await skopeo('copy', '--dest-tls-verify=false', `oci:${image}:latest`, `docker://${servers[name].host}/bench/load:1`);
    }
    await measureLoadWithTokenAuth(kit, path.join(work, 'load-auth'), {}, '', image, built.layerDigests[0]!, Math.max(2, rounds));
    const loadRoundsCount = Math.max(2, rounds);
    for (let round = 0; round < loadRoundsCount; round++) {
      for (const name of order(round)) {
        console.error(`load round ${round + 1}/${loadRoundsCount}: ${name}`);
        await measureLoad(kit, servers[name], '', built.layerDigests[0]!);
      }
    }
  } finally {
    await stopBoth(servers);
    await fs.rm(image, { recursive: true, force: true });
  }
}

async function timeRequests(url: string, count: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const response = await fetch(url);
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    samples.push(performance.now() - started);
  }
  return median(samples);
}

async function scaleRounds(): Promise<void> {
  console.error(`seeding ${scale.tags} tags and ${scale.repositories} repositories…`);
  const oursRoot = path.join(work, 'scale-ours');
  const distributionRoot = path.join(work, 'scale-distribution');
  await fs.mkdir(oursRoot, { recursive: true });
  await seedOurs(oursRoot, scale);
  await seedDistribution(distributionRoot, scale);
  const middleTag = tagName(Math.floor(scale.tags / 2));
  const middleRepository = repositoryName(Math.floor(scale.repositories / 2));
  for (let round = 0; round < Math.max(2, rounds); round++) {
    for (const name of order(round)) {
      const server = name === 'ours' ? await startOurs(oursRoot) : await startDistribution(distributionRoot);
      try {
        record(`start-up with ${scale.tags} tags and ${scale.repositories} repositories`, 'ms', 'lower', '', name, server.startupMs);
        const base = `http://${server.host}/v2`;
        record(
          `tag list page (n=100, from the middle of ${scale.tags})`,
          'ms',
          'lower',
          '< 5 ms',
          name,
          await timeRequests(`${base}/${scale.tagRepository}/tags/list?n=100&last=${middleTag}`, 20),
        );
        record(
          `catalog page (n=100, from the middle of ${scale.repositories})`,
          'ms',
          'lower',
          '< 5 ms',
          name,
          await timeRequests(`${base}/_catalog?n=100&last=${encodeURIComponent(middleRepository)}`, 20),
        );
      } finally {
        await server.stop();
      }
    }
  }
  await fs.rm(oursRoot, { recursive: true, force: true });
  await fs.rm(distributionRoot, { recursive: true, force: true });
}

function format(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function report(): string {
  const lines = [
    `| measure | unit | ours (median) | distribution (median) | ratio ours/distribution | target | runs |`,
    `| --- | --- | --- | --- | --- | --- | --- |`,
  ];
  for (const measure of measures.values()) {
    const theirs = median(measure.values.distribution);
    const row = (title: string, series: number[]) => {
      const ours = median(series);
      const ratio = theirs === 0 ? (ours === 0 ? 1 : Infinity) : ours / theirs;
      const runs = `ours ${series.map(format).join(' / ')}; distribution ${measure.values.distribution.map(format).join(' / ')}`;
      lines.push(`| ${title} | ${measure.unit} | ${format(ours)} | ${format(theirs)} | ${format(ratio)}× | ${measure.target} | ${runs} |`);
    };
    row(measure.title, measure.values.ours);
    const withAuth = measure.values['ours-token-auth'];
    if (withAuth) row(`${measure.title} — ours with token auth`, withAuth);
  }
  return lines.join('\n');
}

const kit: BenchKit = { work, rounds, quick, largeBytes, record, order, clearClientCache, skopeo, hey, curlUpload, curlDownload };

try {
  for (const tool of ['skopeo', 'docker-registry', 'hey', ...(series.has('s3') || series.has('postgres') ? ['radosgw'] : [])]) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is missing: apt-get install -y skopeo docker-registry hey radosgw ceph-mon ceph-osd`);
    }
  }
  console.error('building dist/ (npm run build)…');
  await run('npm', ['run', 'build'], { cwd: path.resolve(import.meta.dirname, '..'), timeout: 300_000 });
  console.error(`benchmark on ${os.cpus().length} cores, ${rounds} round(s), work folder ${work}`);
  if (series.has('push')) await pushPullRounds();
  if (series.has('load')) await loadRounds();
  if (series.has('scale')) await scaleRounds();
  if (series.has('s3')) {
    await s3Rounds(kit);
  }
  if (series.has('postgres')) await postgresRounds(kit);
  if (series.has('ui')) await uiRounds({ work, scale, rounds, record });
  if (series.has('webhooks')) {
    for (const result of await runWebhookSeries(work, quick)) record(result.title, result.unit, result.better, result.target, 'ours', result.value);
  }
  console.log(`\nBenchmark ${new Date().toISOString()} — ${os.cpus().length} cores, ${rounds} round(s), large layer ${largeBytes / MiB} MiB\n`);
  console.log(report());
} finally {
  await fs.rm(work, { recursive: true, force: true });
}
