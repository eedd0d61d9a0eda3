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
import { measureLargeLayer, measureLoad, type BenchKit, type Name } from './lib/measures.js';
import { cpuSeconds, startDistribution, startOurs, type BenchServer } from './lib/servers.js';

const MiB = 1024 * 1024;

/** Distribution's s3 driver on the radosgw, with its redirects on or off. */
export function distributionStorage(rgw: S3Server, bucket: string, redirect: boolean): string[] {
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
          await measureLargeLayer(kit, server, 'S3: ', large, '< 150 MiB');
          await kit.skopeo('copy', '--dest-tls-verify=false', `oci:${load}:latest`, `docker://${server.host}/bench/load:1`);
          await measureLoad(kit, server, 'S3: ', loadImage.layerDigests[0]!);
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
