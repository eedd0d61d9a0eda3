/** `/v2/<name>/manifests/<reference>` (GET, HEAD, PUT, DELETE) and `/v2/<name>/referrers/<digest>`. */
import type { Request, Router } from 'express';
import { RegistryError } from '../../registry/errors.js';
import { manifestTooLarge } from '../../registry/manifests.js';
import { MEDIA_TYPES } from '../../registry/media-types.js';
import { assertDigest } from '../../registry/references.js';
import type { Registry } from '../../registry/registry.js';
import { V2_ENDPOINTS } from '../endpoints.js';
import { caller, contentLength, pathParam, queryParam, repositoryParam, sendEmpty } from '../wire.js';

const MANIFEST_PATH = V2_ENDPOINTS.manifest.path;

export function registerManifestRoutes(router: Router, registry: Registry): void {
  const { manifests } = registry;

  router.get(MANIFEST_PATH, async (req, res) => {
    const manifest = await manifests.get(repositoryParam(req), pathParam(req, 1), req.headers.accept);
    const etag = `"${manifest.digest}"`;
    res.set({
      'Content-Type': manifest.mediaType,
      'Docker-Content-Digest': manifest.digest,
      ETag: etag,
      'Content-Length': String(manifest.size),
    });
    if (etagMatches(req.headers['if-none-match'], etag)) {
      res.status(304).end();
    } else if (req.method === 'HEAD') {
      res.status(200).end();
    } else {
      res.status(200).end(manifest.content);
    }
  });

  router.put(MANIFEST_PATH, async (req, res) => {
    const name = repositoryParam(req);
    const body = await readLimitedBody(req, manifests.options.maxManifestBytes);
    const result = await manifests.put(name, pathParam(req, 1), req.headers['content-type'], body, caller(res).actor);
    const headers: Record<string, string> = {
      Location: `/v2/${name}/manifests/${result.digest}`,
      'Docker-Content-Digest': result.digest,
    };
    if (result.subject) headers['OCI-Subject'] = result.subject;
    sendEmpty(res, 201, headers);
  });

  router.delete(MANIFEST_PATH, async (req, res) => {
    const name = repositoryParam(req);
    if (!registry.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletion is disabled on this registry');
    // ?force=true deletes a manifest even though an index of the repository still lists it.
    await manifests.delete(name, pathParam(req, 1), caller(res).actor, { force: queryParam(req, 'force') === 'true' });
    sendEmpty(res, 202);
  });

  router.get(V2_ENDPOINTS.referrers.path, async (req, res) => {
    const name = repositoryParam(req);
    const digest = assertDigest(pathParam(req, 1));
    const artifactType = queryParam(req, 'artifactType');
    const descriptors = await manifests.referrers(name, digest, artifactType);
    if (artifactType !== undefined) res.set('OCI-Filters-Applied', 'artifactType');
    // A Buffer, not a string: Express would append `; charset=utf-8` to the index media type.
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: descriptors }));
    res.status(200).type(MEDIA_TYPES.ociIndex).send(index);
  });
}

/** RFC 9110 If-None-Match: `*` or a list of entity tags, compared weakly (a `W/` prefix is ignored). */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((entry) => {
    const candidate = entry.trim().replace(/^W\//, '');
    return candidate === '*' || candidate === etag;
  });
}

/** Reads a request body into memory, refusing (413) as soon as it exceeds `limit`. */
async function readLimitedBody(req: Request, limit: number): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw manifestTooLarge(limit);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > limit) throw manifestTooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}
