/**
 * Reports manifest pulls to webhooks (`manifest.pulled`, opt-in per subscription). A pull
 * changes nothing, so it is not in the transactional outbox: once a `GET` of a manifest has
 * been answered 200, the response's digest, type and size are handed to webhooks, and only
 * when some active subscription asked for pulls.
 */
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { WebhookService } from '../webhooks/service.js';
import { matchEndpoint } from './endpoints.js';
import { caller } from './wire.js';

export function observePulls(webhooks: WebhookService, logger: Logger): RequestHandler {
  return (req, res, next) => {
    if (req.method !== 'GET' || !webhooks.wantsPulls()) return next();
    // The decoded name and reference the route serves (and auth checked): a pull of
    // alice%2Fapp/manifests/sha256%3A… is reported as alice/app at that digest.
    const match = matchEndpoint(req.method, req.path);
    if (match?.endpoint !== 'manifest' || match.repository === undefined || match.reference === undefined) return next();
    const { repository, reference } = match;
    res.once('finish', () => {
      const digest = res.getHeader('Docker-Content-Digest');
      if (res.statusCode !== 200 || typeof digest !== 'string') return;
      const contentType = res.getHeader('Content-Type');
      const length = Number(res.getHeader('Content-Length'));
      webhooks
        .recordPull({
          repository,
          reference,
          digest,
          mediaType: typeof contentType === 'string' ? contentType : null,
          size: Number.isSafeInteger(length) ? length : null,
          actor: caller(res).actor,
        })
        .catch((error: unknown) => logger.warn({ err: error }, 'could not record a pull event'));
    });
    next();
  };
}
