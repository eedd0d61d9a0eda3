/** `/v2/<name>/blobs/<digest>`: HEAD, GET (whole, one `Range`, or several as multipart/byteranges), DELETE. */
import type { Response, Router } from 'express';
import { RegistryError } from '../../registry/errors.js';
import type { ByteRange, RepositoryBlob } from '../../registry/ports.js';
import { assertDigest } from '../../registry/references.js';
import type { Registry } from '../../registry/registry.js';
import { contentRange, multipartLayout, requestedRanges } from '../byte-ranges.js';
import { V2_ENDPOINTS } from '../endpoints.js';
import { caller, pathParam, repositoryParam, sendEmpty, type BodyDelivery } from '../wire.js';

const BLOB_PATH = V2_ENDPOINTS.blob.path;
const BLOB_CONTENT_TYPE = 'application/octet-stream';

type BlobService = Registry['blobs'];

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
    const ranges = requestedRanges(req.headers.range, blob.size);
    if (ranges && ranges.length > 1) await sendParts(res, blobs, blob, ranges);
    else await sendWhole(res, blobs, blob, ranges?.[0]);
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
    'Content-Type': BLOB_CONTENT_TYPE,
    'Docker-Content-Digest': blob.digest,
    ETag: `"${blob.digest}"`,
    'Accept-Ranges': 'bytes',
    // Content under a digest never changes.
    'Cache-Control': 'max-age=31536000',
  });
}

/** 200 with the blob, or 206 with one range of it. */
async function sendWhole(res: Response, blobs: BlobService, blob: RepositoryBlob, range: ByteRange | undefined): Promise<void> {
  const length = range ? range.end - range.start + 1 : blob.size;
  await streamBody(res, length, Buffer.alloc(0), async (delivery, onFound) => {
    await blobs.send(blob, res, {
      range,
      onFound: () => {
        onFound();
        setBlobHeaders(res, blob);
        res.set('Content-Length', String(length));
        if (range) res.status(206).set('Content-Range', contentRange(range, blob.size));
        else res.status(200);
      },
      onBytes: (bytes) => (delivery.sent += bytes),
    });
  });
}

/**
 * 206 multipart/byteranges: each part streamed through the blob store with its own range
 * (the blob is never held in memory), its delimiter written once the store found the blob.
 */
async function sendParts(res: Response, blobs: BlobService, blob: RepositoryBlob, ranges: ByteRange[]): Promise<void> {
  const layout = multipartLayout(ranges, blob.size, BLOB_CONTENT_TYPE);
  await streamBody(res, layout.contentLength, layout.tail, async (delivery, onFound) => {
    for (const [index, part] of layout.parts.entries()) {
      await blobs.send(blob, res, {
        range: part.range,
        onFound: () => {
          if (index === 0) {
            onFound();
            setBlobHeaders(res, blob);
            res.status(206).set({ 'Content-Type': layout.contentType, 'Content-Length': String(layout.contentLength) });
          }
          res.write(part.head);
          delivery.sent += part.head.length;
        },
        onBytes: (bytes) => (delivery.sent += bytes),
      });
    }
  });
}

/**
 * Runs `send` and ends the response with `tail`. Bytes are counted as they go out: a client
 * that has everything may hang up before the last write reports back, and the request log and
 * metrics read the same count (BodyDelivery) to call such a response complete. Until the blob
 * is found an error is still an answer (e.g. damaged in storage); after that the headers may be
 * gone, so the connection is dropped.
 */
async function streamBody(
  res: Response,
  expected: number,
  tail: Buffer,
  send: (delivery: BodyDelivery, onFound: () => void) => Promise<void>,
): Promise<void> {
  const delivery: BodyDelivery = { expected, sent: 0 };
  res.locals.bodyDelivery = delivery;
  let found = false;
  try {
    await send(delivery, () => (found = true));
  } catch (error) {
    if (!found) throw error;
    res.destroy();
    return;
  }
  delivery.sent += tail.length;
  res.end(tail);
}
