/**
 * skopeo with private state under `dir`: its own HOME, auth file, an empty registries.conf, an
 * accept-anything signature policy and a private blob-info cache, so runs never read or write
 * the machine's. As root, containers/image keeps its cache in /var/lib/containers/cache; with
 * _CONTAINERS_ROOTLESS_UID set it uses $XDG_DATA_HOME/containers/cache instead.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { run, type RunResult } from './tools.js';

export type Skopeo = (...args: string[]) => Promise<RunResult>;

export async function skopeoRunner(dir: string): Promise<Skopeo> {
  await fs.mkdir(path.join(dir, 'data'), { recursive: true });
  await fs.mkdir(path.join(dir, 'run'), { recursive: true, mode: 0o700 });
  await fs.mkdir(path.join(dir, 'registries.d'), { recursive: true });
  const registriesConf = path.join(dir, 'registries.conf');
  await fs.writeFile(registriesConf, '');
  const policy = path.join(dir, 'policy.json');
  await fs.writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    XDG_DATA_HOME: path.join(dir, 'data'),
    XDG_RUNTIME_DIR: path.join(dir, 'run'),
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'),
    ...(process.getuid?.() === 0 ? { _CONTAINERS_ROOTLESS_UID: '1000' } : {}),
    TMPDIR: dir,
  };
  // Global options must precede the subcommand.
  return (...args: string[]) => run('skopeo', ['--policy', policy, '--registries.d', path.join(dir, 'registries.d'), ...args], { env, timeoutMs: 90_000 });
}
