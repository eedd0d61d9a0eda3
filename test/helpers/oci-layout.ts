/**
 * Builds OCI image layouts on disk for skopeo to push: real gzip'd tar layers, a config with
 * matching diff_ids, a manifest and index.json. Deterministic for a given seed, so two
 * images can share exactly the layers a test wants them to share.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export interface LayerSpec {
  /** File name inside the layer's tar. */
  file: string;
  content: Buffer;
}

export interface BuiltImage {
  dir: string;
  manifestDigest: string;
  configDigest: string;
  layerDigests: string[];
  /** Compressed size of each layer, matching layerDigests. */
  layerSizes: number[];
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Pseudo-random, incompressible bytes from a seed (same seed → same bytes). */
export function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset, 0, Math.min(block.length, size - offset));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** A one-file POSIX tar archive. */
export function tarOf(file: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(file, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let checksum = 0;
  for (const byte of header) checksum += byte;
  header.write(checksum.toString(8).padStart(6, '0') + '\0 ', 148);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

async function writeBlob(dir: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return digest;
}

/** One image's manifest written into a layout's blobs, before any index points at it. */
interface WrittenManifest {
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  layerDigests: string[];
  layerSizes: number[];
}

async function initLayout(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

/** Writes an image's layers, config and manifest as blobs of the layout. */
/** What the image config says beyond its layers: run settings (`config`: Env, Healthcheck …), created, history. */
export interface ImageConfigSpec {
  architecture?: string;
  config?: Record<string, unknown>;
  created?: string;
  history?: Array<Record<string, unknown>>;
}

async function writeImage(dir: string, layers: LayerSpec[], spec: ImageConfigSpec): Promise<WrittenManifest> {
  const layerDigests: string[] = [];
  const layerSizes: number[] = [];
  const diffIds: string[] = [];
  for (const layer of layers) {
    const tar = tarOf(layer.file, layer.content);
    diffIds.push(sha256(tar));
    const gz = gzipSync(tar, { level: 1 });
    layerDigests.push(await writeBlob(dir, gz));
    layerSizes.push(gz.length);
  }
  const config = Buffer.from(
    JSON.stringify({
      ...(spec.created ? { created: spec.created } : {}),
      architecture: spec.architecture ?? 'amd64',
      os: 'linux',
      config: spec.config ?? {},
      rootfs: { type: 'layers', diff_ids: diffIds },
      ...(spec.history ? { history: spec.history } : {}),
    }),
  );
  const configDigest = await writeBlob(dir, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layerDigests.map((digest, i) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest,
        size: layerSizes[i],
      })),
    }),
  );
  const manifestDigest = await writeBlob(dir, manifest);
  return { manifestDigest, manifestSize: manifest.length, configDigest, layerDigests, layerSizes };
}

/** Writes index.json with a single entry tagged `latest`. */
async function writeLayoutIndex(dir: string, mediaType: string, digest: string, size: number): Promise<void> {
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType, digest, size, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
    }),
  );
}

/** Writes an OCI layout with one image (tag `latest`) made of the given layers. */
export async function buildOciImage(dir: string, layers: LayerSpec[], options: ImageConfigSpec = {}): Promise<BuiltImage> {
  await initLayout(dir);
  const image = await writeImage(dir, layers, options);
  await writeLayoutIndex(dir, 'application/vnd.oci.image.manifest.v1+json', image.manifestDigest, image.manifestSize);
  const { manifestDigest, configDigest, layerDigests, layerSizes } = image;
  return { dir, manifestDigest, configDigest, layerDigests, layerSizes };
}

export interface PlatformSpec {
  /** OCI architecture, e.g. amd64, arm64. */
  architecture: string;
  layers: LayerSpec[];
}

export interface BuiltIndex {
  dir: string;
  /** Digest of the image index blob that index.json tags `latest`. */
  indexDigest: string;
  /** One image per platform, in the order given. */
  images: (BuiltImage & { architecture: string })[];
}

/**
 * Writes an OCI layout whose `latest` is a multi-platform image index: one linux image per
 * platform, each listed in the index with its `platform`.
 */
export async function buildOciIndex(dir: string, platforms: PlatformSpec[]): Promise<BuiltIndex> {
  await initLayout(dir);
  const images: BuiltIndex['images'] = [];
  const descriptors: object[] = [];
  for (const { architecture, layers } of platforms) {
    const image = await writeImage(dir, layers, { architecture });
    const { manifestDigest, configDigest, layerDigests, layerSizes } = image;
    images.push({ dir, architecture, manifestDigest, configDigest, layerDigests, layerSizes });
    descriptors.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: manifestDigest,
      size: image.manifestSize,
      platform: { architecture, os: 'linux' },
    });
  }
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descriptors }),
  );
  const indexDigest = await writeBlob(dir, index);
  await writeLayoutIndex(dir, 'application/vnd.oci.image.index.v1+json', indexDigest, index.length);
  return { dir, indexDigest, images };
}
