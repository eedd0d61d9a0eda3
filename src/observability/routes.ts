/**
 * The route of a request, from a small fixed set, and the repository it names: labels for
 * metrics (never the raw path, so repository names never become label values) and fields for
 * the request log, from the same endpoint table the router uses.
 */
import { matchEndpoint, type V2Endpoint } from '../http/endpoints.js';

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

const V2_LABELS: Record<V2Endpoint, RouteLabel> = {
  base: 'base',
  catalog: 'catalog',
  tags: 'tags',
  uploadStart: 'upload_start',
  uploadSession: 'upload',
  blob: 'blob',
  manifest: 'manifest',
  referrers: 'referrers',
};

/** Classifies a request by method and path (without query string), as the router would route it. */
export function classifyPath(method: string, path: string): ClassifiedRequest {
  if (path === '/v2' || path.startsWith('/v2/')) {
    const matched = matchEndpoint(method, path);
    return matched ? { route: V2_LABELS[matched.endpoint], repository: matched.repository } : { route: 'v2_other', repository: undefined };
  }
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

/** HTTP methods kept as label values; anything else is `other`. */
const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);

export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other';
}
