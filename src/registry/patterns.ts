/**
 * The one pattern syntax of the product, used by grants, webhook filters, the deploy agent
 * and the lifecycle rules (retention, immutable tags, quotas):
 * - a glob: `*` matches within one path segment, `**` across segments, `?` one character
 *   (`team/*`, `team/**`, `v*`, `*.RELEASE`, `**`);
 * - a regular expression between slashes, optionally with `i`: `/^v\d+\.\d+$/`;
 * - `semver`: a semantic version with an optional leading `v` (`1.4.2`, `v2.0.0-rc.1`);
 *   `semver:stable`: the same without pre-releases.
 */

export type Matcher = (value: string) => boolean;

/** A semantic version (2.0.0 grammar) with an optional leading `v`: groups major, minor, patch, pre-release, build. */
export const SEMVER =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export const MAX_PATTERN_LENGTH = 256;

export class PatternError extends Error {
  constructor(
    readonly pattern: string,
    message: string,
  ) {
    super(`invalid pattern ${JSON.stringify(pattern)}: ${message}`);
    this.name = 'PatternError';
  }
}

/** Compiles one pattern; throws PatternError when it is malformed. */
export function compilePattern(pattern: string): Matcher {
  if (pattern.length === 0 || pattern.length > MAX_PATTERN_LENGTH) {
    throw new PatternError(pattern, `must be 1 to ${MAX_PATTERN_LENGTH} characters`);
  }
  if (pattern === 'semver') return (value) => SEMVER.test(value);
  if (pattern === 'semver:stable') {
    return (value) => {
      const match = SEMVER.exec(value);
      return match !== null && match[4] === undefined;
    };
  }
  const regex = /^\/(.+)\/(i?)$/s.exec(pattern);
  if (regex) {
    let compiled: RegExp;
    try {
      compiled = new RegExp(regex[1]!, regex[2]);
    } catch (error) {
      throw new PatternError(pattern, (error as Error).message);
    }
    return (value) => compiled.test(value);
  }
  const compiled = globToRegExp(pattern);
  return (value) => compiled.test(value);
}

/**
 * One matcher for a list of patterns: true when any matches. What an empty list means is the
 * caller's to say: a filter with no patterns lets everything through, a rule with none applies to nothing.
 */
export function compilePatterns(patterns: readonly string[], whenEmpty: 'match-all' | 'match-none'): Matcher {
  if (patterns.length === 0) return whenEmpty === 'match-all' ? () => true : () => false;
  const matchers = patterns.map(compilePattern);
  return (value) => matchers.some((matcher) => matcher(value));
}

/** Throws PatternError naming the first malformed pattern. */
export function validatePatterns(patterns: readonly string[]): void {
  for (const pattern of patterns) compilePattern(pattern);
}

/** The error message for a malformed pattern, or null when it compiles. */
export function patternProblem(pattern: string): string | null {
  try {
    compilePattern(pattern);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** An anchored regular expression for a glob (`*` within a segment, `**` across, `?` one character). */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*') {
      if (glob[i + 1] === '*') {
        source += '.*';
        i++;
      } else {
        source += '[^/]*';
      }
    } else if (char === '?') {
      source += '[^/]';
    } else {
      source += char.replace(/[.+^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}
