/**
 * The HTTP application: middleware order, the /v2 routes, and the one error middleware that
 * turns a RegistryError into the spec's status, headers and JSON body.
 */
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { ReadinessCheck } from '../observability/health.js';
import { createMetrics, type MetricsSources } from '../observability/metrics.js';
import type { TrustProxySetting } from '../config/operations.js';
import type { ImageExporter } from '../transfer/export.js';
import type { ImageImporter } from '../transfer/import.js';
import { isRegistryError, RegistryError } from '../registry/errors.js';
import type { BrowseService } from '../registry/browse.js';
import type { Lifecycle } from '../registry/lifecycle.js';
import type { Registry } from '../registry/registry.js';
import type { WebhookService } from '../webhooks/service.js';
import type { HttpAuth } from './auth-middleware.js';
import { closeAfterEarlyAnswer } from './connection-guards.js';
import { observeRequests } from './observe-requests.js';
import { refuseWrites } from './read-only.js';
import { recordRequestContext } from './request-context.js';
import { observePulls } from './pull-events.js';
import { allowedMethods, matchEndpoint } from './endpoints.js';
import { registerBaseRoutes } from './routes/base.js';
import { registerBlobRoutes } from './routes/blobs.js';
import { browseAccess, registerBrowseRoutes } from './routes/browse.js';
import { registerEventRoutes } from './routes/events.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerLifecycleAdminRoutes } from './routes/lifecycle-admin.js';
import { registerListingRoutes } from './routes/listings.js';
import { registerManifestRoutes } from './routes/manifests.js';
import { registerTransferAdminRoutes } from './routes/transfer-admin.js';
import { registerUiRoutes } from './routes/ui.js';
import { registerUploadRoutes } from './routes/uploads.js';
import { registerWebhookAdminRoutes } from './routes/webhooks-admin.js';


/** The operations surface: /metrics, /readyz, reverse-proxy trust, image import and export, shutdown. */
export interface OperationsDependencies {
  /** /metrics: on by default and open; `requireAuth` puts it behind the admin guard. */
  metrics?: { enabled: boolean; requireAuth: boolean; sources?: Omit<MetricsSources, 'stats'> };
  /** What /readyz checks (none: ready whenever the process answers). */
  readiness?: ReadinessCheck[];
  /** express `trust proxy`: X-Forwarded-Proto/-Host/-For from these proxies are believed. */
  trustProxy?: TrustProxySetting;
  /** POST /api/v1/import and GET /api/v1/export/… (behind the admin guard). */
  transfer?: { importer: ImageImporter; exporter: ImageExporter; tempDir: string; maxBytes: number };
  /** True once a graceful shutdown began: responses then close their connections. */
  closing?: () => boolean;
}

export interface AppDependencies {
  registry: Registry;
  logger: Logger;
  /** Middleware that authenticates the caller and sets `res.locals.caller` (none: open registry). */
  authenticate?: RequestHandler;
  /** Token auth: its routes (/auth/token, /api/v1/users, /api/v1/robots), /v2 guard and admin guard (none: open registry). */
  auth?: HttpAuth;
  /** Webhooks: the /api/v1/webhooks admin API (behind auth's admin guard) and pull events. */
  webhooks?: WebhookService;
  /** Garbage collection, usage and fsck: the /api/v1/gc, /usage and /fsck admin API (behind auth's admin guard). */
  lifecycle?: Lifecycle;
  /** The browsing API under /api/v1/repositories (checked like /v2). */
  browse?: BrowseService;
  /** The web interface under /ui/ (absent: not served); `assetsDir` defaults to this installation's dist/ui. */
  ui?: { assetsDir?: string };
  operations?: OperationsDependencies;
  /** storage.readOnly: pulls only, every change refused (read-only.ts), no pull events. */
  readOnly?: boolean;
}

