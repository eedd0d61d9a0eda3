/** `GET /v2/`: the API version check every client starts with. */
import type { Router } from 'express';

export function registerBaseRoutes(router: Router): void {
  router.get(/^\/v2\/?$/, (_req, res) => {
    res.type('application/json').send('{}');
  });
}
