/** The spec's grammar for repository names, tags and digests. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRegistryError } from '../../src/registry/errors.js';
import {
  assertDigest,
  assertName,
  assertTag,
  isValidName,
  isValidTag,
  MAX_NAME_LENGTH,
  parseDigest,
  parseManifestReference,
} from '../../src/registry/references.js';

const HEX64 = 'a'.repeat(64);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    assert.ok(isRegistryError(error), `expected a RegistryError, got ${String(error)}`);
    return error.code;
  }
}

describe('repository names', () => {
  it('accepts lowercase components joined by ., _, __, dashes and slashes', () => {
    for (const name of ['a', 'library/alpine', 'a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'x/y/z', 'r3g1stry/0', 'a.b-c_d/e']) {
      assert.ok(isValidName(name), name);
    }
  });

  it('rejects uppercase, leading or trailing separators, empty components and other characters', () => {
    for (const name of ['', 'Library', 'a/', '/a', 'a//b', '-a', 'a-', '.a', 'a.', 'a..b', 'a___b', 'a b', 'a:b', 'a@b', '_a']) {
      assert.ok(!isValidName(name), JSON.stringify(name));
    }
  });

  it('allows names up to 255 characters, slashes included, and no longer', () => {
    const atLimit = `${'a'.repeat(127)}/${'b'.repeat(127)}`;
    assert.equal(atLimit.length, MAX_NAME_LENGTH);
    assert.ok(isValidName(atLimit));
    assert.ok(!isValidName(`${atLimit}b`));
  });

  it('throws NAME_INVALID from assertName', () => {
    assert.equal(code(() => assertName('Bad')), 'NAME_INVALID');
    assert.equal(assertName('good/name'), 'good/name');
  });
});

describe('tags', () => {
  it('accepts word characters, dots and dashes, not leading with . or -', () => {
    for (const tag of ['latest', 'v1.2.3', '_private', 'UPPER', '1', 'a-b_c.d', 'x'.repeat(128)]) assert.ok(isValidTag(tag), tag);
  });

  it('rejects empty, over 128 characters, leading . or -, and other characters', () => {
    for (const tag of ['', 'x'.repeat(129), '.hidden', '-dash', 'a:b', 'a/b', 'a b', 'a+b', 'ünï']) {
      assert.ok(!isValidTag(tag), JSON.stringify(tag));
    }
  });

  it('throws TAG_INVALID from assertTag', () => {
    assert.equal(code(() => assertTag('-x')), 'TAG_INVALID');
  });
});

describe('digests', () => {
  it('parses sha256 and sha512 digests of the right length', () => {
    assert.deepEqual(parseDigest(`sha256:${HEX64}`), { algorithm: 'sha256', hex: HEX64 });
    assert.deepEqual(parseDigest(`sha512:${'b'.repeat(128)}`), { algorithm: 'sha512', hex: 'b'.repeat(128) });
  });

  it('rejects malformed, wrong-length, uppercase-hex and unverifiable digests with DIGEST_INVALID', () => {
    const bad = [
      '',
      'sha256',
      `sha256${HEX64}`,
      'sha256:',
      `sha256:${HEX64.slice(1)}`,
      `sha256:${HEX64}0`,
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'z'.repeat(64)}`,
      `sha512:${HEX64}`,
      `md5:${'a'.repeat(32)}`,
      `SHA256:${HEX64}`,
      `sha256:${HEX64}/../x`,
    ];
    for (const digest of bad) assert.equal(code(() => parseDigest(digest)), 'DIGEST_INVALID', JSON.stringify(digest));
  });

  it('returns the digest from assertDigest', () => {
    assert.equal(assertDigest(`sha256:${HEX64}`), `sha256:${HEX64}`);
  });
});

describe('manifest references', () => {
  it('reads a reference with a colon as a digest and anything else as a tag', () => {
    assert.deepEqual(parseManifestReference(`sha256:${HEX64}`), { kind: 'digest', digest: `sha256:${HEX64}` });
    assert.deepEqual(parseManifestReference('latest'), { kind: 'tag', tag: 'latest' });
  });

  it('gives DIGEST_INVALID to a bad digest and TAG_INVALID to a bad tag', () => {
    assert.equal(code(() => parseManifestReference('sha256:abc')), 'DIGEST_INVALID');
    assert.equal(code(() => parseManifestReference('.bad')), 'TAG_INVALID');
  });
});
