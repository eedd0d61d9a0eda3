/**
 * Configuration of the operations surface: defaults, REGISTRY_* overrides, errors that name
 * the key, `registry config check` and `registry config schema` as real processes, and the
 * annotated config/registry.yaml documenting every option the schema knows.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { configJsonSchema } from '../../src/cli/config-commands.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';
import { hasCommand } from '../helpers/tools.js';

const BIN = path.join(PROJECT_ROOT, 'bin', 'registry.js');
const EMPTY = '/dev/null';

function load(env: Record<string, string>, file = EMPTY) {
  return loadConfig({ env, file });
}

function problem(env: Record<string, string>, file = EMPTY): string {
  try {
    load(env, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail('expected a configuration error');
}

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) clean[name] = value;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, env: { ...clean, ...env }, timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('operations settings', () => {
  it('have documented defaults', () => {
    const config = load({});
    assert.deepEqual(config.http.tls, {});
    assert.equal(config.http.trustProxy, false);
    assert.equal(config.http.shutdownTimeoutSeconds, 30);
    assert.deepEqual(config.metrics, { enabled: true, requireAuth: false });
    assert.equal(config.import.maxBytes, 10 * 1024 ** 3);
  });

  it('are all settable through REGISTRY_* variables', () => {
    const config = load({
      REGISTRY_HTTP_TLS_CERTIFICATE: '/etc/tls/tls.crt',
      REGISTRY_HTTP_TLS_KEY: '/etc/tls/tls.key',
      REGISTRY_HTTP_TRUST_PROXY: 'loopback, 10.0.0.0/8',
      REGISTRY_HTTP_SHUTDOWN_TIMEOUT_SECONDS: '5',
      REGISTRY_METRICS_ENABLED: 'false',
      REGISTRY_METRICS_REQUIRE_AUTH: 'true',
      REGISTRY_IMPORT_MAX_BYTES: '500MB',
    });
    assert.deepEqual(config.http.tls, { certificate: '/etc/tls/tls.crt', key: '/etc/tls/tls.key' });
    assert.deepEqual(config.http.trustProxy, ['loopback', '10.0.0.0/8']);
    assert.equal(config.http.shutdownTimeoutSeconds, 5);
    assert.deepEqual(config.metrics, { enabled: false, requireAuth: true });
    assert.equal(config.import.maxBytes, 500_000_000);
    assert.equal(load({ REGISTRY_HTTP_TRUST_PROXY: 'true' }).http.trustProxy, true);
    assert.equal(load({ REGISTRY_HTTP_TRUST_PROXY: '2' }).http.trustProxy, 2);
  });

  it('name the key and the problem when wrong', () => {
    assert.match(problem({ REGISTRY_HTTP_TLS_KEY: '/k.pem' }), /http\.tls\.certificate \(REGISTRY_HTTP_TLS_CERTIFICATE\): set both http\.tls\.certificate and http\.tls\.key/);
    assert.match(problem({ REGISTRY_HTTP_TRUST_PROXY: 'proxy.example.com' }), /http\.trustProxy \(REGISTRY_HTTP_TRUST_PROXY\): "proxy\.example\.com" is not an IP address/);
    assert.match(problem({ REGISTRY_HTTP_TRUST_PROXY: '10.0.0.0/40' }), /http\.trustProxy.*invalid prefix length/);
    assert.match(problem({ REGISTRY_HTTP_SHUTDOWN_TIMEOUT_SECONDS: '-1' }), /http\.shutdownTimeoutSeconds \(REGISTRY_HTTP_SHUTDOWN_TIMEOUT_SECONDS\)/);
    assert.match(problem({ REGISTRY_METRICS_ENABLED: 'sometimes' }), /metrics\.enabled \(REGISTRY_METRICS_ENABLED\)/);
    assert.match(problem({ REGISTRY_METRICS_REQUIRE_AUTH: 'true', REGISTRY_AUTH: 'none' }), /metrics\.requireAuth \(REGISTRY_METRICS_REQUIRE_AUTH\): needs auth\.mode token/);
    assert.match(problem({ REGISTRY_IMPORT_MAX_BYTES: 'lots' }), /import\.maxBytes \(REGISTRY_IMPORT_MAX_BYTES\): must be a number of bytes or a size such as 500MB, 10GiB/);
    assert.match(problem({ REGISTRY_HTTP_TLS_CERT: 'x' }), /unknown setting in environment: REGISTRY_HTTP_TLS_CERT/);
  });

  it('refuse unknown keys in the file, naming them', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'config-ops-'));
    try {
      const file = path.join(dir, 'registry.yaml');
      await fs.writeFile(file, 'http:\n  tls:\n    cert: /x.pem\nmetrics:\n  enable: true\n');
      const message = problem({}, file);
      assert.match(message, /http\.tls\.cert: unknown setting/);
      assert.match(message, /metrics\.enable: unknown setting/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('config/registry.yaml', () => {
  it('is valid and documents every option of the schema', async () => {
    const text = await fs.readFile(path.join(PROJECT_ROOT, 'config', 'registry.yaml'), 'utf8');
    loadConfig({ env: {}, file: path.join(PROJECT_ROOT, 'config', 'registry.yaml') });
    // Every leaf setting appears as `key:` (set, or commented out as an example) inside its section.
    const missing: string[] = [];
    const walk = (schema: Record<string, unknown>, keyPath: string[]) => {
      const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
      if (!properties || schema.type !== 'object') {
        const key = keyPath[keyPath.length - 1]!;
        const section = keyPath[0]!;
        const sectionText = sectionOf(text, section);
        if (!new RegExp(`^[ \\t#]*${key}:`, 'm').test(sectionText)) missing.push(keyPath.join('.'));
        return;
      }
      for (const [key, child] of Object.entries(properties)) walk(child, [...keyPath, key]);
    };
    walk(configJsonSchema(), []);
    assert.deepEqual(missing, [], 'settings missing from config/registry.yaml');
  });
});

/** The text of a top-level section of the YAML file (up to the next top-level key). */
function sectionOf(text: string, section: string): string {
  const start = text.search(new RegExp(`^${section}:`, 'm'));
  if (start < 0) return '';
  const lineEnd = text.indexOf('\n', start);
  const rest = lineEnd < 0 ? '' : text.slice(lineEnd + 1);
  const next = rest.search(/^[a-zA-Z]/m);
  return next < 0 ? rest : rest.slice(0, next);
}

