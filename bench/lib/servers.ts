/**
 * Starts the two registries under test on loopback — this project's (as `npm start` runs it, from dist/)
 * and CNCF distribution (Debian's `docker-registry`) — each on a fresh storage folder, and
 * reads their CPU time and memory from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export interface BenchServer {
  name: 'ours' | 'distribution';
  /** host:port */
  host: string;
  root: string;
  pid: number;
  /** Milliseconds from spawn until GET /v2/ answered. */
  startupMs: number;
  stop(): Promise<void>;
}

const PROJECT_ROOT = path.resolve(import.meta.dirname, '..', '..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** The node arguments of `npm start` (e.g. `--max-semi-space-size=1 dist/main.js`): the same process the container image runs. */
async function startArguments(): Promise<string[]> {
  const { scripts } = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const [command, ...args] = scripts.start.split(' ');
  if (command !== 'node') throw new Error(`npm start runs ${command}, not node: update the benchmark`);
  return args;
}

export async function startOurs(root: string, env: Record<string, string> = {}): Promise<BenchServer> {
  const port = await freePort();
  // The compiled build, as `npm start` and the container image run it (bench/run.ts builds it first).
  const child = spawn(process.execPath, await startArguments(), {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
      REGISTRY_STORAGE_ROOT: root,
      REGISTRY_LOG_LEVEL: 'warn',
      REGISTRY_AUTH: 'none',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return waitReady('ours', child, `127.0.0.1:${port}`, root);
}

/** `storage` replaces the filesystem driver's lines of distribution's `storage:` section (e.g. its s3 driver). */
export async function startDistribution(root: string, storage: string[] = ['  filesystem:', `    rootdirectory: ${root}`]): Promise<BenchServer> {
  const port = await freePort();
  await fs.mkdir(root, { recursive: true });
  const configFile = path.join(root, '..', `${path.basename(root)}-config.yml`);
  await fs.writeFile(
    configFile,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  cache:',
      '    blobdescriptor: inmemory',
      ...storage,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  // This machine sets AWS_CA_BUNDLE; distribution's AWS SDK then fails to start its s3 driver
  // ("unable to load custom CA bundle, HTTPClient's transport unsupported type"), and the
  // endpoint is plain HTTP on loopback anyway.
  const { AWS_CA_BUNDLE: _caBundle, ...env } = process.env;
  const child = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', 'ignore', 'ignore'], env });
  return waitReady('distribution', child, `127.0.0.1:${port}`, root);
}

async function waitReady(name: BenchServer['name'], child: ChildProcess, host: string, root: string): Promise<BenchServer> {
  const started = performance.now();
  const deadline = Date.now() + 60_000;
  let exited = false;
  child.once('exit', () => (exited = true));
  for (;;) {
    if (exited) throw new Error(`${name} registry exited during start-up`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} registry did not answer on ${host} within 60 s`);
    }
    try {
      const response = await fetch(`http://${host}/v2/`);
      // 401 is an answer too: the registry is up, with token auth on.
      if (response.status === 200 || response.status === 401) break;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const startupMs = performance.now() - started;
  return {
    name,
    host,
    root,
    pid: child.pid!,
    startupMs,
    async stop() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** User + system CPU seconds the process has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const { user, system } = await processTimes(pid);
  return user + system;
}

/** A process's parent and CPU seconds (its own, and its reaped children's) from /proc/<pid>/stat. */
export async function processTimes(pid: number): Promise<{ ppid: number; user: number; system: number; children: number }> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command: state 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14 (clock ticks, 100/s on Linux).
  const seconds = (i: number) => Number(fields[i]) / 100;
  return { ppid: Number(fields[1]), user: seconds(11), system: seconds(12), children: seconds(13) + seconds(14) };
}

/** Resident memory of the process now, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Samples RSS every `intervalMs` while `work` runs; returns its result and the peak seen. */
export async function withPeakRss<T>(pid: number, work: () => Promise<T>, intervalMs = 25): Promise<{ result: T; peakRss: number }> {
  let peak = await rssBytes(pid);
  const timer = setInterval(() => {
    rssBytes(pid).then(
      (rss) => (peak = Math.max(peak, rss)),
      () => undefined,
    );
  }, intervalMs);
  try {
    const result = await work();
    return { result, peakRss: Math.max(peak, await rssBytes(pid)) };
  } finally {
    clearInterval(timer);
  }
}
