/**
 * Who can authenticate: users (password), robots (generated secret, for CI) and the
 * anonymous caller, with the names they log in and appear in tokens under.
 */
import type { Actor } from '../registry/ports.js';

/** User and robot names: lowercase, digits and `.`, `_`, `-`, at most 64 characters. */
export const USER_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Robots log in as `robot+<name>`; `+` cannot occur in user names, so the two never collide. */
export const ROBOT_LOGIN_PREFIX = 'robot+';

export type PrincipalKind = 'user' | 'robot' | 'anonymous';

/** An authenticated caller (or the anonymous one) as the auth layer knows it. */
export interface Principal {
  kind: PrincipalKind;
  /** Database id of the user or robot; 0 for anonymous. */
  id: number;
  /** The account instance (see UserRecord.instance) its tokens are bound to; '' for anonymous. */
  instance: string;
  /** User name, robot name, or `anonymous`. */
  name: string;
  admin: boolean;
}

export const ANONYMOUS: Principal = { kind: 'anonymous', id: 0, instance: '', name: 'anonymous', admin: false };

/** The token `sub` of a principal: the user name, `robot+<name>`, or `""` for anonymous (as jwt.md asks). */
export function subjectOf(principal: Principal): string {
  if (principal.kind === 'anonymous') return '';
  return principal.kind === 'robot' ? ROBOT_LOGIN_PREFIX + principal.name : principal.name;
}

export function actorOf(principal: Principal): Actor {
  return principal.kind === 'anonymous' ? { name: 'anonymous', kind: 'anonymous' } : { name: subjectOf(principal), kind: principal.kind };
}

/** Splits a login name into the kind of account and its name. */
export function parseLogin(login: string): { kind: 'user' | 'robot'; name: string } {
  return login.startsWith(ROBOT_LOGIN_PREFIX) ? { kind: 'robot', name: login.slice(ROBOT_LOGIN_PREFIX.length) } : { kind: 'user', name: login };
}
