/**
 * Repository name patterns of grants and public repositories: `team/app` (exactly that
 * repository), `team/*` (one more component: `team/app`, not `team/app/x`), `team/**` (any
 * depth below `team`), `**` (everything). A `*` inside a component matches within it (`app-*`).
 * Globs only (no regular expressions), matched like every other pattern in the product.
 */
import { globToRegExp } from '../registry/patterns.js';
import { BoundedMap } from '../runtime/bounded-map.js';

const COMPONENT = /^[a-z0-9*][a-z0-9._*-]*$/;
const MAX_PATTERN_LENGTH = 255;

export function isValidPattern(pattern: string): boolean {
  if (pattern.length === 0 || pattern.length > MAX_PATTERN_LENGTH) return false;
  return pattern.split('/').every((component) => component === '**' || (COMPONENT.test(component) && !component.includes('**')));
}

/** A compiled pattern: `matches(name)` is an anchored regular expression test. */
export interface RepositoryPattern {
  readonly source: string;
  matches(repository: string): boolean;
}

/**
 * Compiled patterns by source. Grants are read afresh for every request (so a revoked grant
 * takes effect at once); their compiled form is kept here, as a pattern's text alone decides it.
 */
const compiled = new BoundedMap<string, RepositoryPattern>(10_000);

export function compilePattern(pattern: string): RepositoryPattern {
  const known = compiled.get(pattern);
  if (known) return known;
  if (!isValidPattern(pattern)) throw new Error(`invalid repository pattern: ${JSON.stringify(pattern)}`);
  const regex = globToRegExp(pattern);
  const result: RepositoryPattern = { source: pattern, matches: (repository) => regex.test(repository) };
  compiled.set(pattern, result);
  return result;
}
