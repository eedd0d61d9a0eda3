/** Scope grammar, repository patterns, the scope each /v2 request needs, and challenge headers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessPolicy } from '../../src/auth/accounts.js';
import { bearerChallenge } from '../../src/auth/challenge.js';
import { compilePattern, isValidPattern } from '../../src/auth/patterns.js';
import { ANONYMOUS } from '../../src/auth/principals.js';
import { formatScope, parseScopes, ScopeError } from '../../src/auth/scopes.js';
import { requiredAccess } from '../../src/http/required-access.js';

describe('scopes', () => {
  it('parses repeated and space-separated scopes, merging actions per resource', () => {
    assert.deepEqual(parseScopes(['repository:samalba/my-app:pull,push', 'repository:samalba/my-app:pull repository:other:pull', 'registry:catalog:*']), [
      { type: 'repository', name: 'samalba/my-app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'other', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('keeps a port in the resource name (scope.md)', () => {
    assert.deepEqual(parseScopes(['repository:localhost:5000/team/app:pull']), [{ type: 'repository', name: 'localhost:5000/team/app', actions: ['pull'] }]);
  });

  it('refuses malformed scopes and too many of them', () => {
    for (const bad of ['repository', 'repository:name', ':name:pull', 'Repo:x:pull', 'repository:a"b:pull', 'repository:x:PULL']) {
      assert.throws(() => parseScopes([bad]), ScopeError, bad);
    }
    assert.throws(() => parseScopes([Array.from({ length: 65 }, (_, i) => `repository:r${i}:pull`).join(' ')]), /at most 64/);
  });

  it('formats back to the grammar', () => {
    assert.equal(formatScope({ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }), 'repository:a/b:pull,push');
  });
});

describe('required access of /v2 requests', () => {
  const cases: Array<[string, string, string | null]> = [
    ['GET', '/v2/', null],
    ['GET', '/v2', null],
    ['GET', '/v2/_catalog', 'registry:catalog:*'],
    ['GET', '/v2/a/b/tags/list', 'repository:a/b:pull'],
    ['HEAD', '/v2/a/manifests/latest', 'repository:a:pull'],
    ['GET', '/v2/a/manifests/sha256:abc', 'repository:a:pull'],
    ['PUT', '/v2/a/manifests/latest', 'repository:a:pull,push'],
    ['DELETE', '/v2/a/manifests/latest', 'repository:a:delete'],
    ['HEAD', '/v2/a/b/c/blobs/sha256:abc', 'repository:a/b/c:pull'],
    ['GET', '/v2/a/blobs/sha256:abc', 'repository:a:pull'],
    ['DELETE', '/v2/a/blobs/sha256:abc', 'repository:a:delete'],
    ['POST', '/v2/a/blobs/uploads/', 'repository:a:pull,push'],
    ['POST', '/v2/a/blobs/uploads', 'repository:a:pull,push'],
    ['PATCH', '/v2/a/blobs/uploads/123', 'repository:a:pull,push'],
    ['PUT', '/v2/a/blobs/uploads/123', 'repository:a:pull,push'],
    ['GET', '/v2/a/blobs/uploads/123', 'repository:a:pull,push'],
    ['DELETE', '/v2/a/blobs/uploads/123', 'repository:a:pull,push'],
    ['GET', '/v2/a/referrers/sha256:abc', 'repository:a:pull'],
    // A repository whose name ends in path words of the API is still the one the route serves.
    ['GET', '/v2/a/manifests/tags/list', 'repository:a/manifests:pull'],
    ['POST', '/v2/a/blobs/uploads/blobs/uploads', 'repository:a/blobs/uploads:pull,push'],
    // URI-decoded, like the route's own parameter.
    ['GET', '/v2/a%2Fb/tags/list', 'repository:a/b:pull'],
    ['GET', '/v2/unknown', null],
    ['POST', '/v2/a/manifests/x', null],
  ];
  for (const [method, path, expected] of cases) {
    it(`${method} ${path} → ${expected ?? 'a valid identity'}`, () => {
      const required = requiredAccess(method, path);
      assert.equal(required.kind === 'scope' ? formatScope(required.scope) : null, expected);
    });
  }
});

describe('repository patterns', () => {
  const cases: Array<[string, string, boolean]> = [
    ['team/app', 'team/app', true],
    ['team/app', 'team/app2', false],
    ['team/*', 'team/app', true],
    ['team/*', 'team/app/sub', false],
    ['team/*', 'team', false],
    ['team/**', 'team/app/sub', true],
    ['team/**', 'team', false],
    ['team/**', 'teamx/app', false],
    ['**', 'anything/at/all', true],
    ['*', 'top', true],
    ['*', 'a/b', false],
    ['app-*', 'app-web', true],
    ['app-*', 'app-web/x', false],
    ['a.b/*', 'aXb/c', false],
  ];
  for (const [pattern, name, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${name}`, () => {
      assert.equal(compilePattern(pattern).matches(name), expected);
    });
  }

  it('validates patterns', () => {
    for (const good of ['a', 'team/*', 'team/**', '**', 'a-*/b', 'x.y_z/**']) assert.ok(isValidPattern(good), good);
    for (const bad of ['', 'Team/*', 'team/**x', 'team//a', '/team', 'team/', 'a b', 'te**am']) assert.ok(!isValidPattern(bad), bad);
  });
});

describe('access policy', () => {
  it('anonymous callers pull public repositories and nothing else; the catalog only when some are public', () => {
    const open = new AccessPolicy(ANONYMOUS, [], [compilePattern('public/**')]);
    assert.ok(open.allows('public/a/b', 'pull'));
    assert.ok(!open.allows('public/a/b', 'push'));
    assert.ok(!open.allows('private/a', 'pull'));
    assert.ok(open.canListCatalog());
    assert.ok(!new AccessPolicy(ANONYMOUS, [], []).canListCatalog());
  });

  it('grants the intersection, and * as every action held', () => {
    const policy = new AccessPolicy({ kind: 'user', id: 1, instance: 'i', name: 'u', admin: false }, [{ id: 1, pattern: 'a/*', actions: ['pull', 'delete'] }], []);
    assert.deepEqual(policy.grant({ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }), { type: 'repository', name: 'a/b', actions: ['pull'] });
    assert.deepEqual(policy.grant({ type: 'repository', name: 'a/b', actions: ['*'] }), { type: 'repository', name: 'a/b', actions: ['pull', 'delete'] });
    assert.equal(policy.grant({ type: 'repository', name: 'b/c', actions: ['pull'] }), null);
    assert.equal(policy.grant({ type: 'registry', name: 'admin', actions: ['*'] }), null);
    assert.equal(policy.grant({ type: 'unknown', name: 'x', actions: ['pull'] }), null);
  });
});

describe('challenges', () => {
  it('quotes parameters and leaves out the scope of a malformed repository name', () => {
    assert.equal(
      bearerChallenge({ realm: 'https://r.example/auth/token', service: 'svc', scope: { type: 'repository', name: 'a/b', actions: ['pull', 'push'] }, error: 'insufficient_scope' }),
      'Bearer realm="https://r.example/auth/token",service="svc",scope="repository:a/b:pull,push",error="insufficient_scope"',
    );
    assert.equal(
      bearerChallenge({ realm: 'https://r.example/auth/token', service: 'svc', scope: { type: 'repository', name: 'a"\r\nx', actions: ['pull'] } }),
      'Bearer realm="https://r.example/auth/token",service="svc"',
    );
  });
});
