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

/** Writes an OCI layout with one image (tag `latest`) made of the given layers. */
export async function buildOciImage(dir: string, layers: LayerSpec[], options: { architecture?: string } = {}): Promise<BuiltImage> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
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
      architecture: options.architecture ?? 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: diffIds },
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
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }),
  );
  return { dir, manifestDigest, configDigest, layerDigests, layerSizes };
}
