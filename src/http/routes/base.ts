/** `GET /v2/`: the API version check every client starts with. */
import type { Router } from 'express';
import { V2_ENDPOINTS } from '../endpoints.js';

export function registerBaseRoutes(router: Router): void {
  router.get(V2_ENDPOINTS.base.path, (_req, res) => {
    res.type('application/json').send('{}');
  });
}
