/** The `lifecycle` settings: defaults, sizes, patterns, refusals naming the key, env overrides. */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, validateConfig } from '../../src/config/load.js';
import { parseSize } from '../../src/config/lifecycle.js';

describe('lifecycle configuration', () => {
  it('defaults: daily collection, 1 h grace period, untagged manifests kept, uploads purged after 24 h, no rules', () => {
    assert.deepEqual(validateConfig({}).lifecycle, {
      gc: { intervalSeconds: 86_400, gracePeriodSeconds: 3_600, untaggedManifestAgeSeconds: 0, uploadMaxAgeSeconds: 86_400 },
      retention: [],
      immutableTags: [],
      quotas: [],
    });
  });

  it('reads sizes with units', () => {
    assert.equal(parseSize('10GiB'), 10 * 2 ** 30);
    assert.equal(parseSize('500 MB'), 500_000_000);
    assert.equal(parseSize('1.5KiB'), 1536);
    assert.equal(parseSize('42'), 42);
    assert.equal(parseSize('lots'), null);
    const config = validateConfig({ lifecycle: { quotas: [{ repositories: ['team/*'], maxBytes: '2 GiB' }, { repositories: ['x'], maxBytes: 7 }] } });
    assert.deepEqual(config.lifecycle.quotas.map((q) => q.maxBytes), [2 * 2 ** 30, 7]);
  });

  it('refuses malformed rules, naming the setting', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ quotas: [{ repositories: ['a'], maxBytes: 'lots' }] }, /lifecycle\.quotas\.0\.maxBytes.*size such as/],
      [{ immutableTags: [{ tags: ['/[/'] }] }, /lifecycle\.immutableTags\.0\.tags\.0.*invalid pattern/],
      [{ immutableTags: [{ tags: [] }] }, /lifecycle\.immutableTags\.0\.tags.*at least one tag pattern/],
      [{ retention: [{ repositories: ['**'], keepTags: ['semver'] }] }, /lifecycle\.retention\.0.*keepLatest, olderThanDays or both/],
      [{ retention: [{ repositories: ['**'], keepLatest: 3, keep: 1 }] }, /lifecycle\.retention\.0\.keep: unknown setting/],
      [{ gc: { uploadMaxAgeSeconds: 5 } }, /lifecycle\.gc\.uploadMaxAgeSeconds.*at least 60/],
      [{ gc: { gracePeriodSeconds: -1 } }, /lifecycle\.gc\.gracePeriodSeconds/],
    ];
    for (const [lifecycle, message] of cases) {
      assert.throws(() => validateConfig({ lifecycle }), (error: unknown) => error instanceof ConfigError && message.test(error.message), JSON.stringify(lifecycle));
    }
  });

  it('takes rules from the file and gc settings from REGISTRY_LIFECYCLE_GC_* variables', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lifecycle-config-'));
    try {
      const file = path.join(dir, 'registry.yaml');
      await fs.writeFile(
        file,
        ['lifecycle:', '  immutableTags:', '    - name: releases', "      tags: ['v*']", '  gc:', '    intervalSeconds: 600'].join('\n'),
      );
      const config = loadConfig({
        file,
        env: { REGISTRY_LIFECYCLE_GC_GRACE_PERIOD_SECONDS: '0', REGISTRY_LIFECYCLE_GC_UNTAGGED_MANIFEST_AGE_SECONDS: '604800' },
      });
      assert.deepEqual(config.lifecycle.immutableTags, [{ name: 'releases', repositories: ['**'], tags: ['v*'] }]);
      assert.deepEqual(config.lifecycle.gc, { intervalSeconds: 600, gracePeriodSeconds: 0, untaggedManifestAgeSeconds: 604_800, uploadMaxAgeSeconds: 86_400 });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
