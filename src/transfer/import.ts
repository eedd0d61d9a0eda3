/**
 * Imports an image from an archive on disk into a repository and tag, without a daemon:
 *
 * - an OCI image layout tarball (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`, as written by
 *   `skopeo copy … oci-archive:`, `docker buildx --output type=oci` or `docker save` of Docker 25+):
 *   manifests, configs and layers are imported byte for byte, so every digest is kept;
 * - a `docker save` tarball (`manifest.json`, `<id>.json` configs, `<id>/layer.tar` layers, as
 *   also written by `skopeo copy … docker-archive:`): the layers are kept as they are (docker save
 *   holds uncompressed tars, so their digests are the image's diff_ids and the image ID stays the
 *   same), and an OCI image manifest is written over them with the media types
 *   `application/vnd.oci.image.layer.v1.tar` (or `+gzip`/`+zstd` when a layer is compressed) and
 *   `application/vnd.oci.image.config.v1+json`.
 *
 * An archive holding both (Docker 25+) is read as the OCI layout. Plain or gzip-compressed.
 *
 * Two passes over the file: the first reads the small JSON documents (index, manifests,
 * configs) and hashes entries whose digest their name does not tell; the second streams only
 * the blobs the registry lacks into upload sessions, so dedupe and digest verification are
 * those of a push. Blobs already stored anywhere in the registry are linked, not stored again.
 * The manifests are then pushed (an index's children first), the chosen one under the tag.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { MEDIA_TYPES, manifestKind } from '../registry/media-types.js';
import { UNRESTRICTED_ACCESS, type Actor } from '../registry/ports.js';
import { assertName, assertTag, parseDigest } from '../registry/references.js';
import type { Registry } from '../registry/registry.js';
import { ArchiveError, normaliseName, readTar, type TarEntryHeader } from './tar-reader.js';

export const OCI_REF_NAME = 'org.opencontainers.image.ref.name';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

/** JSON documents kept from the first pass, in total; an archive with more is refused. */
const JSON_BUDGET_BYTES = 64 * 1024 * 1024;
/** Entries listed in the first pass; more is not an image archive. */
const MAX_ENTRIES = 200_000;
const LINK_DEPTH = 16;

export interface ImportRequest {
  repository: string;
  tag: string;
  /**
   * Which image of a multi-image archive: a `org.opencontainers.image.ref.name` or a manifest
   * digest of the OCI index, or a RepoTag of docker save's manifest.json. Unset: the only one.
   */
  source?: string;
  actor: Actor;
}

export interface ImportResult {
  repository: string;
  tag: string;
  format: 'oci-layout' | 'docker-archive';
  /** Digest and media type of the manifest now tagged. */
  digest: string;
  mediaType: string;
  /** Manifests pushed (an index and its children, or one image manifest). */
  manifests: number;
  /** Distinct blobs the image needs, those uploaded from the archive, and those already stored. */
  blobs: number;
  blobsUploaded: number;
  blobsExisting: number;
  bytesUploaded: number;
  /** What was done differently from a plain copy, e.g. an index cut down to the platforms the archive holds. */
  notes: string[];
}

interface EntryInfo {
  size: number;
  /** sha256 of the content, for entries whose name is not their digest. */
  sha256?: string;
  /** The content, for small JSON documents. */
  json?: Buffer;
  /** The first bytes (compression sniffing). */
  head: Buffer;
}

interface ArchiveIndex {
  files: Map<string, EntryInfo>;
  links: Map<string, string>;
}

interface PlannedBlob {
  digest: string;
  size: number;
  /** The archive entry holding it. */
  entry: string;
}

interface PlannedManifest {
  /** Tag for the last (chosen) manifest, digest for the others. */
  reference: string;
  mediaType: string;
  bytes: Buffer;
  digest: string;
}

