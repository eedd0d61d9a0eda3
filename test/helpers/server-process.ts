/**
 * Starts the real registry as a child process (`node --import tsx src/main.ts`) on a random
 * loopback port over a fresh storage folder, for end-to-end tests that drive real clients.
 *
 * Stable API (other e2e suites import it): `startServer(options)` → `ServerProcess`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project folder (the child's cwd). */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Settings every e2e server gets unless the caller overrides them. Authentication is off
 * (`REGISTRY_AUTH=none`) so suites about the core need no credentials; a caller that sets
 * REGISTRY_AUTH or REGISTRY_AUTH_MODE gets exactly what it asked for.
 */
const DEFAULT_ENV: Record<string, string> = {
  REGISTRY_HTTP_ADDR: '127.0.0.1:0',
  REGISTRY_LOG_LEVEL: 'info',
  REGISTRY_AUTH: 'none',
};
const AUTH_MODE_VARIABLES = ['REGISTRY_AUTH', 'REGISTRY_AUTH_MODE'];

export interface StartServerOptions {
  /** Extra environment (REGISTRY_* settings); wins over the defaults (auth off, loopback, port 0). */
  env?: Record<string, string>;
  /**
   * Storage root to use instead of a fresh temp folder (e.g. to restart over the same data).
   * A root passed in is never deleted by this helper.
   */
  root?: string;
  /** How long to wait for the "registry listening" line; default 20 s. */
  startTimeoutMs?: number;
  /** Extra node options before the entry point (e.g. npm start's `--max-semi-space-size=1`). */
  nodeArgs?: string[];
}

export interface ServerProcess {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** host:port, e.g. 127.0.0.1:41234 (what clients put in image references). */
  host: string;
  /** The storage root the server runs on. */
  root: string;
  /** The child process (for tests that need its pid or streams). */
  child: ChildProcess;
  /** Everything the server printed so far (stdout and stderr interleaved). */
  output(): string;
  /** Scrapes GET /metrics and returns every `registry_*` sample by series name (labels included, if any). */
  metrics(): Promise<Record<string, number>>;
  /**
   * Scrapes until `settled` holds (or `timeoutMs` passes, then returns the last scrape).
   * Request counts are recorded when the server sees the connection's response finish, which
   * can come a moment after the client has read it and moved on.
   */
  metricsWhen(settled: (metrics: Record<string, number>) => boolean, timeoutMs?: number): Promise<Record<string, number>>;
  /** Sends `signal` (default SIGTERM), waits (bounded) for exit, then removes the temp root. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the server and removes the temp root. */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startServer(options: StartServerOptions = {}): Promise<ServerProcess> {
  const ownRoot = options.root === undefined;
  const root = options.root ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'registry-e2e-')));
  const env: NodeJS.ProcessEnv = {};
  // Settings come only from here: a stray REGISTRY_* in the test runner's environment must not leak in.
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) env[name] = value;
  Object.assign(env, DEFAULT_ENV, { REGISTRY_STORAGE_ROOT: root });
  if (AUTH_MODE_VARIABLES.some((name) => options.env?.[name] !== undefined)) {
    for (const name of AUTH_MODE_VARIABLES) delete env[name];
  }
  Object.assign(env, options.env);

  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', 'src/main.ts'], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });

  const removeRoot = async () => {
    if (ownRoot) await fs.rm(root, { recursive: true, force: true });
  };

  let url: string;
  try {
    url = await waitForListening(child, () => output, exited, options.startTimeoutMs ?? 20_000);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    await removeRoot();
    throw error;
  }

  let stopped: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM') => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const result = await exited;
      clearTimeout(timer);
      await removeRoot();
      return result;
    })();
    return stopped;
  };

  return {
    url,
    host: new URL(url).host,
    root,
    child,
    output: () => output,
    metrics: async () => parseRegistryMetrics(await fetchText(`${url}/metrics`)),
    metricsWhen: async (settled, timeoutMs = 5_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const metrics = parseRegistryMetrics(await fetchText(`${url}/metrics`));
        if (settled(metrics) || Date.now() >= deadline) return metrics;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    stop,
    kill: async () => {
      await stop('SIGKILL');
    },
  };
}

function waitForListening(
  child: ChildProcess,
  output: () => string,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const fail = (why: string) => {
      cleanup();
      reject(new Error(`registry did not start: ${why}\n--- server output ---\n${output()}`));
    };
    const onData = (text: string) => {
      buffered += text;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const url = listeningUrl(line);
        if (url) {
          cleanup();
          resolve(url);
          return;
        }
      }
    };
    const timer = setTimeout(() => fail(`no "registry listening" line within ${timeoutMs} ms`), timeoutMs);
    let done = false;
    void exited.then(({ code, signal }) => {
      if (!done) fail(`exited early (code ${code}, signal ${signal})`);
    });
    const cleanup = () => {
      done = true;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
    };
    child.stdout!.on('data', onData);
  });
}

function listeningUrl(line: string): string | null {
  if (!line.startsWith('{')) return null;
  try {
    const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
    return entry.msg === 'registry listening' && typeof entry.url === 'string' ? entry.url : null;
  } catch {
    return null;
  }
}

async function fetchText(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${text}`);
  return text;
}

/** The `registry_*` samples of a Prometheus text exposition, by series name (with labels when present). */
export function parseRegistryMetrics(text: string): Record<string, number> {
  const samples: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('registry_')) continue;
    const match = /^(\S+?(?:\{[^}]*\})?)\s+(\S+)(?:\s+\d+)?$/.exec(line.trim());
    if (match) samples[match[1]!] = Number(match[2]);
  }
  return samples;
}
