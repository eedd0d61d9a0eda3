/**
 * A small registry client for e2e checks that real clients do not make visible: tokens from a
 * given origin, an image read back through the API with every digest verified, and which
 * replica served the requests of a repository (from the replicas' request logs).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { BuiltImage } from './oci-layout.js';
import type { ServerProcess } from './server-process.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Bearer tokens from `origin`'s /auth/token for one user. */
export function tokenIssuer(username: string, password: string, service = 'harbormaster-registry') {
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  return async (origin: string, scope: string): Promise<string> => {
    const response = await fetch(`${origin}/auth/token?service=${encodeURIComponent(service)}&scope=${encodeURIComponent(scope)}`, {
      headers: { Authorization: basic },
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(response.status, 200, `token from ${origin} for ${scope}: ${await response.clone().text()}`);
    return ((await response.json()) as { token: string }).token;
  };
}

/**
 * Reads `repository:reference` back from `origin` with `token`: the manifest's bytes must have
 * the image's digest, and every blob it names (config and layers) must come back whole, with
 * its digest and size. Bodies are hashed as they stream.
 */
export async function verifyImage(origin: string, token: string, repository: string, reference: string, image: BuiltImage): Promise<void> {
  const headers = { Authorization: `Bearer ${token}` };
  const response = await fetch(`${origin}/v2/${repository}/manifests/${reference}`, {
    headers: { ...headers, Accept: OCI_MANIFEST },
    signal: AbortSignal.timeout(10_000),
  });
  const body = Buffer.from(await response.arrayBuffer());
  assert.equal(response.status, 200, `manifest ${repository}:${reference}: ${body.toString()}`);
  assert.equal(sha256Hex(body), image.manifestDigest, `manifest ${repository}:${reference}`);
  const manifest = JSON.parse(body.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  assert.deepEqual(
    manifest.layers.map((layer) => layer.digest),
    image.layerDigests,
  );
  for (const blob of [manifest.config, ...manifest.layers]) {
    const got = await fetch(`${origin}/v2/${repository}/blobs/${blob.digest}`, { headers, signal: AbortSignal.timeout(30_000) });
    assert.equal(got.status, 200, `blob ${blob.digest} of ${repository}:${reference}: ${got.status}`);
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of got.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      size += chunk.length;
    }
    assert.equal(`sha256:${hash.digest('hex')}`, blob.digest, `blob of ${repository}:${reference}`);
    assert.equal(size, blob.size, `size of ${blob.digest}`);
  }
}

/**
 * Pushes an image of an OCI layout (buildOciImage) the shortest way: each blob in one
 * `POST ?digest=`, then the manifest. For set-ups around the pushes real clients make.
 */
export async function pushImageDirectly(origin: string, token: string, repository: string, tag: string, image: BuiltImage): Promise<void> {
  const headers = { Authorization: `Bearer ${token}` };
  const read = (digest: string) => fs.readFile(path.join(image.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  for (const digest of [image.configDigest, ...image.layerDigests]) {
    const response = await fetch(`${origin}/v2/${repository}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/octet-stream' },
      body: await read(digest),
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(response.status, 201, `blob ${digest} to ${repository}: ${await response.text()}`);
  }
  const response = await fetch(`${origin}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'Content-Type': OCI_MANIFEST },
    body: await read(image.manifestDigest),
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(response.status, 201, `manifest ${repository}:${tag}: ${await response.text()}`);
}

interface Descriptor {
  digest: string;
  size: number;
}

function sha256Hex(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** How many requests naming `repository` each server logged (request log lines, info level). */
export function requestsPerServer(servers: ServerProcess[], repository: string, methods?: string[]): number[] {
  return servers.map((server) => {
    let count = 0;
    for (const line of server.output().split('\n')) {
      if (!line.startsWith('{') || !line.includes('"msg":"request"')) continue;
      const entry = JSON.parse(line) as { repository?: string; method?: string };
      if (entry.repository === repository && (!methods || methods.includes(entry.method ?? ''))) count++;
    }
    return count;
  });
}

/** Runs `work` over `items`, at most `limit` at once; settles like Promise.allSettled, in order. */
export async function settleEach<T, R>(items: T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { status: 'fulfilled', value: await work(items[index]!, index) };
      } catch (reason) {
        results[index] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
