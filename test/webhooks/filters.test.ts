/** Repository and tag patterns, and subscription filters. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileFilter, compilePattern, PatternError } from '../../src/webhooks/filters.js';
import { compileSubscription } from '../../src/webhooks/subscriptions.js';
import type { Subscription } from '../../src/webhooks/types.js';

function matches(pattern: string, values: string[]): string[] {
  const matcher = compilePattern(pattern);
  return values.filter((value) => matcher(value));
}

describe('patterns', () => {
  test('globs: * within a segment, ** across, ? one character, everything else literal', () => {
    const repos = ['app', 'team/app', 'team/api', 'team/sub/app', 'other/app', 'apps'];
    assert.deepEqual(matches('app', repos), ['app']);
    assert.deepEqual(matches('team/*', repos), ['team/app', 'team/api']);
    assert.deepEqual(matches('team/**', repos), ['team/app', 'team/api', 'team/sub/app']);
    assert.deepEqual(matches('**/app', repos), ['team/app', 'team/sub/app', 'other/app']);
    assert.deepEqual(matches('team/ap?', repos), ['team/app', 'team/api']);
    assert.deepEqual(matches('v1.*', ['v1.0', 'v1x0', 'v10.0', 'v1.2.3']), ['v1.0', 'v1.2.3']);
    assert.deepEqual(matches('v*', ['v1', 'latest', 'v2.0.0-rc.1']), ['v1', 'v2.0.0-rc.1']);
  });

  test('regular expressions between slashes, with an optional i flag', () => {
    assert.deepEqual(matches('/^v\\d+\\.\\d+\\.\\d+$/', ['v1.2.3', 'v1.2', 'xv1.2.3']), ['v1.2.3']);
    assert.deepEqual(matches('/^PROD-/i', ['prod-1', 'PROD-2', 'dev']), ['prod-1', 'PROD-2']);
    assert.throws(() => compilePattern('/(unclosed/'), PatternError);
  });

  test('semver and semver:stable', () => {
    const tags = ['1.4.2', 'v1.4.2', '1.4', 'v2.0.0-rc.1', '2.0.0+build.5', 'latest', '01.2.3'];
    assert.deepEqual(matches('semver', tags), ['1.4.2', 'v1.4.2', 'v2.0.0-rc.1', '2.0.0+build.5']);
    assert.deepEqual(matches('semver:stable', tags), ['1.4.2', 'v1.4.2', '2.0.0+build.5']);
  });

  test('a list matches when any pattern does; an empty list matches everything', () => {
    const any = compileFilter([]);
    assert.ok(any('whatever'));
    const list = compileFilter(['latest', 'semver']);
    assert.ok(list('latest') && list('1.0.0') && !list('dev'));
    assert.throws(() => compileFilter(['']), PatternError);
    assert.throws(() => compileFilter(['x'.repeat(257)]), PatternError);
  });
});

describe('subscription filter', () => {
  const base: Subscription = {
    id: 's',
    url: 'http://127.0.0.1/',
    secret: 'x'.repeat(16),
    events: [],
    repositories: [],
    tags: [],
    headers: {},
    format: 'native',
    state: 'active',
    source: 'api',
    startSeq: 10,
    createdAt: 0,
    updatedAt: 0,
  };

  test('no events listed means every change but not pulls', () => {
    const { matches } = compileSubscription(base);
    for (const type of ['repository.created', 'tag.created', 'tag.updated', 'tag.deleted', 'manifest.deleted'] as const) {
      assert.ok(matches({ seq: 11, type, repository: 'app', tag: 'v1' }), type);
    }
    assert.ok(!matches({ seq: 11, type: 'manifest.pulled', repository: 'app', tag: 'v1' }));
  });

  test('events older than the subscription never match', () => {
    const { matches } = compileSubscription(base);
    assert.ok(!matches({ seq: 10, type: 'tag.created', repository: 'app', tag: 'v1' }));
    assert.ok(matches({ seq: 11, type: 'tag.created', repository: 'app', tag: 'v1' }));
  });

  test('tag patterns exclude events without a tag; repository patterns apply to all', () => {
    const { matches } = compileSubscription({ ...base, repositories: ['team/*'], tags: ['v*'] });
    assert.ok(matches({ seq: 11, type: 'tag.created', repository: 'team/app', tag: 'v1' }));
    assert.ok(!matches({ seq: 11, type: 'tag.created', repository: 'team/app', tag: 'latest' }));
    assert.ok(!matches({ seq: 11, type: 'tag.created', repository: 'other/app', tag: 'v1' }));
    assert.ok(!matches({ seq: 11, type: 'repository.created', repository: 'team/app', tag: null }));
    assert.ok(!matches({ seq: 11, type: 'manifest.deleted', repository: 'team/app', tag: null }));
  });

  test('the distribution format cannot express repository creation', () => {
    const { matches } = compileSubscription({ ...base, format: 'distribution' });
    assert.ok(!matches({ seq: 11, type: 'repository.created', repository: 'app', tag: null }));
    assert.ok(matches({ seq: 11, type: 'tag.created', repository: 'app', tag: 'v1' }));
  });
});
