/**
 * Manifests: validation on push, lookups by tag or digest, deletion, and the referrers
 * index built from `subject` fields. Bytes are stored exactly as pushed.
 */
import { digestBytes } from './digests.js';
import { isRegistryError, RegistryError } from './errors.js';
import { accepts, bareMediaType, isSchema1, manifestKind, MEDIA_TYPES } from './media-types.js';
import { immutableTagDeleted, immutableTagMoved, LifecyclePolicies, quotaExceeded } from './policies.js';
import type { Actor, ManifestDeleteState, ManifestPutGuard, ManifestRecord, MetadataStore, NewManifest, ReferrerRecord } from './ports.js';
import { parseDigest, parseManifestReference, type ManifestReference } from './references.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface PutManifestResult {
  digest: string;
  /** The subject's digest when the manifest has one (answered as `OCI-Subject`). */
  subject: string | null;
}

export interface ManifestServiceOptions {
  /** Largest manifest accepted, in bytes. */
  maxManifestBytes: number;
}

export interface ManifestDeleteOptions {
  /** Delete a manifest even though an index of the repository lists it (the index then lacks it). */
  force?: boolean;
}

export class ManifestService {
  constructor(
    private readonly metadata: MetadataStore,
    readonly options: ManifestServiceOptions,
    private readonly policies: LifecyclePolicies = new LifecyclePolicies(),
  ) {}

  async put(repository: string, reference: string, contentType: string | undefined, body: Buffer, actor: Actor): Promise<PutManifestResult> {
    const target = parseManifestReference(reference);
    if (body.length > this.options.maxManifestBytes) throw manifestTooLarge(this.options.maxManifestBytes);
    const digest = digestBytes(body, target.kind === 'digest' ? parseDigest(target.digest).algorithm : 'sha256');
    if (target.kind === 'digest' && target.digest !== digest) {
      throw new RegistryError('DIGEST_INVALID', `manifest body has digest ${digest}, not ${target.digest}`, {
        expected: target.digest,
        actual: digest,
      });
    }
    const manifest = parseManifest(body, bareMediaType(contentType), digest);
    await this.checkReferencesPresent(repository, manifest);
    const tag = target.kind === 'tag' ? target.tag : null;
    await this.metadata.putManifest(repository, manifest, tag, actor, this.putGuard(repository, tag, digest));
    return { digest, subject: manifest.subject };
  }

