/**
 * The access a /v2 request needs, from the endpoint it addresses (src/http/endpoints.ts):
 * reads need `pull`, writes `pull,push` (as CNCF distribution asks), deletes `delete`, every
 * method on an upload is part of a push, the catalog needs `registry:catalog:*`, and the base
 * endpoint (or a path no route serves) only a valid identity.
 */
import { CATALOG_SCOPE, type ResourceScope } from '../auth/scopes.js';
import { matchEndpoint, type V2Endpoint } from './endpoints.js';

/** What a request needs: just a valid identity, or a resource scope. */
export type RequiredAccess = { kind: 'identity' } | { kind: 'scope'; scope: ResourceScope };

const REPOSITORY_ACTIONS: Partial<Record<V2Endpoint, (method: string) => string[]>> = {
  tags: () => ['pull'],
  uploadStart: () => ['pull', 'push'],
  uploadSession: () => ['pull', 'push'],
  blob: (method) => (method === 'DELETE' ? ['delete'] : ['pull']),
  manifest: (method) => (method === 'DELETE' ? ['delete'] : method === 'PUT' ? ['pull', 'push'] : ['pull']),
  referrers: () => ['pull'],
};

export function requiredAccess(method: string, path: string): RequiredAccess {
  const matched = matchEndpoint(method, path);
  if (!matched?.methodAllowed) return { kind: 'identity' };
  if (matched.endpoint === 'catalog') return { kind: 'scope', scope: CATALOG_SCOPE };
  const actions = REPOSITORY_ACTIONS[matched.endpoint];
  // Undecodable: the router refuses the request before any route runs.
  if (!actions || matched.repository === undefined || matched.undecodable) return { kind: 'identity' };
  // The decoded name, as the route serves it (`a%2Fb` is `a/b`).
  return { kind: 'scope', scope: { type: 'repository', name: matched.repository, actions: actions(method) } };
}

/** A path capture decoded as the router decodes it; null when it cannot be. */
export function decodeParam(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}
