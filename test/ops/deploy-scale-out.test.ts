/**
 * The scaled-out shipping files (issue 13), read as kubectl, docker compose and nginx would
 * read them (no cluster or container engine here): every YAML file under deploy/ parses; every
 * REGISTRY_* name they use is a setting the registry knows; the Kubernetes example (three
 * replicas, a migration Job, a PodDisruptionBudget) and the HA compose file (three replicas,
 * PostgreSQL, an S3 server, nginx) give the registry a valid configuration on PostgreSQL and S3,
 * and their parts point at each other (selectors, Secrets, mounts, service names, ports).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';
import { hasCommand } from '../helpers/tools.js';

const read = (file: string) => fs.readFile(path.join(PROJECT_ROOT, file), 'utf8');
const docsOf = async (file: string) => YAML.parseAllDocuments(await read(file), { merge: true }).map((doc) => doc.toJS() as Record<string, any>);

async function deployYamlFiles(): Promise<string[]> {
  const entries = await fs.readdir(path.join(PROJECT_ROOT, 'deploy'), { recursive: true });
  return entries.filter((entry) => /\.ya?ml$/.test(entry)).map((entry) => path.join('deploy', entry)).sort();
}

/** Throws unless `name` is a variable the configuration loader knows (a setting or REGISTRY_CONFIG). */
function assertKnownVariable(name: string, where: string): void {
  try {
    loadConfig({ file: '/dev/null', env: { [name]: 'x' } });
  } catch (error) {
    // A known setting given a bad value is refused too, but not as unknown.
    assert.doesNotMatch((error as Error).message, /unknown setting in environment/, `${where}: ${name}`);
  }
}

/** Values standing in for the Secrets the operator creates. */
const SECRET_VALUES: Record<string, string> = {
  REGISTRY_METADATA_POSTGRES_URL: 'postgres://registry:secret@postgres.example.com:5432/registry?sslmode=verify-full',
  REGISTRY_STORAGE_S3_ACCESS_KEY: 'access-key',
  REGISTRY_STORAGE_S3_SECRET_KEY: 'secret-key',
  REGISTRY_ADMIN_PASSWORD: 'change-me-please',
};

/** Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME:?message}, and $$ for a dollar. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}/g, (match, name?: string, kind?: string, rest?: string) => {
    if (match === '$$') return '$';
    const value = vars[name!];
    if (value !== undefined && value !== '') return value;
    if (kind === '-') return rest!;
    throw new Error(`compose would refuse: ${name} is unset (${rest ?? 'no default'})`);
  });
}

describe('deploy/ files', () => {
  it('every YAML file parses, and every REGISTRY_* name in them is a setting the registry knows', async () => {
    const files = await deployYamlFiles();
    assert.ok(files.length >= 6, files.join(', '));
    for (const file of files) {
      const text = await read(file);
      for (const doc of YAML.parseAllDocuments(text, { merge: true })) assert.deepEqual(doc.errors, [], file);
      for (const name of new Set(text.match(/\bREGISTRY_[A-Z0-9_]+\b/g) ?? [])) assertKnownVariable(name, file);
    }
  });
});

describe('Kubernetes example with three replicas', () => {
  it('configures every replica for PostgreSQL and S3 from a ConfigMap and Secrets, and probes, spreads and protects them', async () => {
    const [config] = await docsOf('deploy/kubernetes/ha/config.yaml');
    const docs = await docsOf('deploy/kubernetes/ha/registry.yaml');
    const find = (kind: string) => {
      const found = docs.find((doc) => doc.kind === kind);
      assert.ok(found, kind);
      return found;
    };
    assert.equal(config?.kind, 'ConfigMap');
    const deployment = find('Deployment');
    assert.equal(deployment.spec.replicas, 3);
    assert.deepEqual(deployment.spec.strategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
    const pod = deployment.spec.template;
    const container = pod.spec.containers[0];
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.ok(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory);
    assert.deepEqual(container.envFrom, [{ configMapRef: { name: config.metadata.name } }]);

    // The registry's view: the ConfigMap plus the Secrets' values.
    const secretEnv = container.env.filter((entry: any) => entry.valueFrom?.secretKeyRef);
    for (const entry of secretEnv) assert.ok(SECRET_VALUES[entry.name], `a stand-in for ${entry.name}`);
    const env = { ...config.data, ...Object.fromEntries(secretEnv.map((entry: any) => [entry.name, SECRET_VALUES[entry.name]])) };
    const settings = loadConfig({ file: '/dev/null', env });
    assert.equal(settings.metadata.driver, 'postgres');
    assert.equal(settings.storage.driver, 's3');
    assert.equal(settings.auth.mode, 'token');
    assert.ok(settings.http.publicUrl);

    // The shared signing key: a Secret mounted where the setting points.
    const keyFile = settings.auth.token.signingKey;
    assert.ok(keyFile, 'a shared signing key');
    const mount = container.volumeMounts.find((m: any) => keyFile.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `a volume mounted at ${path.dirname(keyFile)}`);
    const volume = pod.spec.volumes.find((v: any) => v.name === mount.name);
    assert.equal(path.basename(keyFile), 'signing-key.pem');
    assert.ok(volume.secret?.secretName, 'the key comes from a Secret');
    assert.ok(container.volumeMounts.some((m: any) => m.mountPath === settings.storage.root), 'a writable storage root (read-only root filesystem)');
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);

    const [preStopSeconds] = container.lifecycle.preStop.exec.command.slice(1).map(Number);
    assert.ok(pod.spec.terminationGracePeriodSeconds > preStopSeconds + settings.http.shutdownTimeoutSeconds, 'time to drain and finish uploads');
    const labels = pod.metadata.labels;
    const matches = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => labels[key] === value);
    assert.ok(matches(deployment.spec.selector.matchLabels));
    assert.ok(matches(find('Service').spec.selector), 'the Service selects the pods');
    const budget = find('PodDisruptionBudget');
    assert.ok(matches(budget.spec.selector.matchLabels), 'the budget covers the pods');
    assert.ok(budget.spec.minAvailable >= 1 && budget.spec.minAvailable < deployment.spec.replicas);
    const ingress = find('Ingress').metadata.annotations;
    assert.equal(ingress['nginx.ingress.kubernetes.io/proxy-request-buffering'], 'off');
    assert.doesNotMatch(ingress['nginx.ingress.kubernetes.io/proxy-next-upstream'], /timeout|non_idempotent/, 'no request replayed while it may still run');
  });

  it('migrates with `registry migrate` in a Job on the same image, settings and database', async () => {
    const [job] = await docsOf('deploy/kubernetes/ha/migrate-job.yaml');
    const deployment = (await docsOf('deploy/kubernetes/ha/registry.yaml')).find((doc) => doc.kind === 'Deployment')!;
    const [config] = await docsOf('deploy/kubernetes/ha/config.yaml');
    assert.equal(job?.kind, 'Job');
    const migrate = job.spec.template.spec.containers[0];
    const replica = deployment.spec.template.spec.containers[0];
    assert.deepEqual(migrate.command, ['registry', 'migrate']);
    assert.equal(migrate.image, replica.image);
    assert.deepEqual(migrate.envFrom, replica.envFrom);
    const urlFrom = (container: any) => container.env.find((entry: any) => entry.name === 'REGISTRY_METADATA_POSTGRES_URL').valueFrom;
    assert.deepEqual(urlFrom(migrate), urlFrom(replica));
    assert.equal(job.spec.template.spec.restartPolicy, 'Never');
    assert.ok(job.spec.backoffLimit >= 1 && job.spec.activeDeadlineSeconds > 0);
    const env = { ...config!.data, REGISTRY_METADATA_POSTGRES_URL: SECRET_VALUES.REGISTRY_METADATA_POSTGRES_URL! };
    assert.equal(loadConfig({ file: '/dev/null', env }).metadata.driver, 'postgres');
    const cli = await read('src/cli/metadata-commands.ts');
    assert.match(cli, /\.command\('migrate'\)/, 'the CLI has the command the Job runs');
  });
});

describe('HA compose file', () => {
  const vars = { POSTGRES_PASSWORD: 'pgsecret', S3_ACCESS_KEY: 'registry', S3_SECRET_KEY: 's3secret', REGISTRY_ADMIN_PASSWORD: 'change-me-please' };

  it('runs three replicas on PostgreSQL and the S3 server after the migration, behind nginx', async () => {
    const compose = YAML.parse(interpolate(await read('deploy/compose/ha.yml'), vars), { merge: true }) as { services: Record<string, any> };
    const { services } = compose;
    const replicas = Object.keys(services).filter((name) => /^registry-\d$/.test(name));
    assert.deepEqual(replicas, ['registry-1', 'registry-2', 'registry-3']);
    assert.throws(() => interpolate('${POSTGRES_PASSWORD:?set it}', {}), /unset/, 'compose refuses to start without the secrets');

    for (const name of replicas) {
      const replica = services[name];
      const settings = loadConfig({ file: '/dev/null', env: replica.environment });
      assert.equal(settings.metadata.driver, 'postgres');
      assert.equal(settings.storage.driver, 's3');
      assert.equal(settings.auth.mode, 'token');
      const database = new URL(settings.metadata.postgres.url!);
      assert.ok(services[database.hostname], `the database host ${database.hostname} is a service`);
      assert.equal(database.password, services[database.hostname].environment.POSTGRES_PASSWORD);
      assert.equal(database.username, services[database.hostname].environment.POSTGRES_USER);
      const endpoint = new URL(settings.storage.s3.endpoint!);
      assert.ok(services[endpoint.hostname], `the S3 host ${endpoint.hostname} is a service`);
      assert.match(services[endpoint.hostname].command.join(' '), new RegExp(`-s3\\.port=${endpoint.port}\\b`));
      assert.match(services['s3-bucket'].command.join(' '), new RegExp(`--bucket ${settings.storage.s3.bucket}\\b`));
      assert.equal(replica.depends_on.migrate.condition, 'service_completed_successfully');
      assert.equal(replica.depends_on['s3-bucket'].condition, 'service_completed_successfully');
      assert.equal(services.nginx.depends_on[name].condition, 'service_healthy');
    }
    assert.deepEqual(services.migrate.command, ['registry', 'migrate']);
    assert.deepEqual(services.migrate.environment, services['registry-1'].environment);
    assert.equal(services.migrate.depends_on.postgres.condition, 'service_healthy');
  });

  it("nginx's configuration balances over exactly those replicas with request buffering off, and nginx accepts it", async (t) => {
    const compose = YAML.parse(interpolate(await read('deploy/compose/ha.yml'), vars), { merge: true }) as { services: Record<string, any> };
    const mounted = compose.services.nginx.volumes.find((volume: string) => volume.includes('/etc/nginx/'))!.split(':')[0]!;
    const confFile = path.join('deploy/compose', mounted);
    const conf = await read(confFile);
    const port = loadConfig({ file: '/dev/null', env: compose.services['registry-1'].environment }).http.addr.split(':').pop();
    const upstreams = [...conf.matchAll(/^\s*server\s+([\w.-]+:\d+)/gm)].map((match) => match[1]);
    assert.deepEqual(upstreams, ['registry-1', 'registry-2', 'registry-3'].map((name) => `${name}:${port}`));
    assert.match(conf, /^\s*proxy_request_buffering off;/m);
    assert.match(conf, /^\s*client_max_body_size 0;/m);
    const retries = /^\s*proxy_next_upstream ([^;]+);/m.exec(conf)?.[1] ?? '';
    assert.doesNotMatch(retries, /timeout|non_idempotent/);

    if (!hasCommand('nginx')) return t.skip('nginx is not installed: configuration not checked by nginx -t');
    // As nginx would load it inside its http block, with the replicas' names on loopback.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nginx-ha-'));
    try {
      await fs.writeFile(path.join(dir, 'registry.conf'), conf.replace(/registry-\d:/g, '127.0.0.1:'));
      await fs.writeFile(
        path.join(dir, 'nginx.conf'),
        `pid ${dir}/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n  fastcgi_temp_path ${dir};\n  uwsgi_temp_path ${dir};\n  scgi_temp_path ${dir};\n  include ${dir}/registry.conf;\n}\n`,
      );
      const check = spawnSync('nginx', ['-t', '-q', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(check.status, 0, check.stderr);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