interface ImportPlan {
  format: ImportResult['format'];
  /** What the import did differently from a plain copy (an index cut down to the platforms present). */
  notes: string[];
  blobs: PlannedBlob[];
  /** In push order: children before the index that lists them; the last one gets the tag. */
  manifests: PlannedManifest[];
}

export class ImageImporter {
  constructor(private readonly registry: Registry) {}

  async import(file: string, request: ImportRequest): Promise<ImportResult> {
    const repository = assertName(request.repository);
    const tag = assertTag(request.tag);
    const index = await this.scan(file);
    const plan = planImport(index, tag, request.source);

    // Link what the registry already holds; upload the rest from the archive.
    const missing = new Map<string, PlannedBlob>();
    let existing = 0;
    for (const blob of plan.blobs) {
      const linked = await this.registry.blobs.mount(repository, blob.digest, undefined, UNRESTRICTED_ACCESS, request.actor);
      if (linked && linked.size === blob.size) existing++;
      else missing.set(blob.entry, blob);
    }
    let bytesUploaded = 0;
    if (missing.size > 0) {
      await readTar(file, async (header, body) => {
        const blob = header.type === 'file' ? missing.get(header.name) : undefined;
        if (!blob) return;
        if (header.size !== blob.size) throw new ArchiveError(`${header.name} changed while it was imported`);
        await this.registry.uploads.uploadWhole(repository, blob.digest, { body: Readable.from(body), length: blob.size }, request.actor);
        bytesUploaded += blob.size;
        missing.delete(header.name);
      });
      const left = [...missing.values()][0];
      if (left) throw new ArchiveError(`${left.entry} disappeared while the archive was imported`);
    }

    for (const manifest of plan.manifests) {
      await this.registry.manifests.put(repository, manifest.reference, manifest.mediaType, manifest.bytes, request.actor);
    }
    const chosen = plan.manifests[plan.manifests.length - 1]!;
    return {
      repository,
      tag,
      format: plan.format,
      digest: chosen.digest,
      mediaType: chosen.mediaType,
      manifests: plan.manifests.length,
      blobs: plan.blobs.length,
      blobsUploaded: plan.blobs.length - existing,
      blobsExisting: existing,
      bytesUploaded,
      notes: plan.notes,
    };
  }

  /** First pass: every entry's size and links, the JSON documents, and hashes of entries not named by digest. */
  private async scan(file: string): Promise<ArchiveIndex> {
    const files = new Map<string, EntryInfo>();
    const links = new Map<string, string>();
    let jsonBytes = 0;
    let entries = 0;
    await readTar(file, async (header: TarEntryHeader, body) => {
      if (++entries > MAX_ENTRIES) throw new ArchiveError(`archive has more than ${MAX_ENTRIES} entries`);
      if ((header.type === 'symlink' || header.type === 'link') && header.target) {
        links.set(header.name, header.target);
        return;
      }
      if (header.type !== 'file') return;
      const namedByDigest = blobDigestOf(header.name) !== null;
      const hash = namedByDigest ? null : createHash('sha256');
      const maybeJson = header.size <= this.registry.manifests.options.maxManifestBytes;
      let chunks: Buffer[] | null = maybeJson ? [] : null;
      let head: Buffer | null = null;
      for await (const chunk of body) {
        if (head === null) {
          head = chunk.subarray(0, 8);
          if (chunks && !looksLikeJson(chunk)) chunks = null;
        }
        hash?.update(chunk);
        chunks?.push(chunk);
      }
      let json: Buffer | undefined;
      if (chunks) {
        jsonBytes += header.size;
        if (jsonBytes > JSON_BUDGET_BYTES) throw new ArchiveError(`archive holds more than ${JSON_BUDGET_BYTES} bytes of JSON documents`);
        json = Buffer.concat(chunks);
      }
      files.set(header.name, { size: header.size, sha256: hash ? `sha256:${hash.digest('hex')}` : undefined, json, head: head ?? Buffer.alloc(0) });
    });
    return { files, links };
  }
}