describe('registry config check / config schema', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'config-cli-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('accepts the shipped file and a minimal one (exit 0)', async () => {
    const shipped = await cli(['config', 'check', '--file', 'config/registry.yaml']);
    assert.equal(shipped.code, 0, shipped.stderr);
    assert.match(shipped.stdout, /configuration OK/);
    const file = path.join(dir, 'min.yaml');
    await fs.writeFile(file, 'http:\n  addr: 127.0.0.1:5001\n');
    const printed = await cli(['config', 'check', '--file', file, '--print'], { REGISTRY_ADMIN_PASSWORD: 'a-very-secret-password' });
    assert.equal(printed.code, 0, printed.stderr);
    const effective = YAML.parse(printed.stdout.replace(/configuration OK.*\n?$/, '')) as { http: { addr: string }; auth: { adminPassword: string } };
    assert.equal(effective.http.addr, '127.0.0.1:5001');
    assert.equal(effective.auth.adminPassword, '[hidden]');
    assert.ok(!printed.stdout.includes('a-very-secret-password'));
  });

  it('refuses a bad file with exit 2 and every problem named', async () => {
    const file = path.join(dir, 'bad.yaml');
    await fs.writeFile(file, 'http:\n  addr: nowhere\n  trustProxy: proxy.local\nimport:\n  maxBytes: huge\n');
    const res = await cli(['config', 'check', '--file', file]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /http\.addr \(REGISTRY_HTTP_ADDR\): must be host:port/);
    assert.match(res.stderr, /http\.trustProxy \(REGISTRY_HTTP_TRUST_PROXY\)/);
    assert.match(res.stderr, /import\.maxBytes \(REGISTRY_IMPORT_MAX_BYTES\)/);
    const env = await cli(['config', 'check', '--file', 'config/registry.yaml'], { REGISTRY_LOG_LEVEL: 'loud' });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /log\.level \(REGISTRY_LOG_LEVEL\)/);
    const missing = await cli(['config', 'check', '--file', path.join(dir, 'absent.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config file/);
  });

  it('checks that the TLS files exist and belong together', { skip: hasCommand('openssl') ? false : 'openssl not installed' }, async () => {
    const absent = await cli(['config', 'check', '--file', 'config/registry.yaml'], {
      REGISTRY_HTTP_TLS_CERTIFICATE: path.join(dir, 'none.crt'),
      REGISTRY_HTTP_TLS_KEY: path.join(dir, 'none.key'),
    });
    assert.equal(absent.code, 2);
    assert.match(absent.stderr, /http\.tls\.certificate: cannot read .*none\.crt \(ENOENT\)/);
    const { makeCertificates } = await import('../helpers/certificates.js');
    const one = await makeCertificates(path.join(dir, 'one'));
    const two = await makeCertificates(path.join(dir, 'two'));
    const mismatched = await cli(['config', 'check'], { REGISTRY_HTTP_TLS_CERTIFICATE: one.serverCert, REGISTRY_HTTP_TLS_KEY: two.serverKey });
    assert.equal(mismatched.code, 2);
    assert.match(mismatched.stderr, /http\.tls: the certificate and key cannot be used together/);
    const matching = await cli(['config', 'check'], { REGISTRY_HTTP_TLS_CERTIFICATE: one.serverCert, REGISTRY_HTTP_TLS_KEY: one.serverKey });
    assert.equal(matching.code, 0, matching.stderr);
  });

  it('prints a JSON Schema that describes the new sections', async () => {
    const res = await cli(['config', 'schema']);
    assert.equal(res.code, 0, res.stderr);
    const schema = JSON.parse(res.stdout) as { $schema: string; properties: Record<string, { properties: Record<string, unknown> }> };
    assert.match(schema.$schema, /json-schema\.org/);
    assert.ok(schema.properties.http!.properties.tls);
    assert.ok(schema.properties.http!.properties.trustProxy);
    assert.ok(schema.properties.metrics!.properties.requireAuth);
    assert.ok(schema.properties.import!.properties.maxBytes);
    assert.equal((schema as unknown as { additionalProperties: boolean }).additionalProperties, false, 'unknown keys are flagged in editors too');
  });

  it('--version prints the package version; bad input exits non-zero with a message', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = await cli(['--version']);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), pkg.version);
    const unknown = await cli(['config', 'frobnicate']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown command/);
    const help = await cli(['import', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--repository/);
    const noTag = await cli(['import', 'x.tar', '--repository', 'a/b']);
    assert.equal(noTag.code, 2);
    assert.match(noTag.stderr, /required option '-t, --tag <tag>' not specified/);
  });
});
