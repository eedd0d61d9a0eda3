/**
 * `WWW-Authenticate` challenges (RFC 6750 section 3, as token.md uses them) and the detail of
 * the spec's UNAUTHORIZED body.
 */
import { isValidName } from '../registry/references.js';
import { formatScope, type ResourceScope } from './scopes.js';

export interface BearerChallenge {
  /** The token endpoint. */
  realm: string;
  service: string;
  /** The scope the request needed; omitted for requests that need only a valid identity. */
  scope?: ResourceScope;
  /** `invalid_token` or `insufficient_scope` when a token was presented. */
  error?: 'invalid_token' | 'insufficient_scope';
}

export function bearerChallenge(challenge: BearerChallenge): string {
  const parts = [`realm=${quote(challenge.realm)}`, `service=${quote(challenge.service)}`];
  if (challenge.scope && isAnnounceable(challenge.scope)) parts.push(`scope=${quote(formatScope(challenge.scope))}`);
  if (challenge.error) parts.push(`error=${quote(challenge.error)}`);
  return `Bearer ${parts.join(',')}`;
}

export function basicChallenge(realm: string): string {
  return `Basic realm=${quote(realm)},charset="UTF-8"`;
}

/** The spec's detail of an UNAUTHORIZED error: one `{Type, Name, Action}` per needed action. */
export function accessDetail(scope: ResourceScope | undefined): Array<{ Type: string; Name: string; Action: string }> | undefined {
  if (!scope || !isAnnounceable(scope)) return undefined;
  return scope.actions.map((action) => ({ Type: scope.type, Name: scope.name, Action: action }));
}

/** Only well-formed repository names are echoed back (a crafted path never reaches a header). */
function isAnnounceable(scope: ResourceScope): boolean {
  return scope.type !== 'repository' || isValidName(scope.name);
}

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&').replace(/[^\x20-\x7e]/g, '')}"`;
}