/** Decides what to upload and push from the first pass. */
export function planImport(index: ArchiveIndex, tag: string, source: string | undefined): ImportPlan {
  if (index.files.has('index.json') && (index.files.has('oci-layout') || !index.files.has('manifest.json'))) {
    return planOciLayout(index, tag, source);
  }
  if (index.files.has('manifest.json')) return planDockerArchive(index, tag, source);
  throw new ArchiveError('not an image archive: it has neither index.json (OCI image layout) nor manifest.json (docker save)');
}

// ---------------------------------------------------------------------------- OCI image layout

interface LayoutDescriptor {
  platform?: { os?: string; architecture?: string; variant?: string };
  mediaType?: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
}

function planOciLayout(index: ArchiveIndex, tag: string, source: string | undefined): ImportPlan {
  const layout = parseJson(index, 'oci-layout', false) as { imageLayoutVersion?: unknown } | undefined;
  if (layout && typeof layout.imageLayoutVersion === 'string' && !layout.imageLayoutVersion.startsWith('1.')) {
    throw new ArchiveError(`unsupported OCI image layout version ${layout.imageLayoutVersion}`);
  }
  const top = parseJson(index, 'index.json', true) as { manifests?: unknown };
  if (!Array.isArray(top.manifests) || top.manifests.length === 0) throw new ArchiveError('index.json lists no manifests');
  const candidates = top.manifests.map((entry, i) => descriptorOf(entry, `index.json manifests[${i}]`));
  const chosen = chooseLayoutEntry(candidates, source);

  const planned = planLayoutImage(index, chosen, tag);
  // Children of an index may share blobs, and an index may list a manifest twice.
  const blobs = new Map(planned.blobs.map((blob) => [blob.digest, blob]));
  const children = new Map(planned.manifests.filter((m) => m.digest !== planned.manifest.digest).map((m) => [m.digest, m]));
  return { format: 'oci-layout', blobs: [...blobs.values()], manifests: [...children.values(), planned.manifest], notes: planned.notes };
}

interface PlannedImage {
  /** The manifest to tag (or to push by digest, for an index's child). */
  manifest: PlannedManifest;
  /** What must be pushed before it: child manifests in push order. */
  manifests: PlannedManifest[];
  blobs: PlannedBlob[];
  notes: string[];
}

