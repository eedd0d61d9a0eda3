/**
 * The app with the operations surface, over a temporary storage root, with a captured log;
 * and tar building for import tests (OCI layouts and docker save archives, made in memory).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import tar from 'tar-stream';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { assemble, type AssembledRegistry } from '../../src/server.js';
import { tarOf } from '../helpers/oci-layout.js';

export const ADMIN_PASSWORD = 'admin-password-for-tests';

export interface OpsApp extends AssembledRegistry {
  root: string;
  /** Parsed log records written so far. */
  logRecords(): Array<Record<string, unknown>>;
  /** The raw log text. */
  logText(): string;
  dispose(): Promise<void>;
}

/** An app over a fresh root; auth is off unless `config.auth` says otherwise. Logs at info into memory. */
export async function createOpsApp(config: Omit<ConfigInput, 'storage'> & { storage?: Omit<NonNullable<ConfigInput['storage']>, 'root'> } = {}): Promise<OpsApp> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-ops-'));
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logged += chunk.toString('utf8');
      callback();
    },
  });
  const validated = validateConfig({
    auth: { mode: 'none' },
    log: { level: 'info' },
    ...config,
    storage: { ...config.storage, root },
  });
  const logger = pino({ level: validated.log.level }, sink);
  const assembled = await assemble(validated, logger, { announcePassword: () => {} });
  return {
    ...assembled,
    root,
    logText: () => logged,
    logRecords: () =>
      logged
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    async dispose() {
      await assembled.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface TarFile {
  name: string;
  content?: Buffer | string;
  /** A symbolic link to this target (relative to the link's folder). */
  symlink?: string;
}

/** Packs entries into a tar file on disk. */
export async function writeTar(file: string, entries: TarFile[]): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  })();
  for (const entry of entries) {
    await new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null) => (error ? reject(error) : resolve());
      if (entry.symlink !== undefined) pack.entry({ name: entry.name, type: 'symlink', linkname: entry.symlink }, callback);
      else pack.entry({ name: entry.name }, Buffer.from(entry.content ?? ''), callback);
    });
  }
  pack.finalize();
  await done;
  await fs.writeFile(file, Buffer.concat(chunks));
}

/** Reads every file entry of a tar file (small archives only). */
export async function readTarFile(file: string): Promise<Map<string, Buffer>> {
  const extract = tar.extract();
  const files = new Map<string, Buffer>();
  const source = await fs.readFile(file);
  const feeding = (async () => {
    extract.end(source);
  })();
  for await (const entry of extract) {
    const parts: Buffer[] = [];
    for await (const chunk of entry as AsyncIterable<Buffer>) parts.push(chunk);
    if (entry.header.type === 'file') files.set(entry.header.name, Buffer.concat(parts));
  }
  await feeding;
  return files;
}

/** Everything an image made of uncompressed layer tars needs, by digest. */
export interface ImageParts {
  config: Buffer;
  configDigest: string;
  layers: Buffer[];
  layerDigests: string[];
}

/** An image config over these layer tars (uncompressed: their digests are the diff_ids). */
export function imageParts(seed: string, layerContents: string[]): ImageParts {
  // Same content at the same position gives the same layer, whatever the seed (shared base layers).
  const layers = layerContents.map((content, i) => tarBytes(`layer-${i}.txt`, content));
  const layerDigests = layers.map((layer) => sha256(layer));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { seed } }, rootfs: { type: 'layers', diff_ids: layerDigests } }));
  return { config, configDigest: sha256(config), layers, layerDigests };
}

/** A one-file tar, in memory. */
export function tarBytes(name: string, content: string): Buffer {
  return tarOf(name, Buffer.from(content));
}

/** A docker save archive of one image: manifest.json, <hex>.json, <id>/layer.tar (the second layer a symlink, as docker writes duplicates). */
export function dockerSaveEntries(parts: ImageParts, repoTag: string): TarFile[] {
  const configName = `${parts.configDigest.slice(7)}.json`;
  const layerNames = parts.layerDigests.map((digest) => `${digest.slice(7, 19)}/layer.tar`);
  const entries: TarFile[] = [{ name: configName, content: parts.config }];
  parts.layers.forEach((layer, i) => {
    // The first layer's file is stored once under its own folder; later ones link back as docker save does for shared content.
    if (i === 0) entries.push({ name: layerNames[0]!, content: layer });
    else {
      entries.push({ name: `blobstore/${i}.tar`, content: layer });
      entries.push({ name: layerNames[i]!, symlink: `../blobstore/${i}.tar` });
    }
  });
  entries.push({ name: 'manifest.json', content: JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: layerNames }]) });
  return entries;
}

/** An OCI image layout of one image (tag `ref`), layers as uncompressed tars. */
export function ociLayoutEntries(parts: ImageParts, ref: string): { entries: TarFile[]; manifestDigest: string; manifest: Buffer } {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: parts.configDigest, size: parts.config.length },
      layers: parts.layers.map((layer, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: parts.layerDigests[i], size: layer.length })),
    }),
  );
  const manifestDigest = sha256(manifest);
  const blob = (digest: string, content: Buffer): TarFile => ({ name: `blobs/sha256/${digest.slice(7)}`, content });
  const index = {
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': ref } }],
  };
  return {
    manifestDigest,
    manifest,
    entries: [
      { name: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
      ...parts.layers.map((layer, i) => blob(parts.layerDigests[i]!, layer)),
      blob(parts.configDigest, parts.config),
      blob(manifestDigest, manifest),
      { name: 'index.json', content: JSON.stringify(index) },
    ],
  };
}

/** An OCI layout whose `ref` is an image index over one image per platform; `omit` platforms are listed but their content left out. */
export function ociIndexEntries(platforms: Array<{ architecture: string; parts: ImageParts }>, ref: string, omit: string[] = []): { entries: TarFile[]; indexDigest: string; manifestDigests: Record<string, string> } {
  const entries: TarFile[] = [{ name: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) }];
  const descriptors: object[] = [];
  const manifestDigests: Record<string, string> = {};
  for (const { architecture, parts } of platforms) {
    const image = ociLayoutEntries(parts, architecture);
    manifestDigests[architecture] = image.manifestDigest;
    descriptors.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: image.manifest.length, platform: { os: 'linux', architecture } });
    if (omit.includes(architecture)) continue;
    entries.push(...image.entries.filter((entry) => entry.name.startsWith('blobs/')));
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descriptors }));
  const indexDigest = sha256(index);
  entries.push({ name: `blobs/sha256/${indexDigest.slice(7)}`, content: index });
  entries.push({
    name: 'index.json',
    content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': ref } }] }),
  });
  // The same blob may appear twice (shared layers): keep the first.
  const seen = new Set<string>();
  return { entries: entries.filter((entry) => (seen.has(entry.name) ? false : (seen.add(entry.name), true))), indexDigest, manifestDigests };
}
