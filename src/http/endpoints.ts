/**
 * The /v2 endpoints of the distribution API in one table: the routes register these paths,
 * the auth middleware derives the scope a request needs from them, metrics, logs and pull
 * events label requests by them, and a path they know answered with the wrong method gets 405.
 * Listed in matching order: upload paths before the blob path they would also match.
 *
 * One rule for names in paths: a capture is URI-decoded once, as the router decodes the
 * parameters it hands the routes (`alice%2Fapp` is `alice/app`, `sha256%3A…` is `sha256:…`),
 * so authorisation, storage, logs and events all see the same name and reference.
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
  /** The repository name, URI-decoded as the routes get it, if the endpoint has one. */
  repository: string | undefined;
  /** The second capture (tag or digest, upload id, blob digest), URI-decoded, if the endpoint has one. */
  reference: string | undefined;
  /** A capture is not valid percent-encoding: the router refuses such a request with 400. */
  undecodable: boolean;
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
    if ((methods as readonly string[]).includes(method)) return matched(endpoint, match, true);
    pathOnly ??= matched(endpoint, match, false);
  }
  return pathOnly;
}

function matched(endpoint: V2Endpoint, match: RegExpExecArray, methodAllowed: boolean): MatchedEndpoint {
  const [repository, reference] = [decodePathParam(match[1]), decodePathParam(match[2])];
  return {
    endpoint,
    repository: repository ?? undefined,
    reference: reference ?? undefined,
    undecodable: repository === null || reference === null,
    methodAllowed,
  };
}

/** A path capture decoded as the router decodes route parameters (decodeURIComponent); null when malformed. */
function decodePathParam(raw: string | undefined): string | null | undefined {
  if (raw === undefined) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** The methods an endpoint serves, for the `Allow` header of a 405. */
export function allowedMethods(endpoint: V2Endpoint): readonly string[] {
  return V2_ENDPOINTS[endpoint].methods;
}