/** A manifest of the layout and everything it needs; throws ArchiveError when something is missing. */
function planLayoutImage(index: ArchiveIndex, descriptor: LayoutDescriptor, tag: string | null, depth = 0): PlannedImage {
  if (depth > 4) throw new ArchiveError('manifests nest too deeply');
  const entry = layoutBlobEntry(index, descriptor);
  const bytes = index.files.get(entry)?.json;
  if (!bytes) throw new ArchiveError(`manifest ${descriptor.digest} is not a JSON document of at most the registry's manifest size limit`);
  if (digestOf(bytes, descriptor.digest) !== descriptor.digest) throw new ArchiveError(`${entry} does not hold content of digest ${descriptor.digest}`);
  const parsed = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  const mediaType = descriptor.mediaType ?? (typeof parsed.mediaType === 'string' ? parsed.mediaType : undefined) ?? inferLayoutType(parsed);
  const kind = manifestKind(mediaType);
  if (!kind) throw new ArchiveError(`manifest ${descriptor.digest} has unsupported media type ${mediaType}`);
  const self: PlannedManifest = { reference: tag ?? descriptor.digest, mediaType, bytes, digest: descriptor.digest };

  if (kind === 'image') {
    const config = descriptorOf(parsed.config, `${descriptor.digest} config`);
    const layers = Array.isArray(parsed.layers) ? parsed.layers.map((layer, i) => descriptorOf(layer, `${descriptor.digest} layers[${i}]`)) : [];
    const blobs = [config, ...layers]
      // Non-distributable layers hosted elsewhere need not be in the archive (nor the registry).
      .filter((blob) => !(blob.urls?.length && !index.files.has(blobEntryName(blob.digest))))
      .map((blob) => ({ digest: blob.digest, size: blob.size, entry: layoutBlobEntry(index, blob) }));
    return { manifest: self, manifests: [], blobs, notes: [] };
  }

  // An index: every child that the archive holds completely, each before the index.
  const children = (Array.isArray(parsed.manifests) ? parsed.manifests : []).map((child, i) => descriptorOf(child, `${descriptor.digest} manifests[${i}]`));
  const present: Array<{ descriptor: LayoutDescriptor; planned: PlannedImage }> = [];
  const missing: Array<{ descriptor: LayoutDescriptor; why: string }> = [];
  for (const child of children) {
    try {
      present.push({ descriptor: child, planned: planLayoutImage(index, child, null, depth + 1) });
    } catch (error) {
      if (!(error instanceof ArchiveError)) throw error;
      missing.push({ descriptor: child, why: error.message });
    }
  }
  const gather = (parts: PlannedImage[]) => ({
    manifests: parts.flatMap((part) => [...part.manifests, part.manifest]),
    blobs: parts.flatMap((part) => part.blobs),
    notes: parts.flatMap((part) => part.notes),
  });
  if (missing.length === 0) return { manifest: self, ...gather(present.map((p) => p.planned)) };
  // Docker 25+ (containerd image store) saves an index listing every platform but the content
  // of the local one only. Depth 0 only: a nested partial index cannot be completed.
  if (depth > 0 || present.length === 0) throw new ArchiveError(missing[0]!.why);
  const platforms = (list: typeof missing) => list.map(({ descriptor: d }) => platformOf(d) ?? d.digest).join(', ');
  const note = `the index lists ${children.length} manifests but the archive holds ${present.length} completely; left out: ${platforms(missing)}`;
  if (present.length === 1) {
    const only = present[0]!.planned;
    return { ...only, manifest: { ...only.manifest, reference: tag ?? only.manifest.reference }, notes: [...only.notes, `${note}; tagged the one present`] };
  }
  // Several present: a new index of those (its digest differs from the archive's).
  const subset = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: present.map((p) => rawDescriptor(parsed, p.descriptor.digest)) }));
  const gathered = gather(present.map((p) => p.planned));
  return {
    manifest: { reference: tag ?? digestOf(subset, 'sha256'), mediaType: MEDIA_TYPES.ociIndex, bytes: subset, digest: digestOf(subset, 'sha256') },
    ...gathered,
    notes: [...gathered.notes, `${note}; tagged a new index of the ones present`],
  };
}

/** The descriptor object exactly as the index lists it (platform and annotations included). */
function rawDescriptor(parsed: Record<string, unknown>, digest: string): unknown {
  return (parsed.manifests as Array<{ digest?: unknown }>).find((entry) => entry.digest === digest);
}

