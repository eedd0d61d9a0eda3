/**
 * A real S3 server for tests: Ceph's radosgw as a throwaway one-node cluster on loopback
 * (scripts/radosgw.sh), one per test file. `radosgwMissing` is the reason to skip when the
 * machine lacks it; a started server is stopped by `stop()`, and at the latest when the test
 * process exits.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { PROJECT_ROOT } from './server-process.js';
import { hasCommand } from './tools.js';

const run = promisify(execFile);
// The SDK's notice about Node releases to come (this one is pinned) would print on every run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'radosgw.sh');

/** Why S3 tests cannot run here, or null when they can. */
export const radosgwMissing: string | null = ['radosgw', 'ceph-mon', 'ceph-osd', 'radosgw-admin'].every(hasCommand)
  ? null
  : 'radosgw, ceph-mon or ceph-osd not installed (apt-get install -y radosgw ceph-mon ceph-osd)';
if (radosgwMissing) console.log(`S3 tests skipped: ${radosgwMissing}`);

export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** A client of the server, for tests that look at the bucket directly. */
  client: S3Client;
  /** Creates a bucket of a fresh name and returns the name. */
  createBucket(): Promise<string>;
  /** The settings of a registry storing its blobs in `bucket` (config file form). */
  storage(bucket: string, extra?: Record<string, unknown>): { driver: 's3'; s3: Record<string, unknown> };
  /** The same as REGISTRY_* environment variables, for spawned servers. */
  env(bucket: string): Record<string, string>;
  stop(): Promise<void>;
}

const started = new Set<string>();
process.once('exit', () => {
  for (const dir of started) {
    try {
      execFileSync(SCRIPT, ['stop', dir], { stdio: 'ignore', timeout: 20_000 });
    } catch {
      // best effort on the way out
    }
  }
});

export async function startRadosgw(): Promise<S3Server> {
  const dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'radosgw-')), 'cluster');
  started.add(dir);
  let output = '';
  // A port the script found free can be taken before the daemon binds it: try again, on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      ({ stdout: output } = await run(SCRIPT, ['start', dir], { timeout: 120_000 }));
      break;
    } catch (error) {
      await run(SCRIPT, ['stop', dir], { timeout: 30_000 }).catch(() => undefined);
      if (attempt < 3) continue;
      started.delete(dir);
      throw error;
    }
  }
  const values = Object.fromEntries(
    output
      .split('\n')
      .map((line) => /^(\w+)=(.*)$/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[1]!, match[2]!]),
  );
  const endpoint = values.endpoint!;
  const accessKey = values.access_key!;
  const secretKey = values.secret_key!;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    accessKey,
    secretKey,
    client,
    async createBucket() {
      const bucket = `test-${randomUUID().slice(0, 8)}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return bucket;
    },
    storage: (bucket, extra = {}) => ({
      driver: 's3' as const,
      s3: { bucket, endpoint, accessKey, secretKey, forcePathStyle: true, ...extra },
    }),
    env: (bucket) => ({
      REGISTRY_STORAGE_DRIVER: 's3',
      REGISTRY_STORAGE_S3_BUCKET: bucket,
      REGISTRY_STORAGE_S3_ENDPOINT: endpoint,
      REGISTRY_STORAGE_S3_ACCESS_KEY: accessKey,
      REGISTRY_STORAGE_S3_SECRET_KEY: secretKey,
      REGISTRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    }),
    stop() {
      stopped ??= (async () => {
        client.destroy();
        await run(SCRIPT, ['stop', dir], { timeout: 60_000 });
        started.delete(dir);
        await fs.rm(path.dirname(dir), { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
