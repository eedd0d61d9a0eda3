/**
 * The route of a request, from a small fixed set, and the repository it names: labels for
 * metrics (never the raw path, so repository names never become label values) and fields for
 * the request log. A few string searches, no regular expressions: this runs on every request.
 */

export type RouteLabel =
  | 'base'
  | 'catalog'
  | 'tags'
  | 'manifest'
  | 'blob'
  | 'upload_start'
  | 'upload'
  | 'referrers'
  | 'v2_other'
  | 'token'
  | 'admin'
  | 'import'
  | 'export'
  | 'metrics'
  | 'health'
  | 'other';

export interface ClassifiedRequest {
  route: RouteLabel;
  /** The repository a /v2 request names, if any (for logs only). */
  repository: string | undefined;
}

const V2 = '/v2/';

/** Classifies a request path (without query string), as the /v2 route patterns would match it. */
export function classifyPath(path: string): ClassifiedRequest {
  if (path.startsWith(V2)) return classifyV2(path.slice(V2.length));
  if (path === '/v2') return { route: 'base', repository: undefined };
  if (path === '/healthz' || path === '/readyz') return { route: 'health', repository: undefined };
  if (path === '/metrics') return { route: 'metrics', repository: undefined };
  if (path === '/auth/token') return { route: 'token', repository: undefined };
  if (path.startsWith('/api/v1/')) {
    if (path === '/api/v1/import') return { route: 'import', repository: undefined };
    if (path.startsWith('/api/v1/export/')) return { route: 'export', repository: undefined };
    return { route: 'admin', repository: undefined };
  }
  return { route: 'other', repository: undefined };
}

function classifyV2(rest: string): ClassifiedRequest {
  if (rest === '') return { route: 'base', repository: undefined };
  if (rest === '_catalog') return { route: 'catalog', repository: undefined };
  if (rest.endsWith('/tags/list')) return named('tags', rest.slice(0, -'/tags/list'.length));
  const uploads = rest.lastIndexOf('/blobs/uploads/');
  if (uploads > 0) {
    const tail = rest.slice(uploads + '/blobs/uploads/'.length);
    if (tail === '') return named('upload_start', rest.slice(0, uploads));
    if (!tail.includes('/')) return named('upload', rest.slice(0, uploads));
  }
  if (rest.endsWith('/blobs/uploads')) return named('upload_start', rest.slice(0, -'/blobs/uploads'.length));
  for (const [marker, route] of SEGMENTS) {
    const at = rest.lastIndexOf(marker);
    if (at > 0 && at + marker.length < rest.length && rest.indexOf('/', at + marker.length) === -1) return named(route, rest.slice(0, at));
  }
  return { route: 'v2_other', repository: undefined };
}

const SEGMENTS: ReadonlyArray<readonly [string, RouteLabel]> = [
  ['/manifests/', 'manifest'],
  ['/blobs/', 'blob'],
  ['/referrers/', 'referrers'],
];

function named(route: RouteLabel, repository: string): ClassifiedRequest {
  return { route, repository: repository === '' ? undefined : repository };
}

/** HTTP methods kept as label values; anything else is `other`. */
const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);

export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other';
}