function platformOf(descriptor: LayoutDescriptor): string | null {
  const platform = descriptor.platform;
  if (!platform?.os || !platform.architecture) return null;
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

function chooseLayoutEntry(candidates: LayoutDescriptor[], source: string | undefined): LayoutDescriptor {
  const name = (d: LayoutDescriptor) => d.annotations?.[OCI_REF_NAME];
  if (source !== undefined) {
    const found = candidates.find((d) => name(d) === source || d.digest === source);
    if (!found) throw new ArchiveError(`the archive has no image ${source}; it has: ${describeCandidates(candidates.map((d) => name(d) ?? d.digest))}`);
    return found;
  }
  if (candidates.length > 1) {
    throw new ArchiveError(`the archive holds ${candidates.length} images; choose one with source: ${describeCandidates(candidates.map((d) => name(d) ?? d.digest))}`);
  }
  return candidates[0]!;
}

/** The entry holding a layout blob, checked to exist with the descriptor's size. */
function layoutBlobEntry(index: ArchiveIndex, descriptor: LayoutDescriptor): string {
  const name = blobEntryName(descriptor.digest);
  const entry = resolve(index, name);
  const info = entry ? index.files.get(entry) : undefined;
  if (!entry || !info) throw new ArchiveError(`the archive lacks blob ${descriptor.digest} (${name})`);
  if (info.size !== descriptor.size) throw new ArchiveError(`${name} holds ${info.size} bytes, but its descriptor says ${descriptor.size}`);
  return entry;
}

function inferLayoutType(parsed: Record<string, unknown>): string {
  if (Array.isArray(parsed.manifests)) return MEDIA_TYPES.ociIndex;
  return MEDIA_TYPES.ociManifest;
}

// ---------------------------------------------------------------------------- docker save

interface DockerArchiveEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

function planDockerArchive(index: ArchiveIndex, tag: string, source: string | undefined): ImportPlan {
  const list = parseJson(index, 'manifest.json', true);
  if (!Array.isArray(list) || list.length === 0) throw new ArchiveError('manifest.json lists no images');
  const entries = list as DockerArchiveEntry[];
  const entry = chooseDockerEntry(entries, source);
  if (typeof entry.Config !== 'string' || !Array.isArray(entry.Layers)) throw new ArchiveError('manifest.json entry lacks Config or Layers');

  const configEntry = resolve(index, normaliseName(entry.Config) ?? '');
  const configInfo = configEntry ? index.files.get(configEntry) : undefined;
  if (!configEntry || !configInfo?.json) throw new ArchiveError(`the archive lacks the image config ${entry.Config}`);
  const configDigest = entryDigest(configEntry, configInfo);
  const config = JSON.parse(configInfo.json.toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
  const diffIds = Array.isArray(config.rootfs?.diff_ids) ? (config.rootfs.diff_ids as unknown[]) : null;
  if (diffIds && diffIds.length !== entry.Layers.length) {
    throw new ArchiveError(`the image config lists ${diffIds.length} layers (rootfs.diff_ids) but manifest.json ${entry.Layers.length}`);
  }

  const blobs = new Map<string, PlannedBlob>([[configDigest, { digest: configDigest, size: configInfo.size, entry: configEntry }]]);
  const layers = entry.Layers.map((layerPath, i) => {
    const name = typeof layerPath === 'string' ? resolve(index, normaliseName(layerPath) ?? '') : null;
    const info = name ? index.files.get(name) : undefined;
    if (!name || !info) throw new ArchiveError(`the archive lacks layer ${String(layerPath)}`);
    const digest = entryDigest(name, info);
    const compression = compressionOf(info.head);
    if (compression === '' && diffIds && diffIds[i] !== digest) {
      throw new ArchiveError(`layer ${String(layerPath)} has digest ${digest}, but the image config says ${String(diffIds[i])}`);
    }
    blobs.set(digest, { digest, size: info.size, entry: name });
    return { mediaType: OCI_LAYER + compression, digest, size: info.size };
  });

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: configInfo.size },
      layers,
    }),
  );
  const digest = digestOf(manifest, 'sha256');
  return {
    format: 'docker-archive',
    blobs: [...blobs.values()],
    manifests: [{ reference: tag, mediaType: MEDIA_TYPES.ociManifest, bytes: manifest, digest }],
    notes: [],
  };
}

function chooseDockerEntry(entries: DockerArchiveEntry[], source: string | undefined): DockerArchiveEntry {
  const tagsOf = (entry: DockerArchiveEntry) => (Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((t): t is string => typeof t === 'string') : []);
  const describe = () => describeCandidates(entries.map((entry, i) => tagsOf(entry).join(', ') || `#${i} (untagged)`));
  if (source !== undefined) {
    const found = entries.find((entry) => tagsOf(entry).some((repoTag) => repoTag === source || repoTag.endsWith(`/${source}`)));
    if (!found) throw new ArchiveError(`the archive has no image ${source}; it has: ${describe()}`);
    return found;
  }
  if (entries.length > 1) throw new ArchiveError(`the archive holds ${entries.length} images; choose one with source: ${describe()}`);
  return entries[0]!;
}

