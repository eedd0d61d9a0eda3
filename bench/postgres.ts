/**
 * The PostgreSQL series (issue 13): this registry with `metadata.driver: postgres` against CNCF
 * distribution, side by side, in two shapes:
 * - PG+S3, the production shape of N replicas: blobs in radosgw (a fresh one per round, a bucket
 *   each), distribution on its own s3 driver (as bench/s3.ts runs it);
 * - PG+filesystem: blobs on the local disk, distribution on its filesystem driver.
 * Each round measures large-layer push and pull (skopeo, curl), manifest GET and blob HEAD under
 * load (open, and for this registry also with token auth), and the webhook latency of
 * bench/webhooks.ts with the outbox and deliveries on PostgreSQL. One throwaway PostgreSQL server
 * (scripts/postgres.sh: fsync off, as for the tests) serves every round, a database each.
 *
 *   npm run bench -- --series postgres [--rounds 3] [--large-mib 128]
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { startPostgres, postgresUnavailable, type PostgresServer } from '../test/helpers/postgres.js';
import { startRadosgw } from '../test/helpers/s3.js';
import { buildLargeImage, buildManyLayerImage } from './lib/fixtures.js';
import { measureLargeLayer, measureLoad, measureLoadWithTokenAuth, type BenchKit, type LargeImage, type Name } from './lib/measures.js';
import { processTimes, startDistribution, startOurs, type BenchServer } from './lib/servers.js';
import { distributionStorage } from './s3.js';
import { runWebhookSeries } from './webhooks.js';

/** This registry's settings for metadata in a fresh database of `pg`. */
async function postgresEnv(pg: PostgresServer): Promise<Record<string, string>> {
  return { REGISTRY_METADATA_DRIVER: 'postgres', REGISTRY_METADATA_POSTGRES_URL: await pg.createDatabase() };
}

/**
 * CPU seconds the PostgreSQL server listening on `port` has used so far: its postmaster and
 * every process it started (the backends of the registry's pool among them), from /proc.
 */
export async function postgresCpuSeconds(port: number): Promise<number> {
  const processes: Array<{ pid: number; ppid: number; seconds: number; cmdline: string }> = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const { ppid, user, system, children } = await processTimes(Number(entry));
      const cmdline = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ');
      processes.push({ pid: Number(entry), ppid, seconds: user + system + children, cmdline });
    } catch {
      // The process ended meanwhile.
    }
  }
  const postmaster = processes.find((p) => /\bpostgres\b/.test(p.cmdline) && p.cmdline.includes(`-p ${port} `));
  if (!postmaster) throw new Error(`no PostgreSQL server found on port ${port}`);
  return processes.filter((p) => p.pid === postmaster.pid || p.ppid === postmaster.pid).reduce((sum, p) => sum + p.seconds, 0);
}

interface Shape {
  /** Row prefix. */
  prefix: string;
  rssTarget: string;
  /** Both registries; `freshEnv` gives this registry's settings for another instance (its own database and bucket). */
  start(label: string): Promise<{ servers: Record<Name, BenchServer>; freshEnv(): Promise<Record<string, string>>; stop(): Promise<void> }>;
}

/** Runs every measure of one shape, both registries in the round's order. */
async function shapeRound(kit: BenchKit, shape: Shape, round: number, large: LargeImage, load: { dir: string; layerDigest: string }): Promise<void> {
  const { servers, freshEnv, stop } = await shape.start(`r${round}`);
  try {
    for (const name of kit.order(round)) {
      const server = servers[name];
      console.error(`${shape.prefix}round ${round + 1}/${kit.rounds}: ${name}`);
      await measureLargeLayer(kit, server, shape.prefix, large, shape.rssTarget);
      await kit.skopeo('copy', '--dest-tls-verify=false', `oci:${load.dir}:latest`, `docker://${server.host}/bench/load:1`);
      await measureLoad(kit, server, shape.prefix, load.layerDigest);
    }
    const authRoot = path.join(kit.work, `pg-${shape.prefix.replace(/\W+/g, '-')}auth-r${round}`);
    await measureLoadWithTokenAuth(kit, authRoot, await freshEnv(), shape.prefix, load.dir, load.layerDigest, 1);
  } finally {
    await stop();
  }
}

export async function postgresRounds(kit: BenchKit): Promise<void> {
  const unavailable = postgresUnavailable();
  if (unavailable) throw new Error(`the postgres series needs a PostgreSQL server: ${unavailable}`);
  const largeDir = path.join(kit.work, 'fixtures', 'pg-large');
  const large = { dir: largeDir, ...(await buildLargeImage(largeDir, kit.largeBytes)) };
  const loadDir = path.join(kit.work, 'fixtures', 'pg-load');
  const load = { dir: loadDir, layerDigest: (await buildManyLayerImage(loadDir, 'pg-load', 3, 64 * 1024)).layerDigests[0]! };
  const pg = await startPostgres();
  try {
    const onS3: Shape = {
      prefix: 'PG+S3: ',
      rssTarget: '< 150 MiB',
      async start(label) {
        const rgw = await startRadosgw();
        try {
          const freshEnv = async () => ({ ...(await postgresEnv(pg)), ...rgw.env(await rgw.createBucket()) });
          const ours = await startOurs(path.join(kit.work, `pg-s3-${label}-ours`), await freshEnv());
          const distribution = await startDistribution(path.join(kit.work, `pg-s3-${label}-distribution`), distributionStorage(rgw, await rgw.createBucket(), false));
          return {
            servers: { ours, distribution },
            freshEnv,
            stop: async () => {
              await Promise.all([ours.stop(), distribution.stop()]);
              await rgw.stop();
            },
          };
        } catch (error) {
          await rgw.stop();
          throw error;
        }
      },
    };
    const onFilesystem: Shape = {
      prefix: 'PG+filesystem: ',
      rssTarget: '< 100 MiB',
      async start(label) {
        const freshEnv = () => postgresEnv(pg);
        const ours = await startOurs(path.join(kit.work, `pg-fs-${label}-ours`), await freshEnv());
        const distribution = await startDistribution(path.join(kit.work, `pg-fs-${label}-distribution`));
        return { servers: { ours, distribution }, freshEnv, stop: async () => void (await Promise.all([ours.stop(), distribution.stop()])) };
      },
    };
    for (let round = 0; round < kit.rounds; round++) {
      await shapeRound(kit, onS3, round, large, load);
      await shapeRound(kit, onFilesystem, round, large, load);
      console.error(`PG: webhook round ${round + 1}/${kit.rounds}`);
      const options = { env: await postgresEnv(pg), prefix: 'PG: ', databaseCpuSeconds: () => postgresCpuSeconds(pg.port) };
      for (const result of await runWebhookSeries(kit.work, kit.quick, options)) {
        kit.record(result.title, result.unit, result.better, result.target, 'ours', result.value);
      }
    }
  } finally {
    await pg.stop();
  }
}
