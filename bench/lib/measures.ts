/**
 * Measures that several series take the same way, on any pair of servers: a large layer pushed
 * and pulled by skopeo and by curl (with the server's CPU and peak RSS), and manifest GET / blob
 * HEAD under load. Each series names its rows with a prefix ("S3: ", "PG+S3: ") so that their
 * medians stay apart.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { folderBytes } from './fixtures.js';
import { cpuSeconds, startOurs, withPeakRss, type BenchServer } from './servers.js';

const MiB = 1024 * 1024;

export type Name = BenchServer['name'];
/** A series of samples: a registry, or this registry with token auth on. */
export type Series = Name | 'ours-token-auth';

/** What bench/run.ts lends the series: its recorder, clients and settings. */
export interface BenchKit {
  work: string;
  rounds: number;
  quick: boolean;
  /** Size of the large layer. */
  largeBytes: number;
  record(title: string, unit: string, better: 'higher' | 'lower', target: string, name: Series, value: number): void;
  order(round: number): Name[];
  clearClientCache(): Promise<void>;
  skopeo(...argv: string[]): Promise<number>;
  hey(method: 'GET' | 'HEAD', url: string, accept?: string, token?: string): Promise<{ rps: number; p99: number }>;
  curlUpload(server: BenchServer, repository: string, file: string, digest: string): Promise<{ seconds: number; cpu: number }>;
  curlDownload(server: BenchServer, url: string): Promise<{ bytes: number; seconds: number; cpu: number }>;
}

/** An OCI layout holding one large layer (bench/lib/fixtures.ts buildLargeImage). */
export interface LargeImage {
  dir: string;
  layerBytes: number;
  layerDigest: string;
  layerFile: string;
}

/** Push and pull of the large image with skopeo, then upload and download of its layer with curl. */
export async function measureLargeLayer(kit: BenchKit, server: BenchServer, prefix: string, large: LargeImage, rssTarget: string): Promise<void> {
  const { name } = server;
  await kit.clearClientCache();
  const cpuBefore = await cpuSeconds(server.pid);
  const { result: pushSeconds, peakRss } = await withPeakRss(server.pid, () =>
    kit.skopeo('copy', '--dest-tls-verify=false', `oci:${large.dir}:latest`, `docker://${server.host}/bench/large:1`),
  );
  const pushCpu = (await cpuSeconds(server.pid)) - cpuBefore;
  kit.record(`${prefix}large layer push`, 'MB/s', 'higher', '≥ 1.0×', name, large.layerBytes / MiB / pushSeconds);
  kit.record(`${prefix}large layer push: server CPU per GiB`, 's', 'lower', '≤ 1.0×', name, (pushCpu * 1024 * MiB) / large.layerBytes);
  kit.record(`${prefix}large layer push: peak server RSS`, 'MiB', 'lower', rssTarget, name, peakRss / MiB);

  const pulled = path.join(kit.work, `${prefix.replace(/\W+/g, '-')}pulled-${name}`);
  const cpuBeforePull = await cpuSeconds(server.pid);
  const pullSeconds = await kit.skopeo('copy', '--src-tls-verify=false', `docker://${server.host}/bench/large:1`, `dir:${pulled}`);
  const pullCpu = (await cpuSeconds(server.pid)) - cpuBeforePull;
  const pulledBytes = await folderBytes(pulled);
  await fs.rm(pulled, { recursive: true, force: true });
  kit.record(`${prefix}large layer pull`, 'MB/s', 'higher', '≥ 1.0×', name, pulledBytes / MiB / pullSeconds);
  kit.record(`${prefix}large layer pull: server CPU per GiB`, 's', 'lower', '≤ 1.0×', name, (pullCpu * 1024 * MiB) / pulledBytes);

  const upload = await kit.curlUpload(server, 'bench/raw', large.layerFile, large.layerDigest);
  kit.record(`${prefix}large blob upload by curl`, 'MB/s', 'higher', '≥ 1.0×', name, large.layerBytes / MiB / upload.seconds);
  kit.record(`${prefix}large blob upload by curl: server CPU per GiB`, 's', 'lower', '≤ 1.0×', name, (upload.cpu * 1024 * MiB) / large.layerBytes);
  const download = await kit.curlDownload(server, `http://${server.host}/v2/bench/raw/blobs/${large.layerDigest}`);
  kit.record(`${prefix}large blob download by curl`, 'MB/s', 'higher', '≥ 1.0×', name, download.bytes / MiB / download.seconds);
  kit.record(`${prefix}large blob download by curl: server CPU per GiB`, 's', 'lower', '≤ 1.0×', name, (download.cpu * 1024 * MiB) / download.bytes);
}

/**
 * Manifest GET by tag and blob HEAD under load, on `bench/load:1` (pushed by the caller).
 * `as` records the samples under another series (this registry with token auth) with `token`.
 */
export async function measureLoad(kit: BenchKit, server: BenchServer, prefix: string, layerDigest: string, options: { as?: Series; token?: string } = {}): Promise<void> {
  const series = options.as ?? server.name;
  const base = `http://${server.host}/v2/bench/load`;
  const manifest = await kit.hey('GET', `${base}/manifests/1`, 'application/vnd.oci.image.manifest.v1+json', options.token);
  kit.record(`${prefix}manifest GET by tag`, 'req/s', 'higher', '≥ 5×', series, manifest.rps);
  kit.record(`${prefix}manifest GET by tag: p99`, 'ms', 'lower', '≤ 0.2×', series, manifest.p99);
  const head = await kit.hey('HEAD', `${base}/blobs/${layerDigest}`, undefined, options.token);
  kit.record(`${prefix}blob HEAD`, 'req/s', 'higher', '≥ 5×', series, head.rps);
  kit.record(`${prefix}blob HEAD: p99`, 'ms', 'lower', '≤ 0.2×', series, head.p99);
}

/** A pull token for `scope` from this registry's token endpoint, as docker would get one. */
async function pullToken(server: BenchServer, user: string, password: string, repository: string): Promise<string> {
  const response = await fetch(`http://${server.host}/auth/token?service=harbormaster-registry&scope=repository:${repository}:pull`, {
    headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
  });
  if (response.status !== 200) throw new Error(`token endpoint answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { token: string }).token;
}

/**
 * The load of measureLoad against this registry with token auth on (`env` adds its backends),
 * recorded as `ours-token-auth`: every request carries a Bearer token the registry verifies.
 * Distribution has no token server here, so its column stays the open one.
 */
export async function measureLoadWithTokenAuth(kit: BenchKit, root: string, env: Record<string, string>, prefix: string, image: string, layerDigest: string, rounds: number): Promise<void> {
  const password = 'bench-admin-password';
  const server = await startOurs(root, { ...env, REGISTRY_AUTH: 'token', REGISTRY_ADMIN_PASSWORD: password });
  try {
    await kit.skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `admin:${password}`, `oci:${image}:latest`, `docker://${server.host}/bench/load:1`);
    const token = await pullToken(server, 'admin', password, 'bench/load');
    for (let round = 0; round < rounds; round++) {
      console.error(`${prefix}load round ${round + 1} with token auth: ours`);
      await measureLoad(kit, server, prefix, layerDigest, { as: 'ours-token-auth', token });
    }
  } finally {
    await server.stop();
    await fs.rm(root, { recursive: true, force: true });
  }
}