/** `+gzip`, `+zstd`, or '' for an uncompressed tar, from a layer's first bytes. */
function compressionOf(head: Buffer): '' | '+gzip' | '+zstd' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return '+gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return '+zstd';
  return '';
}

// ---------------------------------------------------------------------------- shared

function entryDigest(name: string, info: EntryInfo): string {
  const digest = blobDigestOf(name) ?? info.sha256;
  if (!digest) throw new ArchiveError(`cannot tell the digest of ${name}`);
  return digest;
}

function digestOf(bytes: Buffer, like: string): string {
  const algorithm = like.startsWith('sha512:') ? 'sha512' : 'sha256';
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** `blobs/sha256/<hex>` → `sha256:<hex>`. */
function blobDigestOf(name: string): string | null {
  const match = /^blobs\/(sha256|sha512)\/([a-f0-9]{64}|[a-f0-9]{128})$/.exec(name);
  return match ? `${match[1]}:${match[2]}` : null;
}

function blobEntryName(digest: string): string {
  const { algorithm, hex } = parseDigestOrThrow(digest);
  return `blobs/${algorithm}/${hex}`;
}

function parseDigestOrThrow(digest: string): { algorithm: string; hex: string } {
  try {
    return parseDigest(digest);
  } catch {
    throw new ArchiveError(`invalid digest in the archive: ${JSON.stringify(digest)}`);
  }
}

/** Follows symbolic and hard links to the file entry they name. */
function resolve(index: ArchiveIndex, name: string): string | null {
  let current = name;
  for (let depth = 0; depth < LINK_DEPTH; depth++) {
    if (index.files.has(current)) return current;
    const next = index.links.get(current);
    if (next === undefined) return null;
    current = next;
  }
  return null;
}

function parseJson(index: ArchiveIndex, name: string, required: true): unknown;
function parseJson(index: ArchiveIndex, name: string, required: false): unknown | undefined;
function parseJson(index: ArchiveIndex, name: string, required: boolean): unknown {
  const entry = resolve(index, name);
  const info = entry ? index.files.get(entry) : undefined;
  if (!info?.json) {
    if (!required && !info) return undefined;
    throw new ArchiveError(`${name} is missing or is not a JSON document`);
  }
  try {
    return JSON.parse(info.json.toString('utf8'));
  } catch (error) {
    throw new ArchiveError(`${name} is not valid JSON: ${(error as Error).message}`);
  }
}

function descriptorOf(value: unknown, where: string): LayoutDescriptor {
  const d = value as Partial<LayoutDescriptor> | null;
  if (!d || typeof d !== 'object' || typeof d.digest !== 'string' || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new ArchiveError(`${where} is not a valid descriptor`);
  }
  parseDigestOrThrow(d.digest);
  return {
    mediaType: typeof d.mediaType === 'string' ? d.mediaType : undefined,
    digest: d.digest,
    size: d.size,
    urls: Array.isArray(d.urls) ? d.urls.filter((u): u is string => typeof u === 'string') : undefined,
    annotations: d.annotations && typeof d.annotations === 'object' ? (d.annotations as Record<string, string>) : undefined,
    platform: d.platform && typeof d.platform === 'object' ? d.platform : undefined,
  };
}

function looksLikeJson(chunk: Buffer): boolean {
  for (const byte of chunk) {
    if (byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09) continue;
    return byte === 0x7b || byte === 0x5b; // { or [
  }
  return false;
}

function describeCandidates(names: string[]): string {
  const shown = names.slice(0, 20).join('; ');
  return names.length > 20 ? `${shown}; … (${names.length} in all)` : shown;
}
