/**
 * Generated metadata for the scale measures: one repository with many tags and many
 * repositories, written the way each registry keeps them — our SQLite through the metadata
 * store, distribution's link files on disk.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { SqliteMetadataStore } from '../../src/metadata/sqlite/metadata-store.js';
import { digestBytes } from '../../src/registry/digests.js';
import { ANONYMOUS_ACTOR } from '../../src/registry/ports.js';

export interface ScaleSpec {
  tagRepository: string;
  tags: number;
  repositories: number;
}

export const tagName = (i: number) => `t${String(i).padStart(6, '0')}`;
export const repositoryName = (i: number) => `scale/repo-${String(i).padStart(5, '0')}`;

function manifestBytes(): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [],
    }),
  );
}

export async function seedOurs(root: string, spec: ScaleSpec): Promise<void> {
  const store = new SqliteMetadataStore(path.join(root, 'registry.db'));
  const content = manifestBytes();
  const manifest = {
    digest: digestBytes(content),
    mediaType: 'application/vnd.oci.image.index.v1+json',
    size: content.length,
    content,
    subject: null,
    artifactType: null,
    annotations: null,
    references: [],
  };
  store.db.transaction(() => {
    for (let i = 0; i < spec.tags; i++) void store.putManifest(spec.tagRepository, manifest, tagName(i), ANONYMOUS_ACTOR);
    for (let i = 0; i < spec.repositories; i++) void store.putManifest(repositoryName(i), manifest, 'latest', ANONYMOUS_ACTOR);
  })();
  await store.close();
}

export async function seedDistribution(root: string, spec: ScaleSpec): Promise<void> {
  const content = manifestBytes();
  const digest = digestBytes(content);
  const hex = digest.slice(7);
  const v2 = path.join(root, 'docker', 'registry', 'v2');
  const blobDir = path.join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex);
  await fs.mkdir(blobDir, { recursive: true });
  await fs.writeFile(path.join(blobDir, 'data'), content);
  const seedRepository = async (name: string, tags: string[]) => {
    const manifests = path.join(v2, 'repositories', name, '_manifests');
    await fs.mkdir(path.join(manifests, 'revisions', 'sha256', hex), { recursive: true });
    await fs.writeFile(path.join(manifests, 'revisions', 'sha256', hex, 'link'), digest);
    await fs.mkdir(path.join(v2, 'repositories', name, '_layers'), { recursive: true });
    for (const tag of tags) {
      await fs.mkdir(path.join(manifests, 'tags', tag, 'current'), { recursive: true });
      await fs.writeFile(path.join(manifests, 'tags', tag, 'current', 'link'), digest);
    }
  };
  const tags = Array.from({ length: spec.tags }, (_, i) => tagName(i));
  for (let i = 0; i < tags.length; i += 1000) await seedRepository(spec.tagRepository, tags.slice(i, i + 1000));
  const batch = 50;
  for (let i = 0; i < spec.repositories; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, spec.repositories - i) }, (_, j) => seedRepository(repositoryName(i + j), ['latest'])),
    );
  }
}
