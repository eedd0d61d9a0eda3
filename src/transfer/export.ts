/**
 * Exports a tag (or digest) of a repository as an OCI image layout tarball, streamed: the
 * `oci-layout` file, `index.json` naming the image by its tag (`org.opencontainers.image.ref.name`),
 * then every manifest (an index with its children) and blob under `blobs/<alg>/<hex>`, each
 * read from the blob store as it is written. What `skopeo copy oci-archive:FILE …`, `podman
 * load`, `docker load` (Docker 25+) and the registry's own import read. Entries carry a fixed
 * modification time, so exporting the same image twice gives the same bytes.
 */
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { MEDIA_TYPES } from '../registry/media-types.js';
import { parseManifest } from '../registry/manifests.js';
import { RegistryError } from '../registry/errors.js';
import { assertName, looksLikeDigest, parseDigest } from '../registry/references.js';
import type { Registry } from '../registry/registry.js';
import { OCI_REF_NAME } from './import.js';

const MTIME = new Date(0);

export interface ExportedImage {
  digest: string;
  mediaType: string;
  /** Manifests and blobs in the archive. */
  manifests: number;
  blobs: number;
  /** Sum of the blob and manifest bytes (the archive adds tar headers and padding). */
  contentBytes: number;
  /** The tar stream; it fails (is destroyed) if a blob cannot be read midway. */
  stream: Readable;
}

interface ExportPlan {
  root: { digest: string; mediaType: string; size: number };
  manifests: Array<{ digest: string; content: Buffer }>;
  blobs: Array<{ digest: string; size: number }>;
}

export class ImageExporter {
  constructor(private readonly registry: Registry) {}

  /**
   * Resolves the image first, so a missing repository, tag or blob is reported (with the
   * registry's error) before any byte of the archive is produced.
   */
  async export(repository: string, reference: string): Promise<ExportedImage> {
    const plan = await this.plan(repository, reference);
    const tag = looksLikeDigest(reference) ? undefined : reference;
    const pack = tar.pack();
    const write = async () => {
      const index = {
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociIndex,
        manifests: [{ ...plan.root, ...(tag ? { annotations: { [OCI_REF_NAME]: tag } } : {}) }],
      };
      await addBuffer(pack, 'oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
      await addBuffer(pack, 'index.json', Buffer.from(JSON.stringify(index)));
      await addDirectory(pack, 'blobs');
      const algorithms = new Set([...plan.manifests, ...plan.blobs].map((entry) => parseDigest(entry.digest).algorithm));
      for (const algorithm of algorithms) await addDirectory(pack, `blobs/${algorithm}`);
      for (const manifest of plan.manifests) await addBuffer(pack, blobName(manifest.digest), manifest.content);
      for (const blob of plan.blobs) {
        await addStream(pack, blobName(blob.digest), blob.size, await this.registry.blobs.read(blob));
      }
      pack.finalize();
    };
    write().catch((error: unknown) => pack.destroy(error as Error));
    return {
      digest: plan.root.digest,
      mediaType: plan.root.mediaType,
      manifests: plan.manifests.length,
      blobs: plan.blobs.length,
      contentBytes: plan.manifests.reduce((sum, m) => sum + m.content.length, 0) + plan.blobs.reduce((sum, b) => sum + b.size, 0),
      stream: Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false }),
    };
  }

  private async plan(repository: string, reference: string): Promise<ExportPlan> {
    const root = await this.registry.manifests.get(repository, reference);
    const manifests = new Map<string, Buffer>();
    const blobs = new Map<string, number>();
    const visit = async (digest: string, depth: number): Promise<void> => {
      if (manifests.has(digest)) return;
      const record = digest === root.digest ? root : await this.registry.manifests.get(repository, digest);
      manifests.set(digest, record.content);
      const parsed = parseManifest(record.content, record.mediaType, record.digest);
      for (const target of parsed.references) {
        if (target.kind === 'manifest') {
          if (depth < 4) await visit(target.digest, depth + 1);
        } else if (!blobs.has(target.digest)) {
          blobs.set(target.digest, (await this.registry.blobs.get(repository, target.digest)).size);
        }
      }
    };
    await visit(root.digest, 0);
    return {
      root: { digest: root.digest, mediaType: root.mediaType, size: root.size },
      manifests: [...manifests].map(([digest, content]) => ({ digest, content })),
      blobs: [...blobs].map(([digest, size]) => ({ digest, size })),
    };
  }
}

/** `name:tag` or `name@digest` (the name may hold `/`, never `:` or `@`). */
export function parseImageReference(text: string): { repository: string; reference: string } {
  const at = text.lastIndexOf('@');
  const colon = text.lastIndexOf(':');
  let repository: string;
  let reference: string;
  if (at > 0) {
    repository = text.slice(0, at);
    reference = text.slice(at + 1);
  } else if (colon > 0 && !text.slice(colon).includes('/')) {
    repository = text.slice(0, colon);
    reference = text.slice(colon + 1);
  } else {
    throw new RegistryError('NAME_INVALID', `expected <repository>:<tag> or <repository>@<digest>, not ${JSON.stringify(text.slice(0, 200))}`, undefined, { status: 400 });
  }
  return { repository: assertName(repository), reference };
}

function blobName(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

function addBuffer(pack: tar.Pack, name: string, content: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, size: content.length, mode: 0o644, mtime: MTIME }, content, (error) => (error ? reject(error) : resolve()));
  });
}

function addDirectory(pack: tar.Pack, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, type: 'directory', mode: 0o755, mtime: MTIME }, (error) => (error ? reject(error) : resolve()));
  });
}

/** Writes one entry from a stream, honouring backpressure; the stream must hold exactly `size` bytes. */
async function addStream(pack: tar.Pack, name: string, size: number, source: Readable): Promise<void> {
  let settle!: (error?: Error | null) => void;
  const finished = new Promise<void>((resolve, reject) => {
    settle = (error) => (error ? reject(error) : resolve());
  });
  const sink = pack.entry({ name, size, mode: 0o644, mtime: MTIME }, (error) => settle(error));
  try {
    for await (const chunk of source) {
      if (!sink.write(chunk as Buffer)) await new Promise<void>((resolve) => sink.once('drain', resolve));
    }
    sink.end(undefined);
  } catch (error) {
    sink.destroy(error as Error);
    throw error;
  }
  await finished;
}
