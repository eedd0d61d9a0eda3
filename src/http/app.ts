/**
 * The HTTP application: middleware order, the /v2 routes, and the one error middleware that
 * turns a RegistryError into the spec's status, headers and JSON body.
 */
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import { createMetrics } from '../observability/metrics.js';
import { isRegistryError, RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/registry.js';
import { registerBaseRoutes } from './routes/base.js';
import { registerBlobRoutes } from './routes/blobs.js';
import { registerListingRoutes } from './routes/listings.js';
import { registerManifestRoutes } from './routes/manifests.js';
import { registerUploadRoutes } from './routes/uploads.js';

export const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;

export interface AppDependencies {
  registry: Registry;
  logger: Logger;
  /** Middleware that authenticates the caller and sets `res.locals.caller` (none: open registry). */
  authenticate?: RequestHandler;
}

export function createApp({ registry, logger, authenticate }: AppDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  const metrics = createMetrics(registry.stats);
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.contentType).send(await metrics.metrics());
  });

  const v2 = express.Router({ caseSensitive: true, strict: true });
  v2.use((_req, res, next) => {
    res.set(API_VERSION_HEADER);
    next();
  });
  if (authenticate) v2.use(authenticate);
  registerBaseRoutes(v2);
  registerListingRoutes(v2, registry);
  registerUploadRoutes(v2, registry);
  registerBlobRoutes(v2, registry);
  registerManifestRoutes(v2, registry);
  v2.use((req, _res, next) => {
    next(new RegistryError('UNSUPPORTED', `no API endpoint for ${req.method} ${req.path}`, undefined, { status: 404 }));
  });
  app.use(v2);
  app.use(errorHandler(logger));
  return app;
}

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const registryError = isRegistryError(error)
      ? error
      : new RegistryError('UNKNOWN', 'internal server error', undefined, { cause: error });
    if (!isRegistryError(error)) logger.error({ err: error, method: req.method, url: req.originalUrl }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(registryError.status).set(registryError.headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.type('application/json').send(JSON.stringify(registryError.toBody()));
  };
}
