/**
 * Repository and tag filters of subscriptions and the deploy agent, in the product's one
 * pattern syntax (see src/registry/patterns.ts). A filter with no patterns lets everything through.
 */
import { compilePatterns, type Matcher } from '../registry/patterns.js';

export { compilePattern, MAX_PATTERN_LENGTH, PatternError, validatePatterns, type Matcher } from '../registry/patterns.js';

/** Compiles a filter; an empty list matches everything. Throws PatternError when malformed. */
export function compileFilter(patterns: readonly string[]): Matcher {
  return compilePatterns(patterns, 'match-all');
}
