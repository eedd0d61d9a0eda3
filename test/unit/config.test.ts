/** Configuration loading: the YAML file, REGISTRY_* overrides, defaults, and failing fast on anything unknown. */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, envName, loadConfig, validateConfig } from '../../src/config/load.js';

describe('configuration', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-config-'));
    file = path.join(dir, 'registry.yaml');
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  async function load(yaml: string, env: Record<string, string> = {}) {
    await fs.writeFile(file, yaml);
    return loadConfig({ file, env });
  }

  function assertConfigError(fn: () => unknown, pattern: RegExp): void {
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.match(error.message, pattern);
      return true;
    });
  }

  it('fills every default from an empty file', async () => {
    const config = await load('');
    assert.equal(config.http.addr, '0.0.0.0:5000');
    assert.equal(config.storage.root, './storage');
    assert.equal(config.storage.deleteEnabled, true);
    assert.equal(config.api.linkKnownBlobsOnHead, true);
    assert.equal(config.api.maxManifestBytes, 4 * 1024 * 1024);
    assert.equal(config.log.level, 'info');
  });

  it('reads settings from the YAML file', async () => {
    const config = await load('http:\n  addr: 127.0.0.1:6000\nstorage:\n  root: /data\n  deleteEnabled: false\n');
    assert.equal(config.http.addr, '127.0.0.1:6000');
    assert.equal(config.storage.root, '/data');
    assert.equal(config.storage.deleteEnabled, false);
  });

  it('refuses an unknown key in the file, naming it', async () => {
    await fs.writeFile(file, 'storage:\n  rooot: /data\n');
    assertConfigError(() => loadConfig({ file, env: {} }), /storage\.rooot: unknown setting/);
  });

  it('refuses an unknown top-level section', async () => {
    await fs.writeFile(file, 'htp:\n  addr: 127.0.0.1:5000\n');
    assertConfigError(() => loadConfig({ file, env: {} }), /htp: unknown setting/);
  });

  it('refuses an unknown REGISTRY_* environment variable, naming it', async () => {
    await fs.writeFile(file, '');
    assertConfigError(() => loadConfig({ file, env: { REGISTRY_STORAGE_ROOTDIR: '/x' } }), /REGISTRY_STORAGE_ROOTDIR/);
  });

  it('suggests the closest known variable for a misspelt one, and lists them all for one that resembles none', async () => {
    await fs.writeFile(file, '');
    const cases: Array<[string, string]> = [
      ['REGISTRY_HTTP_ADR', 'REGISTRY_HTTP_ADDR'],
      ['REGISTRY_STORAGE_ROOTDIR', 'REGISTRY_STORAGE_ROOT'],
      ['REGISTRY_ADMIN_PASWORD', 'REGISTRY_ADMIN_PASSWORD'],
      ['REGISTRY_CONFG', 'REGISTRY_CONFIG'],
    ];
    for (const [typed, meant] of cases) {
      assertConfigError(() => loadConfig({ file, env: { [typed]: 'x' } }), new RegExp(`^unknown setting in environment: ${typed}; did you mean ${meant}\\?$`));
    }
    assertConfigError(() => loadConfig({ file, env: { REGISTRY_FOO: 'x' } }), /^unknown setting in environment: REGISTRY_FOO \(known: REGISTRY_ADMIN_PASSWORD, .*REGISTRY_HTTP_ADDR, /);
  });

  it('names the variable the user set when its value is invalid, a short alias included', async () => {
    await fs.writeFile(file, '');
    const message = (env: NodeJS.ProcessEnv) => {
      try {
        loadConfig({ file, env });
      } catch (error) {
        return (error as Error).message;
      }
      return assert.fail('the configuration was accepted');
    };
    assert.match(message({ REGISTRY_ADMIN_PASSWORD: 'short' }), /auth\.adminPassword \(REGISTRY_ADMIN_PASSWORD\): must be at least 8 characters/);
    assert.doesNotMatch(message({ REGISTRY_ADMIN_PASSWORD: 'short' }), /REGISTRY_AUTH_ADMIN_PASSWORD/);
    assert.match(message({ REGISTRY_AUTH: 'open' }), /auth\.mode \(REGISTRY_AUTH\)/);
    assert.match(message({ REGISTRY_AUTH_MODE: 'open' }), /auth\.mode \(REGISTRY_AUTH_MODE\)/);
    // A value from the file is named by the variable that would set it.
    await fs.writeFile(file, 'auth:\n  adminPassword: short\n');
    assert.match(message({}), /auth\.adminPassword \(REGISTRY_AUTH_ADMIN_PASSWORD\)/);
  });

  it('ignores REGISTRY_CONFIG and variables without the prefix', async () => {
    const config = await load('', { REGISTRY_CONFIG: file, PATH: '/usr/bin', REGISTRYX: 'y' });
    assert.equal(config.http.addr, '0.0.0.0:5000');
  });

  it('refuses a malformed REGISTRY_HTTP_ADDR, naming the setting', async () => {
    for (const addr of ['localhost', '5000', 'host:99999', 'a b:1']) {
      await fs.writeFile(file, '');
      assertConfigError(() => loadConfig({ file, env: { REGISTRY_HTTP_ADDR: addr } }), /http\.addr \(REGISTRY_HTTP_ADDR\): (must be host:port|port must be)/);
    }
  });

  it('accepts IPv6 and host-less listen addresses', async () => {
    assert.equal((await load('', { REGISTRY_HTTP_ADDR: '[::1]:5000' })).http.addr, '[::1]:5000');
    assert.equal((await load('', { REGISTRY_HTTP_ADDR: ':5000' })).http.addr, ':5000');
  });

  it('lets environment variables win over the file', async () => {
    const config = await load('http:\n  addr: 127.0.0.1:6000\nlog:\n  level: warn\n', {
      REGISTRY_HTTP_ADDR: '127.0.0.1:7000',
      REGISTRY_LOG_LEVEL: 'debug',
    });
    assert.equal(config.http.addr, '127.0.0.1:7000');
    assert.equal(config.log.level, 'debug');
  });

  it('parses REGISTRY_STORAGE_DELETE_ENABLED=false as the boolean false', async () => {
    const config = await load('storage:\n  deleteEnabled: true\n', { REGISTRY_STORAGE_DELETE_ENABLED: 'false' });
    assert.equal(config.storage.deleteEnabled, false);
  });

  it('parses numeric environment values as numbers', async () => {
    const config = await load('', { REGISTRY_API_MAX_MANIFEST_BYTES: '1024' });
    assert.equal(config.api.maxManifestBytes, 1024);
  });

  it('keeps a text setting from the environment exactly as given, even when it looks like a number or has a #', async () => {
    assert.equal((await load('', { REGISTRY_STORAGE_ROOT: '2024' })).storage.root, '2024');
    assert.equal((await load('', { REGISTRY_STORAGE_ROOT: '/srv/registry #1' })).storage.root, '/srv/registry #1');
    assert.equal((await load('', { REGISTRY_STORAGE_ROOT: 'true' })).storage.root, 'true');
  });

  it('refuses a value of the wrong type, naming the setting and its variable', async () => {
    assertConfigError(() => validateConfig({ storage: { deleteEnabled: 'sometimes' } }), /storage\.deleteEnabled \(REGISTRY_STORAGE_DELETE_ENABLED\)/);
    assertConfigError(() => validateConfig({ log: { level: 'loud' } }), /log\.level/);
  });

  it('refuses two webhook subscriptions with the same id, naming the second', () => {
    const subscription = { id: 'deploy', url: 'http://agent.example:9000/hook', secret: 'sixteen-chars-secret' };
    assertConfigError(
      () => validateConfig({ webhooks: { subscriptions: [subscription, { ...subscription, url: 'http://other.example/hook' }] } }),
      /webhooks\.subscriptions\.1\.id.*"deploy" is already the id of an earlier subscription/,
    );
  });

  it('fails when an explicitly named file does not exist', () => {
    assertConfigError(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} }), /cannot read config file/);
  });

  it('fails on a file that is not a mapping', async () => {
    await fs.writeFile(file, '- a\n- b\n');
    assertConfigError(() => loadConfig({ file, env: {} }), /mapping/);
  });

  it('names environment variables after the key path', () => {
    assert.equal(envName(['storage', 'deleteEnabled']), 'REGISTRY_STORAGE_DELETE_ENABLED');
    assert.equal(envName(['api', 'linkKnownBlobsOnHead']), 'REGISTRY_API_LINK_KNOWN_BLOBS_ON_HEAD');
    assert.equal(envName(['http', 'addr']), 'REGISTRY_HTTP_ADDR');
  });
});
