/**
 * The web interface under /ui/: the built index.html for every page (the interface routes in
 * the browser), hashed assets under /ui/assets/ cached for a year, and `/` redirecting there.
 * Every answer carries a Content-Security-Policy that admits only the registry's own scripts,
 * styles and API (no inline script, no other origin), so the interface works offline.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler, type Router } from 'express';
import { RegistryError } from '../../registry/errors.js';

/** This installation's built interface: dist/ui beside src/ and dist/ (both two folders above this file's). */
export const DEFAULT_UI_ASSETS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'dist', 'ui');

export const UI_PATH = '/ui';

export const UI_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set(UI_SECURITY_HEADERS);
  next();
};

export function registerUiRoutes(router: Router, assetsDir: string = DEFAULT_UI_ASSETS): void {
  const index = path.join(assetsDir, 'index.html');
  router.get(/^\/$/, (_req, res) => res.redirect(302, `${UI_PATH}/`));
  // A RegExp: a string path would also match `/ui/` on a non-strict router, and redirect it to itself.
  router.get(new RegExp(`^${UI_PATH}$`), (_req, res) => res.redirect(301, `${UI_PATH}/`));
  router.use(
    `${UI_PATH}/assets`,
    securityHeaders,
    // File names carry their content hash (esbuild's [hash]): a changed file is a new name.
    express.static(path.join(assetsDir, 'assets'), { immutable: true, maxAge: '365d', index: false, redirect: false, etag: false }),
    (req, _res, next) => next(new RegistryError('NOT_FOUND', `no such asset: ${req.path}`)),
  );
  router.get(new RegExp(`^${UI_PATH}/`), securityHeaders, (_req, res, next) => {
    fs.readFile(index, (error, html) => {
      if (error) {
        next(new RegistryError('UNSUPPORTED', `the web interface is not built (${index} is missing): run npm run build`, undefined, { status: 503 }));
        return;
      }
      res.set('Cache-Control', 'no-cache').type('html').send(html);
    });
  });
}
