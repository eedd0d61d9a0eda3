/**
 * Resource scopes as scope.md defines them (`repository:samalba/my-app:pull,push`) and the
 * `access` entries of tokens. Which scope an HTTP request needs is src/http/required-access.ts.
 */

/** One resource and the actions on it: a scope entry, and an entry of a token's `access` claim. */
export interface ResourceScope {
  type: string;
  name: string;
  actions: string[];
}

export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'] as const;
export type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number];

export const CATALOG_SCOPE: ResourceScope = { type: 'registry', name: 'catalog', actions: ['*'] };
/** The scope of the admin API (/api/v1) for Bearer tokens. */
export const ADMIN_SCOPE: ResourceScope = { type: 'registry', name: 'admin', actions: ['*'] };

/** Upper bounds on what one token request may ask for. */
const MAX_SCOPES = 64;
const MAX_SCOPE_LENGTH = 512;
const TYPE = /^[a-z]+$/;
const ACTION = /^(?:[a-z]+|\*)$/;

export class ScopeError extends Error {}

/**
 * Parses scope parameters: each value is a space-separated list of `type:name:action[,action]`.
 * The name may itself hold one `:` (a registry host's port), so type and actions are split
 * off the two ends. Entries for the same resource are merged.
 */
export function parseScopes(values: readonly string[]): ResourceScope[] {
  const merged = new Map<string, ResourceScope>();
  for (const value of values) {
    for (const entry of value.split(' ')) {
      if (entry === '') continue;
      if (merged.size >= MAX_SCOPES) throw new ScopeError(`at most ${MAX_SCOPES} scopes may be requested at once`);
      const scope = parseScope(entry);
      const key = `${scope.type}:${scope.name}`;
      const existing = merged.get(key);
      if (existing) existing.actions = unique([...existing.actions, ...scope.actions]);
      else merged.set(key, scope);
    }
  }
  return [...merged.values()];
}

export function parseScope(entry: string): ResourceScope {
  if (entry.length > MAX_SCOPE_LENGTH) throw new ScopeError('scope too long');
  const first = entry.indexOf(':');
  const last = entry.lastIndexOf(':');
  if (first <= 0 || last === first) throw new ScopeError(`malformed scope ${JSON.stringify(entry)}: expected type:name:actions`);
  const type = entry.slice(0, first);
  const name = entry.slice(first + 1, last);
  const actions = entry.slice(last + 1).split(',').filter((action) => action !== '');
  if (!TYPE.test(type) || name === '' || /[\s"\\]/.test(name) || !actions.every((action) => ACTION.test(action))) {
    throw new ScopeError(`malformed scope ${JSON.stringify(entry)}`);
  }
  return { type, name, actions: unique(actions) };
}

export function formatScope(scope: ResourceScope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}

/** Whether a token's access entries allow `action` on a resource (`*` allows every action). */
export function accessAllows(access: readonly ResourceScope[], type: string, name: string, action: string): boolean {
  return access.some((entry) => entry.type === type && entry.name === name && (entry.actions.includes(action) || entry.actions.includes('*')));
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