export function createApp({ registry, logger, auth, authenticate = auth?.authenticate, webhooks, lifecycle, browse, ui, operations = {}, readOnly = false }: AppDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.set('trust proxy', operations.trustProxy ?? false);
  // Without auth (auth.mode: none) the registry is open, and so are its admin APIs.
  const adminGuard: RequestHandler = auth?.requireAdmin ?? ((_req, _res, next) => next());

  const metricsSettings = operations.metrics ?? { enabled: true, requireAuth: false };
  const metrics = metricsSettings.enabled ? createMetrics({ ...metricsSettings.sources, stats: registry.stats }) : undefined;
  app.use(observeRequests({ logger, metrics, closing: operations.closing }));
  app.use(recordRequestContext());
  if (readOnly) app.use(refuseWrites);

  // The registry API first: it carries nearly all traffic, so its requests should not walk past
  // every admin route. Only /v2 paths meet its authentication; anything else falls through.
  const v2 = express.Router({ caseSensitive: true, strict: true });
  if (authenticate) v2.use(authenticate);
  // Pull events are outbox writes: none while read-only.
  if (webhooks && !readOnly) v2.use(observePulls(webhooks, logger));
  registerBaseRoutes(v2);
  registerListingRoutes(v2, registry);
  registerUploadRoutes(v2, registry);
  registerBlobRoutes(v2, registry);
  registerManifestRoutes(v2, registry);
  v2.use(unservedEndpoint);
  app.use((req, res, next) => (req.path === '/v2' || req.path.startsWith('/v2/') ? v2(req, res, next) : next()));

  registerHealthRoutes(app, operations.readiness ?? []);
  if (metrics) {
    if (metricsSettings.requireAuth && !auth) throw new Error('metrics.requireAuth needs auth.mode token');
    const guard: RequestHandler = metricsSettings.requireAuth ? adminGuard : (_req, _res, next) => next();
    app.get('/metrics', guard, async (_req, res) => {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    });
  }
  if (auth) app.use(auth.routes);
  if (webhooks) {
    registerWebhookAdminRoutes(app, webhooks, adminGuard);
    registerEventRoutes(app, webhooks, auth?.requireReader ?? null);
  }
  if (lifecycle) registerLifecycleAdminRoutes(app, lifecycle, adminGuard);
  if (operations.transfer) registerTransferAdminRoutes(app, { ...operations.transfer, guard: adminGuard });
  if (browse) registerBrowseRoutes(app, browse, auth ? auth.authenticateFor(browseAccess) : (_req, _res, next) => next());
  if (ui) registerUiRoutes(app, ui.assetsDir);
  app.use((req, _res, next) => next(new RegistryError('NOT_FOUND', `no such resource: ${req.method} ${req.path}`)));
  app.use(errorHandler(logger));
  return app;
}

/** A /v2 path no route served: 405 with `Allow` when the endpoint exists for other methods, else 404. */
const unservedEndpoint: RequestHandler = (req, _res, next) => {
  const matched = matchEndpoint(req.method, req.path);
  if (matched && !matched.methodAllowed) {
    const allow = allowedMethods(matched.endpoint).join(', ');
    next(new RegistryError('UNSUPPORTED', `${req.method} is not supported here; allowed: ${allow}`, { method: req.method }, { headers: { Allow: allow } }));
    return;
  }
  next(new RegistryError('UNSUPPORTED', `no API endpoint for ${req.method} ${req.path}`, undefined, { status: 404 }));
};

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const registryError = toRegistryError(error);
    if (registryError.code === 'UNKNOWN') logger.error({ err: error, reqId: res.locals.requestId, method: req.method, path: req.originalUrl.split('?', 1)[0] }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    closeAfterEarlyAnswer(req, res);
    res.status(registryError.status).set(registryError.headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.type('application/json').send(JSON.stringify(registryError.toBody()));
  };
}

/**
 * Errors that did not come from the domain: express's own client errors (a path with broken
 * percent-encoding, a body a parser refused) keep their 4xx status; anything else is a 500.
 */
function toRegistryError(error: unknown): RegistryError {
  if (isRegistryError(error)) return error;
  const status = (error as { status?: unknown })?.status;
  // A body parser's refusal gets a fixed message: its own quotes the body (a password, perhaps).
  const bodyError = (error as { type?: unknown })?.type;
  if (typeof bodyError === 'string' && typeof status === 'number' && status >= 400 && status < 500) {
    const message = bodyError === 'entity.too.large' ? 'request body too large' : bodyError === 'entity.parse.failed' ? 'request body is not valid JSON' : 'malformed request body';
    return new RegistryError('INVALID_REQUEST', message, undefined, { status: bodyError === 'entity.too.large' ? 413 : 400, cause: error });
  }
  if (error instanceof URIError || (typeof status === 'number' && status >= 400 && status < 500)) {
    return new RegistryError('INVALID_REQUEST', `malformed request: ${(error as Error).message}`, undefined, {
      status: typeof status === 'number' ? status : 400,
      cause: error,
    });
  }
  return new RegistryError('UNKNOWN', 'internal server error', undefined, { cause: error });
}
