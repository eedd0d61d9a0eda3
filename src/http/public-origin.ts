/**
 * Behind a trusted reverse proxy with no `http.publicUrl`, webhooks would name the registry by
 * its internal listen address. This middleware lets them use the public scheme and host
 * instead, as the proxy reports them (X-Forwarded-Proto, X-Forwarded-Host) on the requests that
 * change images (manifest PUT and DELETE), which are the ones that produce events. Only
 * installed when `http.trustProxy` is on and `http.publicUrl` unset; a configured public URL
 * always wins.
 */
import type { RequestHandler } from 'express';
import type { WebhookService } from '../webhooks/service.js';

export function learnPublicOrigin(webhooks: WebhookService): RequestHandler {
  let current = '';
  return (req, _res, next) => {
    if ((req.method === 'PUT' || req.method === 'DELETE') && req.headers['x-forwarded-host'] !== undefined) {
      const origin = `${req.protocol}://${req.host}`;
      if (origin !== current) {
        try {
          webhooks.setPublicUrl(origin);
          current = origin;
        } catch {
          // A malformed forwarded host is ignored; events keep the previous origin.
        }
      }
    }
    next();
  };
}
