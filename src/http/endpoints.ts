/**
 * The /v2 endpoints of the distribution API in one table: the routes register these paths,
 * the auth middleware derives the scope a request needs from them, metrics and logs label
 * requests by them, and a path they know answered with the wrong method gets 405.
 * Listed in matching order: upload paths before the blob path they would also match.
 */

const READ = ['GET', 'HEAD'] as const;

export const V2_ENDPOINTS = {
  base: { path: /^\/v2\/?$/, methods: READ },
  catalog: { path: /^\/v2\/_catalog$/, methods: READ },
  tags: { path: /^\/v2\/(.+)\/tags\/list$/, methods: READ },
  uploadStart: { path: /^\/v2\/(.+)\/blobs\/uploads\/?$/, methods: ['POST'] },
  uploadSession: { path: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, methods: [...READ, 'PATCH', 'PUT', 'DELETE'] },
  blob: { path: /^\/v2\/(.+)\/blobs\/([^/]+)$/, methods: [...READ, 'DELETE'] },
  manifest: { path: /^\/v2\/(.+)\/manifests\/([^/]+)$/, methods: [...READ, 'PUT', 'DELETE'] },
  referrers: { path: /^\/v2\/(.+)\/referrers\/([^/]+)$/, methods: READ },
} as const satisfies Record<string, { path: RegExp; methods: readonly string[] }>;

export type V2Endpoint = keyof typeof V2_ENDPOINTS;

export interface MatchedEndpoint {
  endpoint: V2Endpoint;
  /** The repository name as it appears in the path (still percent-encoded), if the endpoint has one. */
  rawRepository: string | undefined;
  /** Whether the endpoint serves the request's method. */
  methodAllowed: boolean;
}

const ORDERED = Object.entries(V2_ENDPOINTS) as Array<[V2Endpoint, (typeof V2_ENDPOINTS)[V2Endpoint]]>;

/**
 * The /v2 endpoint a request addresses, matched the way the router matches: the first
 * endpoint whose path and method both fit (HEAD is served by GET routes); failing that, the
 * first whose path fits, with `methodAllowed` false. Null for paths no endpoint knows.
 */
export function matchEndpoint(method: string, path: string): MatchedEndpoint | null {
  if (!path.startsWith('/v2')) return null;
  let pathOnly: MatchedEndpoint | null = null;
  for (const [endpoint, { path: pattern, methods }] of ORDERED) {
    const match = pattern.exec(path);
    if (!match) continue;
    if ((methods as readonly string[]).includes(method)) return { endpoint, rawRepository: match[1], methodAllowed: true };
    pathOnly ??= { endpoint, rawRepository: match[1], methodAllowed: false };
  }
  return pathOnly;
}

/** The methods an endpoint serves, for the `Allow` header of a 405. */
export function allowedMethods(endpoint: V2Endpoint): readonly string[] {
  return V2_ENDPOINTS[endpoint].methods;
}
