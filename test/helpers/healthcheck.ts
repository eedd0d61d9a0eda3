/** Runs the container health check script (src/healthcheck.ts) with only the given REGISTRY_* settings. */
import { execFile } from 'node:child_process';
import { PROJECT_ROOT } from './server-process.js';

export function healthcheck(settings: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) env[name] = value;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/healthcheck.ts'], { cwd: PROJECT_ROOT, env: { ...env, ...settings }, timeout: 30_000, encoding: 'utf8' }, (error, _stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stderr });
    });
  });
}
