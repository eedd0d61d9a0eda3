/**
 * A registry app over a fresh temporary storage root with lifecycle settings (rules, gc), for
 * the lifecycle suites; and the checks they share: which blob files are on disk, and whether
 * an image pulls whole (every blob served, hashing to its digest).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { assemble, type AssembledRegistry } from '../../src/server.js';
import { binaryParser, MEDIA, type App } from '../helpers/app.js';

export interface LifecycleTestApp {
  app: App;
  assembled: AssembledRegistry;
  root: string;
  /** The app served on a loopback port, for tests that need real concurrent connections. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface LifecycleTestOptions {
  lifecycle?: NonNullable<ConfigInput['lifecycle']>;
  storage?: Omit<NonNullable<ConfigInput['storage']>, 'root'>;
  /** The metadata backend (default: SQLite under the storage root); see helpers/metadata-backends.ts. */
  metadata?: ConfigInput['metadata'];
}

export async function createLifecycleApp(options: LifecycleTestOptions = {}): Promise<LifecycleTestApp> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-lifecycle-'));
  const config = validateConfig({
    storage: { root, ...options.storage },
    auth: { mode: 'none' },
    log: { level: 'silent' },
    lifecycle: options.lifecycle ?? {},
    metadata: options.metadata,
  });
  const assembled = await assemble(config);
  let server: http.Server | undefined;
  return {
    app: assembled.app,
    assembled,
    root,
    async listen() {
      server ??= http.createServer(assembled.app);
      if (!server.listening) await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    async close() {
      if (server?.listening) {
        await new Promise<void>((resolve) => {
          server!.close(() => resolve());
          server!.closeAllConnections();
        });
      }
      await assembled.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

/** Where the filesystem driver keeps a blob. */
export function blobFile(root: string, digest: string): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return path.join(root, 'blobs', algorithm, hex.slice(0, 2), hex);
}

export async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

/** Every blob digest with a file under the storage root. */
export async function blobFiles(root: string): Promise<string[]> {
  const digests: string[] = [];
  const base = path.join(root, 'blobs');
  for (const algorithm of await fs.readdir(base).catch(() => [] as string[])) {
    for (const prefix of await fs.readdir(path.join(base, algorithm))) {
      for (const hex of await fs.readdir(path.join(base, algorithm, prefix))) digests.push(`${algorithm}:${hex}`);
    }
  }
  return digests.sort();
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Pulls `reference` as a client would: the manifest, then (for an index) each child, then every
 * config and layer; asserts each body hashes to its digest. Returns the blob digests fetched.
 */
export async function assertPulls(app: App, name: string, reference: string): Promise<string[]> {
  const res = await request(app)
    .get(`/v2/${name}/manifests/${reference}`)
    .set('Accept', [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerManifestList].join(', '))
    .buffer(true)
    .parse(binaryParser);
  assert.equal(res.status, 200, `pulling manifest ${name}:${reference}: ${res.status} ${String(res.body)}`);
  const body = res.body as Buffer;
  assert.equal(res.headers['docker-content-digest'], sha256(body));
  const manifest = JSON.parse(body.toString('utf8')) as {
    manifests?: Array<{ digest: string }>;
    config?: { digest: string };
    layers?: Array<{ digest: string }>;
  };
  const fetched: string[] = [];
  if (manifest.manifests) {
    for (const child of manifest.manifests) fetched.push(...(await assertPulls(app, name, child.digest)));
    return fetched;
  }
  for (const digest of [manifest.config!.digest, ...manifest.layers!.map((layer) => layer.digest)]) {
    const blob = await request(app).get(`/v2/${name}/blobs/${digest}`).buffer(true).parse(binaryParser);
    assert.equal(blob.status, 200, `pulling blob ${digest} of ${name}:${reference}: ${blob.status}`);
    assert.equal(sha256(blob.body as Buffer), digest, `blob ${digest} of ${name}:${reference} has other content`);
    fetched.push(digest);
  }
  return fetched;
}

/** Sets a file's modification time into the past (an upload or orphan older than any grace period). */
export async function age(file: string, seconds: number): Promise<void> {
  const when = new Date(Date.now() - seconds * 1000);
  await fs.utimes(file, when, when);
}
