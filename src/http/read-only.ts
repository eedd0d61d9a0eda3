/**
 * The read-only maintenance mode (storage.readOnly): the registry serves pulls and refuses every
 * change, with 405 UNSUPPORTED as CNCF distribution does in its read-only mode (its handlers then
 * register no write method). Logins still get tokens (POST /auth/token is the OAuth2 form of it).
 */
import type { RequestHandler } from 'express';
import { RegistryError } from '../registry/errors.js';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export const refuseWrites: RequestHandler = (req, _res, next) => {
  if (READS.has(req.method) || req.path === '/auth/token') return next();
  next(
    new RegistryError(
      'UNSUPPORTED',
      'the registry is read-only for maintenance (storage.readOnly): it serves pulls and refuses changes; try again later',
      { readOnly: true, method: req.method },
      { headers: { Allow: 'GET, HEAD' } },
    ),
  );
};
