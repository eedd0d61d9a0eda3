/** `/v2/<name>/blobs/<digest>`: HEAD, GET (with single `Range`), DELETE. */
import type { Request, Response, Router } from 'express';
import { RegistryError } from '../../registry/errors.js';
import type { ByteRange, RepositoryBlob } from '../../registry/ports.js';
import { assertDigest } from '../../registry/references.js';
import type { Registry } from '../../registry/registry.js';
import { V2_ENDPOINTS } from '../endpoints.js';
import { caller, pathParam, repositoryParam, sendEmpty, type BodyDelivery } from '../wire.js';

const BLOB_PATH = V2_ENDPOINTS.blob.path;

export function registerBlobRoutes(router: Router, registry: Registry): void {
  const { blobs } = registry;

  router.head(BLOB_PATH, async (req, res) => {
    const { actor, access } = caller(res);
    const blob = await blobs.check(repositoryParam(req), assertDigest(pathParam(req, 1)), access, actor);
    setBlobHeaders(res, blob);
    res.set('Content-Length', String(blob.size)).status(200).end();
  });

  router.get(BLOB_PATH, async (req, res) => {
    const name = repositoryParam(req);
    const digest = assertDigest(pathParam(req, 1));
    const blob = await blobs.get(name, digest);
    const location = await blobs.redirectUrl(blob);
    if (location) {
      // The client asks the object store, Range and all; the URL expires, so nothing may cache this answer.
      res.set({ Location: location, 'Docker-Content-Digest': blob.digest, 'Cache-Control': 'no-store' });
      sendEmpty(res, 307);
      return;
    }
    const range = requestedRange(req, blob.size) ?? undefined;
    // Count bytes as they go out: a client that has everything may hang up before the last
    // write reports back. The request log and metrics read the same count (BodyDelivery) to
    // call such a response complete.
    const delivery: BodyDelivery = { expected: range ? range.end - range.start + 1 : blob.size, sent: 0 };
    res.locals.bodyDelivery = delivery;
    let found = false;
    try {
      await blobs.send(blob, res, {
        range,
        onFound: () => {
          found = true;
          setBlobHeaders(res, blob);
          if (range) {
            res.status(206).set({
              'Content-Range': `bytes ${range.start}-${range.end}/${blob.size}`,
              'Content-Length': String(range.end - range.start + 1),
            });
          } else {
            res.status(200).set('Content-Length', String(blob.size));
          }
        },
        onBytes: (bytes) => (delivery.sent += bytes),
      });
    } catch (error) {
      // Until the blob is found the error is still an answer (e.g. damaged in storage); after
      // that the headers may be gone, so just drop the connection.
      if (!found) throw error;
      res.destroy();
      return;
    }
    res.end();
  });

  router.delete(BLOB_PATH, async (req, res) => {
    const name = repositoryParam(req);
    const digest = assertDigest(pathParam(req, 1));
    if (!registry.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletion is disabled on this registry');
    await blobs.delete(name, digest);
    sendEmpty(res, 202, { 'Docker-Content-Digest': digest });
  });
}

function setBlobHeaders(res: Response, blob: RepositoryBlob): void {
  res.set({
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': blob.digest,
    ETag: `"${blob.digest}"`,
    'Accept-Ranges': 'bytes',
    // Content under a digest never changes.
    'Cache-Control': 'max-age=31536000',
  });
}

/**
 * The single byte range a GET asks for, or null for the whole blob. Multiple ranges and
 * malformed headers are ignored (the whole blob is served), as RFC 9110 allows; a range
 * starting past the end is 416 with the blob's size.
 */
function requestedRange(req: Request, size: number): ByteRange | null {
  const header = req.headers.range;
  if (!header) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(size - suffix, 0);
    end = size - 1;
  } else {
    start = Number(match[1]);
    if (match[2] !== '' && Number(match[2]) < start) return null; // syntactically invalid: ignore it
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError('RANGE_INVALID', `range not satisfiable for a blob of ${size} bytes`, { size }, {
    headers: { 'Content-Range': `bytes */${size}` },
  });
}
