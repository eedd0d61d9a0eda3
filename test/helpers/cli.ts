/**
 * Runs the admin CLI (`bin/registry.js`) as a real process over a storage root, auth off, with
 * no REGISTRY_* setting leaking in from the test runner; bounded by a timeout.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from './server-process.js';

const BIN = path.join(PROJECT_ROOT, 'bin', 'registry.js');

export function runCli(root: string, args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) env[name] = value;
  Object.assign(env, { REGISTRY_STORAGE_ROOT: root, REGISTRY_AUTH: 'none' });
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, env, timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin ?? '');
  });
}