  /** The manifest a tag or digest names, if the client's Accept header admits its type. */
  async get(repository: string, reference: string, acceptHeader?: string): Promise<ManifestRecord> {
    const target = await this.lookupReference(repository, reference);
    const manifest =
      target.kind === 'tag' ? await this.metadata.getTaggedManifest(repository, target.tag) : await this.metadata.getManifest(repository, target.digest);
    if (!manifest) throw await this.unknown(repository, reference);
    if (!accepts(acceptHeader, manifest.mediaType)) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest is of type ${manifest.mediaType}, which the Accept header does not allow`, {
        mediaType: manifest.mediaType,
      });
    }
    return manifest;
  }

  /**
   * Deletes by digest (the manifest and its tags) or by tag (the tag alone, spec 1.1). Refused
   * (DENIED) when it would delete an immutable tag, and (MANIFEST_REFERENCED) when an index of
   * the repository lists the manifest, unless `force`.
   */
  async delete(repository: string, reference: string, actor: Actor, options: ManifestDeleteOptions = {}): Promise<void> {
    const target = await this.lookupReference(repository, reference);
    let deleted: boolean;
    if (target.kind === 'digest') {
      const guard = (state: ManifestDeleteState) => this.checkDeletable(repository, target.digest, state, options);
      deleted = (await this.metadata.deleteManifest(repository, target.digest, actor, guard)) !== null;
    } else {
      const rule = this.policies.immutableRule(repository, target.tag);
      if (rule && (await this.metadata.resolveTag(repository, target.tag)) !== null) {
        throw immutableTagDeleted(repository, target.tag, rule);
      }
      deleted = await this.metadata.deleteTag(repository, target.tag, actor);
    }
    if (!deleted) throw await this.unknown(repository, reference);
  }

  /** Manifests in the repository whose `subject` is `digest`, as an OCI index's descriptors. */
  async referrers(repository: string, digest: string, artifactType?: string): Promise<Descriptor[]> {
    parseDigest(digest);
    const records = await this.metadata.listReferrers(repository, digest, artifactType);
    return records.map(toDescriptor);
  }

  /** The checks a push runs inside its metadata transaction: immutable tags and the quota. */
  private putGuard(repository: string, tag: string | null, digest: string): ManifestPutGuard {
    const guard: ManifestPutGuard = {};
    const rule = tag === null ? null : this.policies.immutableRule(repository, tag);
    if (rule && tag !== null) {
      guard.tag = (current) => {
        // Re-pushing the digest the tag already names changes nothing and is allowed.
        if (current !== null && current !== digest) throw immutableTagMoved(repository, tag, rule, current);
      };
    }
    const quota = this.policies.quota(repository);
    if (quota) {
      guard.quota = ({ before, after }) => {
        // A push that adds nothing is never refused, even when a lowered quota is already exceeded.
        if (after > quota.maxBytes && after > before) throw quotaExceeded(repository, quota, after);
      };
    }
    return guard;
  }

  private checkDeletable(repository: string, digest: string, state: ManifestDeleteState, options: ManifestDeleteOptions): void {
    for (const tag of state.tags) {
      const rule = this.policies.immutableRule(repository, tag);
      if (rule) throw immutableTagDeleted(repository, tag, rule);
    }
    if (state.referencedBy.length > 0 && !options.force) throw manifestReferenced(repository, digest, state.referencedBy);
  }

  /**
   * The reference a read or delete names. One no manifest can have (an illegal tag, a malformed
   * or unverifiable digest) is simply not there: 404 as for any absent manifest, as the spec's
   * pull section and distribution answer, with the reason in the message. Only a push refuses
   * it as a client error (TAG_INVALID, DIGEST_INVALID).
   */
  private async lookupReference(repository: string, reference: string): Promise<ManifestReference> {
    try {
      return parseManifestReference(reference);
    } catch (error) {
      if (!isRegistryError(error)) throw error;
      throw await this.unknown(repository, reference, error.message);
    }
  }

  /** NAME_UNKNOWN or MANIFEST_UNKNOWN; `invalid` says why no manifest can have the reference. */
  private async unknown(repository: string, reference: string, invalid?: string): Promise<RegistryError> {
    if (!(await this.metadata.repositoryExists(repository))) {
      return new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known to the registry`, { name: repository });
    }
    if (invalid !== undefined) {
      const shown = JSON.stringify(reference.slice(0, 200));
      return new RegistryError('MANIFEST_UNKNOWN', `no manifest of repository ${repository} can be named ${shown}: ${invalid}`, {
        reference: reference.slice(0, 200),
        reason: invalid,
      });
    }
    return new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not known to repository ${repository}`, {
      reference,
    });
  }

  private async checkReferencesPresent(repository: string, manifest: NewManifest): Promise<void> {
    const blobs = manifest.references.filter((r) => r.kind === 'blob').map((r) => r.digest);
    const children = manifest.references.filter((r) => r.kind === 'manifest').map((r) => r.digest);
    const missingBlobs = blobs.length ? await this.metadata.missingBlobs(repository, blobs) : [];
    if (missingBlobs.length) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${missingBlobs[0]} is not in repository ${repository}`, {
        digests: missingBlobs,
      });
    }
    const missingChildren = children.length ? await this.metadata.missingManifests(repository, children) : [];
    if (missingChildren.length) {
      // Spec 1.1: a manifest refused for missing content answers MANIFEST_BLOB_UNKNOWN, child manifests included.
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `index references manifest ${missingChildren[0]}, which is not in repository ${repository}`,
        { digests: missingChildren },
      );
    }
  }
}

/**
 * MANIFEST_REFERENCED is not one of the spec's codes: clients that know only those show it as
 * `unknown: <message>` (distribution's Go client, containers/image) or print the body, so the
 * message alone names the indexes and says what to do; the detail lists them all.
 */
function manifestReferenced(repository: string, digest: string, indexes: string[]): RegistryError {
  const SHOWN = 3;
  const named = indexes.slice(0, SHOWN).join(', ') + (indexes.length > SHOWN ? ` and ${indexes.length - SHOWN} more` : '');
  const listedBy = indexes.length === 1 ? `index ${named}` : `${indexes.length} indexes (${named})`;
  const them = indexes.length === 1 ? 'the index' : 'those indexes';
  return new RegistryError(
    'MANIFEST_REFERENCED',
    `manifest ${digest} is listed by ${listedBy} in ${repository}; ` +
      `delete ${them} first, or delete with ?force=true to leave ${them} without it`,
    { digest, indexes },
  );
}

/** The error a manifest body over the limit gets (also used by readers that stop early). */
export function manifestTooLarge(limit: number): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `manifest exceeds the size limit of ${limit} bytes`, { limit }, { status: 413 });
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, detail);
}

/**
 * Checks a manifest body and extracts what the registry records about it. The media type is
 * the body's `mediaType` field, else the request's Content-Type, else inferred from the shape
 * (OCI allows manifests without `mediaType`); the two may not disagree.
 */
