/**
 * `GET /healthz` (the process is alive and serving HTTP) and `GET /readyz` (the metadata store
 * answers and the storage root takes writes: 200, else 503 naming the failing check). Both
 * unauthenticated, answered before any other middleware but the request observer.
 */
import type { IRouter } from 'express';
import { checkReadiness, type ReadinessCheck } from '../../observability/health.js';

export function registerHealthRoutes(target: IRouter, checks: ReadinessCheck[]): void {
  target.get('/healthz', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok' });
  });
  target.get('/readyz', async (_req, res) => {
    const result = await checkReadiness(checks);
    res
      .status(result.ready ? 200 : 503)
      .set('Cache-Control', 'no-store')
      .json({ status: result.ready ? 'ready' : 'not ready', checks: result.checks });
  });
}
