/** The tag list's semver order: SemVer 2.0 precedence, highest first, other tags after by name. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { semverOrder } from '../../src/registry/browse.js';

describe('semver order of tags', () => {
  it('follows SemVer precedence, pre-releases included, highest first', () => {
    const ascending = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.2.0', '1.10.0', '2.0.0'];
    const shuffled = [...ascending].sort(() => 0.5 - Math.random());
    assert.deepEqual(semverOrder(shuffled), [...ascending].reverse());
  });

  it('puts tags that are no version after the versions, by name; a leading v and build metadata count as versions', () => {
    assert.deepEqual(semverOrder(['latest', 'v1.9.0', 'main', '1.10.0+build.5', '01.2.3', 'dev-abc', '1.2']), ['1.10.0+build.5', 'v1.9.0', '01.2.3', '1.2', 'dev-abc', 'latest', 'main']);
  });
});