export function parseManifest(body: Buffer, contentType: string | undefined, digest: string): NewManifest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw invalid(`manifest is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(json)) throw invalid('manifest must be a JSON object');

  const declared = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  if (json.mediaType !== undefined && declared === undefined) throw invalid('mediaType must be a string');
  if (json.schemaVersion === 1 || isSchema1(declared ?? '') || isSchema1(contentType ?? '')) {
    throw invalid('Docker schema 1 manifests are not supported; push with a current client (schema 2 or OCI)');
  }
  if (json.schemaVersion !== 2) throw invalid('schemaVersion must be 2', { schemaVersion: json.schemaVersion });

  const usableContentType = contentType && manifestKind(contentType) ? contentType : undefined;
  if (declared && usableContentType && declared !== usableContentType) {
    throw invalid(`Content-Type ${usableContentType} does not match the manifest's mediaType ${declared}`);
  }
  const mediaType = declared ?? usableContentType ?? inferMediaType(json);
  const kind = manifestKind(mediaType);
  if (!kind) throw invalid(`unsupported manifest media type: ${mediaType}`, { mediaType });

  const subject = json.subject === undefined ? null : descriptor(json.subject, 'subject');
  const artifactType = optionalString(json.artifactType, 'artifactType');
  const annotations = optionalAnnotations(json.annotations, 'annotations');
  const references = kind === 'image' ? imageReferences(json) : indexReferences(json);

  return {
    digest,
    mediaType,
    size: body.length,
    content: body,
    subject: subject?.digest ?? null,
    // An empty artifactType counts as none (spec 1.1): the config's media type stands in.
    artifactType: artifactType || (kind === 'image' ? configMediaType(json) : null),
    annotations,
    references,
  };
}

function inferMediaType(json: Record<string, unknown>): string {
  if (Array.isArray(json.manifests)) return MEDIA_TYPES.ociIndex;
  if (json.config !== undefined || Array.isArray(json.layers)) return MEDIA_TYPES.ociManifest;
  throw invalid('manifest has no mediaType and is neither an image manifest nor an index');
}

function imageReferences(json: Record<string, unknown>): NewManifest['references'] {
  const config = descriptor(json.config, 'config');
  if (!Array.isArray(json.layers)) throw invalid('image manifest must have a layers array');
  const layers = json.layers.map((layer, i) => descriptor(layer, `layers[${i}]`));
  // Layers hosted elsewhere (non-distributable, with urls) need not be in the registry.
  const hosted = layers.filter((layer) => !(layer.urls && layer.urls.length > 0));
  return [config, ...hosted].map((d) => ({ digest: d.digest, kind: 'blob' as const }));
}

function indexReferences(json: Record<string, unknown>): NewManifest['references'] {
  if (!Array.isArray(json.manifests)) throw invalid('index must have a manifests array');
  return json.manifests.map((child, i) => ({ digest: descriptor(child, `manifests[${i}]`).digest, kind: 'manifest' as const }));
}

function configMediaType(json: Record<string, unknown>): string | null {
  return isObject(json.config) && typeof json.config.mediaType === 'string' ? json.config.mediaType : null;
}

function descriptor(value: unknown, field: string): Descriptor {
  if (!isObject(value)) throw invalid(`${field} must be a descriptor object`);
  if (typeof value.mediaType !== 'string' || value.mediaType === '') throw invalid(`${field}.mediaType must be a non-empty string`);
  if (typeof value.digest !== 'string') throw invalid(`${field}.digest must be a string`);
  try {
    parseDigest(value.digest);
  } catch {
    throw invalid(`${field}.digest is not a valid digest: ${value.digest}`);
  }
  if (typeof value.size !== 'number' || !Number.isSafeInteger(value.size) || value.size < 0) {
    throw invalid(`${field}.size must be a non-negative integer`);
  }
  const urls = value.urls;
  if (urls !== undefined && !(Array.isArray(urls) && urls.every((u) => typeof u === 'string'))) {
    throw invalid(`${field}.urls must be an array of strings`);
  }
  return { mediaType: value.mediaType, digest: value.digest, size: value.size, urls: urls as string[] | undefined };
}

function optionalString(value: unknown, field: string): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'string') throw invalid(`${field} must be a string`);
  return value;
}

function optionalAnnotations(value: unknown, field: string): Record<string, string> | null {
  if (value === undefined) return null;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw invalid(`${field} must be an object of strings`);
  }
  return value as Record<string, string>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toDescriptor(record: ReferrerRecord): Descriptor {
  const descriptor: Descriptor = { mediaType: record.mediaType, digest: record.digest, size: record.size };
  if (record.artifactType) descriptor.artifactType = record.artifactType;
  if (record.annotations) descriptor.annotations = record.annotations;
  return descriptor;
}
