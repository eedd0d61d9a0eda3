/**
 * The S3 series: this registry with storage.driver s3 against CNCF distribution with its own
 * s3 driver, both on the same throwaway radosgw (scripts/radosgw.sh, a fresh one per round so
 * the memstore never fills), each in a bucket of its own. Measures large-layer push and pull
 * (skopeo and curl) with the server's CPU and peak RSS, manifest GET and blob HEAD under load,
 * and pull with redirects to the object store on for both.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { buildLargeImage, buildManyLayerImage, folderBytes } from './lib/fixtures.js';
import { cpuSeconds, startDistribution, startOurs, withPeakRss, type BenchServer } from './lib/servers.js';

const run = promisify(execFile);
// The SDK's notice about Node releases to come (this one is pinned) would print on every run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const MiB = 1024 * 1024;
const SCRIPT = path.resolve(import.meta.dirname, '..', 'scripts', 'radosgw.sh');

type Name = BenchServer['name'];

/** What bench/run.ts lends the series: its recorder, clients and settings. */
export interface BenchKit {
  work: string;
  rounds: number;
  /** Size of the large layer. */
  largeBytes: number;
  record(title: string, unit: string, better: 'higher' | 'lower', target: string, name: Name, value: number): void;
  order(round: number): Name[];
  clearClientCache(): Promise<void>;
  skopeo(...argv: string[]): Promise<number>;
  hey(method: 'GET' | 'HEAD', url: string, accept?: string): Promise<{ rps: number; p99: number }>;
  curlUpload(server: BenchServer, repository: string, file: string, digest: string): Promise<{ seconds: number; cpu: number }>;
  curlDownload(server: BenchServer, url: string): Promise<{ bytes: number; seconds: number; cpu: number }>;
}

interface Radosgw {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket(name: string): Promise<string>;
  stop(): Promise<void>;
}

async function startRadosgw(dir: string): Promise<Radosgw> {
  const { stdout } = await run(SCRIPT, ['start', dir], { timeout: 120_000 });
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(stdout)![1]!;
  const endpoint = value('endpoint');
  const accessKey = value('access_key');
  const secretKey = value('secret_key');
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  return {
    endpoint,
    accessKey,
    secretKey,
    async bucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stop() {
      client.destroy();
      await run(SCRIPT, ['stop', dir], { timeout: 60_000 });
    },
  };
}

/** Distribution's s3 driver on the radosgw, with its redirects on or off. */
function distributionStorage(rgw: Radosgw, bucket: string, redirect: boolean): string[] {
  return [
    '  s3:',
    `    accesskey: ${rgw.accessKey}`,
    `    secretkey: ${rgw.secretKey}`,
    '    region: us-east-1',
    `    regionendpoint: ${rgw.endpoint}`,
    `    bucket: ${bucket}`,
    '    secure: false',
    '    v4auth: true',
    `    chunksize: ${10 * MiB}`,
    '    rootdirectory: /distribution',
    '  redirect:',
    `    disable: ${!redirect}`,
  ];
}

function oursEnv(rgw: Radosgw, bucket: string, redirect: boolean): Record<string, string> {
  return {
    REGISTRY_STORAGE_DRIVER: 's3',
    REGISTRY_STORAGE_S3_BUCKET: bucket,
    REGISTRY_STORAGE_S3_ENDPOINT: rgw.endpoint,
    REGISTRY_STORAGE_S3_ACCESS_KEY: rgw.accessKey,
    REGISTRY_STORAGE_S3_SECRET_KEY: rgw.secretKey,
    REGISTRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    REGISTRY_STORAGE_REDIRECT_ENABLED: String(redirect),
  };
}

/** Both registries on one bucket each; the `redirect` pair serves the same data with redirects on. */
async function startPair(kit: BenchKit, rgw: Radosgw, label: string, redirect: boolean, buckets?: Record<Name, string>): Promise<{ servers: Record<Name, BenchServer>; buckets: Record<Name, string> }> {
  const names = buckets ?? { ours: await rgw.bucket(`${label}-ours`), distribution: await rgw.bucket(`${label}-distribution`) };
  const oursRoot = path.join(kit.work, `s3-${label}-ours`);
  const ours = await startOurs(oursRoot, oursEnv(rgw, names.ours, redirect));
  const distribution = await startDistribution(path.join(kit.work, `s3-${label}-distribution${redirect ? '-redirect' : ''}`), distributionStorage(rgw, names.distribution, redirect));
  return { servers: { ours, distribution }, buckets: names };
}

async function stopPair(servers: Record<Name, BenchServer>): Promise<void> {
  await Promise.all([servers.ours.stop(), servers.distribution.stop()]);
}

