/**
 * The S3 series: this registry with storage.driver s3 against CNCF distribution with its own
 * s3 driver, both on the same throwaway radosgw (scripts/radosgw.sh, a fresh one per round so
 * the memstore never fills; test/helpers/s3.ts), each in a bucket of its own. Measures large-layer push and pull
 * (skopeo and curl) with the server's CPU and peak RSS, manifest GET and blob HEAD under load,
 * and pull with redirects to the object store on for both.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { startRadosgw, type S3Server } from '../test/helpers/s3.js';
import { buildLargeImage, buildManyLayerImage, folderBytes } from './lib/fixtures.js';
import { cpuSeconds, startDistribution, startOurs, withPeakRss, type BenchServer } from './lib/servers.js';

const MiB = 1024 * 1024;

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

/** Distribution's s3 driver on the radosgw, with its redirects on or off. */
function distributionStorage(rgw: S3Server, bucket: string, redirect: boolean): string[] {
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

function oursEnv(rgw: S3Server, bucket: string, redirect: boolean): Record<string, string> {
  return { ...rgw.env(bucket), REGISTRY_STORAGE_REDIRECT_ENABLED: String(redirect) };
}

/** Both registries on one bucket each; the `redirect` pair serves the same data with redirects on. */
async function startPair(kit: BenchKit, rgw: S3Server, label: string, redirect: boolean, buckets?: Record<Name, string>): Promise<{ servers: Record<Name, BenchServer>; buckets: Record<Name, string> }> {
  const names = buckets ?? { ours: await rgw.createBucket(), distribution: await rgw.createBucket() };
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
    const rgw = await startRadosgw();
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
