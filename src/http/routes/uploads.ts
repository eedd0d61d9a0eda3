/**
 * `/v2/<name>/blobs/uploads/`: start (POST, incl. monolithic `?digest=` and `?mount=`),
 * then per session GET (status), PATCH (append), PUT (complete) and DELETE (cancel).
 */
import type { Request, Response, Router } from 'express';
import type { UploadChunk, UploadStatus } from '../../registry/uploads.js';
import { rangeHeader } from '../../registry/uploads.js';
import { RegistryError } from '../../registry/errors.js';
import { assertDigest, assertName } from '../../registry/references.js';
import type { Registry } from '../../registry/registry.js';
import { V2_ENDPOINTS } from '../endpoints.js';
import { caller, contentLength, hasBody, pathParam, queryParam, repositoryParam, sendEmpty, uploadContentRange } from '../wire.js';

const START_PATH = V2_ENDPOINTS.uploadStart.path;
const SESSION_PATH = V2_ENDPOINTS.uploadSession.path;

export function registerUploadRoutes(router: Router, registry: Registry): void {
  const { uploads, blobs } = registry;

  router.post(START_PATH, async (req, res) => {
    const name = repositoryParam(req);
    const { actor, access } = caller(res);
    const mount = queryParam(req, 'mount');
    if (mount !== undefined) {
      const digest = assertDigest(mount);
      const from = queryParam(req, 'from');
      const mounted = await blobs.mount(name, digest, from === undefined ? undefined : assertName(from), access, actor);
      if (mounted) return sendBlobCreated(res, name, mounted.digest);
    }
    const digest = queryParam(req, 'digest');
    if (digest !== undefined && mount === undefined) {
      const blob = await uploads.uploadWhole(name, assertDigest(digest), chunkOf(req), actor);
      return sendBlobCreated(res, name, blob.digest);
    }
    sendUploadStatus(res, 202, name, await uploads.start(name));
  });

  router.get(SESSION_PATH, async (req, res) => {
    const name = repositoryParam(req);
    sendUploadStatus(res, 204, name, await uploads.status(name, pathParam(req, 1)));
  });

  router.patch(SESSION_PATH, async (req, res) => {
    const name = repositoryParam(req);
    sendUploadStatus(res, 202, name, await uploads.append(name, pathParam(req, 1), chunkOf(req)));
  });

  router.put(SESSION_PATH, async (req, res) => {
    const name = repositoryParam(req);
    const digest = queryParam(req, 'digest');
    if (digest === undefined) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to complete an upload');
    const lastChunk = hasBody(req) ? chunkOf(req) : null;
    const blob = await uploads.complete(name, pathParam(req, 1), assertDigest(digest), lastChunk, caller(res).actor);
    sendBlobCreated(res, name, blob.digest);
  });

  router.delete(SESSION_PATH, async (req, res) => {
    const name = repositoryParam(req);
    await uploads.cancel(name, pathParam(req, 1));
    sendEmpty(res, 204);
  });
}

function chunkOf(req: Request): UploadChunk {
  return { body: req, range: uploadContentRange(req), length: contentLength(req) };
}

function sendBlobCreated(res: Response, name: string, digest: string): void {
  sendEmpty(res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
}

function sendUploadStatus(res: Response, status: number, name: string, upload: UploadStatus): void {
  sendEmpty(res, status, {
    Location: `/v2/${name}/blobs/uploads/${upload.id}`,
    'Docker-Upload-UUID': upload.id,
    ...rangeHeader(upload.size),
  });
}