export async function s3Rounds(kit: BenchKit): Promise<void> {
  const largeDir = path.join(kit.work, 'fixtures', 's3-large');
  const large = { dir: largeDir, ...(await buildLargeImage(largeDir, kit.largeBytes)) };
  const load = path.join(kit.work, 'fixtures', 's3-load');
  const loadImage = await buildManyLayerImage(load, 's3-load', 3, 64 * 1024);
  for (let round = 0; round < kit.rounds; round++) {
    const rgw = await startRadosgw(path.join(kit.work, `radosgw-${round}`));
    try {
      const label = `r${round}`;
      const { servers, buckets } = await startPair(kit, rgw, label, false);
      try {
        for (const name of kit.order(round)) {
          const server = servers[name];
          console.error(`S3 round ${round + 1}/${kit.rounds}: ${name}`);
          await kit.clearClientCache();
          const cpuBefore = await cpuSeconds(server.pid);
          const { result: pushSeconds, peakRss } = await withPeakRss(server.pid, () =>
            kit.skopeo('copy', '--dest-tls-verify=false', `oci:${large.dir}:latest`, `docker://${server.host}/bench/large:1`),
          );
          const pushCpu = (await cpuSeconds(server.pid)) - cpuBefore;
          kit.record('S3: large layer push', 'MB/s', 'higher', '≥ 1.0×', name, large.layerBytes / MiB / pushSeconds);
          kit.record('S3: large layer push: server CPU per GiB', 's', 'lower', '≤ 1.0×', name, (pushCpu * 1024 * MiB) / large.layerBytes);
          kit.record('S3: large layer push: peak server RSS', 'MiB', 'lower', '< 150 MiB', name, peakRss / MiB);

          const pulled = path.join(kit.work, `s3-pulled-${name}`);
          const cpuBeforePull = await cpuSeconds(server.pid);
          const pullSeconds = await kit.skopeo('copy', '--src-tls-verify=false', `docker://${server.host}/bench/large:1`, `dir:${pulled}`);
          const pullCpu = (await cpuSeconds(server.pid)) - cpuBeforePull;
          const pulledBytes = await folderBytes(pulled);
          await fs.rm(pulled, { recursive: true, force: true });
          kit.record('S3: large layer pull', 'MB/s', 'higher', '≥ 1.0×', name, pulledBytes / MiB / pullSeconds);
          kit.record('S3: large layer pull: server CPU per GiB', 's', 'lower', '≤ 1.0×', name, (pullCpu * 1024 * MiB) / pulledBytes);

          const upload = await kit.curlUpload(server, 'bench/raw', large.layerFile, large.layerDigest);
          kit.record('S3: large blob upload by curl', 'MB/s', 'higher', '≥ 1.0×', name, large.layerBytes / MiB / upload.seconds);
          kit.record('S3: large blob upload by curl: server CPU per GiB', 's', 'lower', '≤ 1.0×', name, (upload.cpu * 1024 * MiB) / large.layerBytes);
          const download = await kit.curlDownload(server, `http://${server.host}/v2/bench/raw/blobs/${large.layerDigest}`);
          kit.record('S3: large blob download by curl', 'MB/s', 'higher', '≥ 1.0×', name, download.bytes / MiB / download.seconds);
          kit.record('S3: large blob download by curl: server CPU per GiB', 's', 'lower', '≤ 1.0×', name, (download.cpu * 1024 * MiB) / download.bytes);

          await kit.skopeo('copy', '--dest-tls-verify=false', `oci:${load}:latest`, `docker://${server.host}/bench/load:1`);
          const base = `http://${server.host}/v2/bench/load`;
          const manifest = await kit.hey('GET', `${base}/manifests/1`, 'application/vnd.oci.image.manifest.v1+json');
          kit.record('S3: manifest GET by tag', 'req/s', 'higher', '≥ 5×', name, manifest.rps);
          const head = await kit.hey('HEAD', `${base}/blobs/${loadImage.layerDigests[0]}`);
          kit.record('S3: blob HEAD', 'req/s', 'higher', '≥ 5×', name, head.rps);
        }
      } finally {
        await stopPair(servers);
      }

      // The same data served again with redirects on, for both: pulls go to radosgw directly.
      const redirecting = await startPair(kit, rgw, label, true, buckets);
      try {
        for (const name of kit.order(round)) {
          const server = redirecting.servers[name];
          const pulled = path.join(kit.work, `s3-pulled-redirect-${name}`);
          const cpuBefore = await cpuSeconds(server.pid);
          const seconds = await kit.skopeo('copy', '--src-tls-verify=false', `docker://${server.host}/bench/large:1`, `dir:${pulled}`);
          const cpu = (await cpuSeconds(server.pid)) - cpuBefore;
          const bytes = await folderBytes(pulled);
          await fs.rm(pulled, { recursive: true, force: true });
          kit.record('S3: large layer pull, redirects on', 'MB/s', 'higher', '≥ 1.0×', name, bytes / MiB / seconds);
          kit.record('S3: large layer pull, redirects on: server CPU per GiB', 's', 'lower', '', name, (cpu * 1024 * MiB) / bytes);
        }
      } finally {
        await stopPair(redirecting.servers);
      }
    } finally {
      await rgw.stop();
    }
  }
  await fs.rm(load, { recursive: true, force: true });
  await fs.rm(largeDir, { recursive: true, force: true });
}
