/**
 * Builds the registry's HTTP app (open: auth mode none) on a fresh temporary storage folder
 * for supertest, plus the few pushes almost every HTTP test starts with, so tests stay short.
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
import type { Registry } from '../../src/registry/registry.js';
import { assemble } from '../../src/server.js';

export type App = Awaited<ReturnType<typeof assemble>>['app'];

export interface TestApp {
  app: App;
  registry: Registry;
  /** The temporary storage root. */
  root: string;
  /**
   * Builds another app over the same storage, as the registry would be after a restart
   * (nothing of the first app's memory carries over). Closed by `close()`.
   */
  restart(): Promise<App>;
  /** Closes the metadata stores and removes the storage root. */
  close(): Promise<void>;
}

/** Settings a test may override; storage root, auth (none) and log level are the helper's. */
export interface TestAppOptions {
  api?: NonNullable<ConfigInput['api']>;
  storage?: Omit<NonNullable<ConfigInput['storage']>, 'root'>;
  /** The metadata backend (default: SQLite under the storage root); see helpers/metadata-backends.ts. */
  metadata?: ConfigInput['metadata'];
}

export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-test-'));
  const config = validateConfig({
    storage: { root, ...options.storage },
    api: options.api ?? {},
    metadata: options.metadata,
    // The registry core under test, without authentication (test/auth covers that).
    auth: { mode: 'none' },
    log: { level: 'silent' },
  });
  const opened = [await assemble(config)];
  const first = opened[0]!;
  return {
    app: first.app,
    registry: first.registry,
    root,
    async restart() {
      const again = await assemble(config);
      opened.push(again);
      return again.app;
    },
    async close() {
      for (const assembled of opened) await assembled.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** Pushes a blob with a single `POST ?digest=` and asserts 201; returns its descriptor. */
export async function pushBlob(app: App, name: string, content: Buffer | string, mediaType: string = MEDIA.ociLayer): Promise<Descriptor> {
  const bytes = Buffer.from(content);
  const digest = sha256(bytes);
  const res = await request(app)
    .post(`/v2/${name}/blobs/uploads/?digest=${digest}`)
    .set('Content-Type', 'application/octet-stream')
    .send(bytes);
  assert.equal(res.status, 201, `pushing blob ${digest} to ${name}: ${res.status} ${res.text}`);
  return { mediaType, digest, size: bytes.length };
}

/**
 * Pushes a manifest (an object is serialised as JSON) and asserts 201; returns its descriptor.
 * The body goes out as a string: superagent would JSON-encode a Buffer under a `+json` type.
 */
export async function pushManifest(
  app: App,
  name: string,
  reference: string,
  manifest: object | Buffer,
  mediaType: string = MEDIA.ociManifest,
): Promise<Descriptor> {
  const bytes = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
  const res = await request(app).put(`/v2/${name}/manifests/${reference}`).set('Content-Type', mediaType).send(bytes.toString('utf8'));
  assert.equal(res.status, 201, `pushing manifest ${reference} to ${name}: ${res.status} ${res.text}`);
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

/** An OCI image manifest over the given config and layers (not pushed). */
export function imageManifest(config: Descriptor, layers: Descriptor[], extra: Record<string, unknown> = {}): object {
  return { schemaVersion: 2, mediaType: MEDIA.ociManifest, config, layers, ...extra };
}

/**
 * Pushes a small image (one config, one layer, both unique to `seed`) and its manifest;
 * returns the manifest's descriptor and bytes.
 */
export async function pushImage(
  app: App,
  name: string,
  reference: string,
  seed: string = reference,
  extra: Record<string, unknown> = {},
): Promise<Descriptor & { body: Buffer; config: Descriptor; layer: Descriptor }> {
  const config = await pushBlob(app, name, JSON.stringify({ architecture: 'amd64', os: 'linux', seed }), MEDIA.ociConfig);
  const layer = await pushBlob(app, name, `layer of ${seed}`, MEDIA.ociLayer);
  const body = Buffer.from(JSON.stringify(imageManifest(config, [layer], extra)));
  const descriptor = await pushManifest(app, name, reference, body);
  return { ...descriptor, body, config, layer };
}

/** Asserts the spec's error response: the status, a JSON `{"errors":[…]}` body, and the first entry's code and message. */
export function assertError(res: request.Response, status: number, code: string): void {
  const text = Buffer.isBuffer(res.body) ? res.body.toString('utf8') : res.text;
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${text}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const raw: unknown = Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString('utf8')) : res.body;
  const body = raw as { errors?: Array<{ code?: unknown; message?: unknown }> };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `error body: ${JSON.stringify(raw)}`);
  assert.equal(body.errors[0]?.code, code);
  assert.equal(typeof body.errors[0]?.message, 'string');
}

/**
 * A supertest parser that keeps a body's raw bytes (use with `.buffer(true).parse(binaryParser)`):
 * left alone, supertest decodes octet-streams as text and manifests as JSON.
 */
export function binaryParser(res: request.Response, callback: (err: Error | null, body: Buffer) => void): void {
  // What superagent hands a parser is the raw response stream, whatever its typings say.
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => callback(null, Buffer.concat(chunks)));
  stream.on('error', (err: Error) => callback(err, Buffer.alloc(0)));
}

/**
 * Sends one request over a real loopback socket, writing the body in `chunks` without a
 * Content-Length (Transfer-Encoding: chunked), as Docker streams layers; supertest cannot.
 */
export async function sendChunked(
  app: App,
  options: { method: string; path: string; headers?: Record<string, string> },
  chunks: Buffer[],
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: options.method, path: options.path, headers: options.headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
