/**
 * Images for the benchmark, as OCI layouts skopeo pushes from. The large layer is streamed
 * to disk (gzip level 0: a valid gzip of incompressible bytes, so no client recompresses it
 * and no one holds 512 MiB in memory).
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { buildOciImage, seededBytes, tarOf, type BuiltImage } from '../../test/helpers/oci-layout.js';

export async function buildManyLayerImage(dir: string, seed: string, layers: number, layerBytes: number): Promise<BuiltImage> {
  return buildOciImage(
    dir,
    Array.from({ length: layers }, (_, i) => ({ file: `layer-${i}`, content: seededBytes(`${seed}-${i}`, layerBytes) })),
  );
}

/** A one-layer image whose layer holds `size` random bytes; returns the layer's compressed size, digest and file. */
export async function buildLargeImage(dir: string, size: number): Promise<{ layerBytes: number; layerDigest: string; layerFile: string }> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await fs.mkdir(blobs, { recursive: true });
  const tmp = path.join(dir, 'layer.tmp');
  const tarHeader = tarOf('large.bin', Buffer.alloc(0)).subarray(0, 512);
  // Rewrite the size field for the real content length.
  tarHeader.write(size.toString(8).padStart(11, '0') + '\0', 124);
  tarHeader.write('        ', 148);
  let checksum = 0;
  for (const byte of tarHeader) checksum += byte;
  tarHeader.write(checksum.toString(8).padStart(6, '0') + '\0 ', 148);

  const diff = createHash('sha256');
  const compressed = createHash('sha256');
  let compressedSize = 0;
  async function* tarStream() {
    yield tarHeader;
    const block = 1024 * 1024;
    for (let written = 0; written < size; written += block) yield randomBytes(Math.min(block, size - written));
    yield Buffer.alloc((512 - (size % 512)) % 512);
    yield Buffer.alloc(1024);
  }
  const hashDiff = new Transform({
    transform(chunk: Buffer, _e, cb) {
      diff.update(chunk);
      cb(null, chunk);
    },
  });
  const hashCompressed = new Transform({
    transform(chunk: Buffer, _e, cb) {
      compressed.update(chunk);
      compressedSize += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(Readable.from(tarStream()), hashDiff, createGzip({ level: 0 }), hashCompressed, createWriteStream(tmp));
  const layerDigest = `sha256:${compressed.digest('hex')}`;
  await fs.rename(tmp, path.join(blobs, layerDigest.slice(7)));
  const writeJson = async (value: unknown) => {
    const bytes = Buffer.from(JSON.stringify(value));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await fs.writeFile(path.join(blobs, digest.slice(7)), bytes);
    return { digest, size: bytes.length };
  };
  const config = await writeJson({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${diff.digest('hex')}`] } });
  const manifest = await writeJson({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: compressedSize }],
  });
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
      ],
    }),
  );
  return { layerBytes: compressedSize, layerDigest, layerFile: path.join(blobs, layerDigest.slice(7)) };
}

/** Total size of the files under a folder (a pulled image). */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}
