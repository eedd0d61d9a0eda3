/**
 * nginx as a real load balancer in front of registry replicas (scripts/nginx.sh): round robin,
 * bodies streamed both ways, on a loopback port, everything it writes in a temp folder. One per
 * test file; `nginxUnavailable()` is the reason to skip on a machine without nginx.
 *
 *   const lb = await startLoadBalancer(replicas.map((replica) => replica.host));
 *   after(() => lb.stop());
 *   await skopeo('copy', …, `docker://${lb.host}/team/app:1`);
 *   (await lb.accessLog()) // one line per request: … upstream=127.0.0.1:41234 upstream_status=201 …
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeLoopbackPort } from './docker.js';
import { PROJECT_ROOT } from './server-process.js';

const SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'nginx.sh');
const NGINX = process.env.NGINX || '/usr/sbin/nginx';

/** Why nginx tests cannot run here, or null when they can. */
export function nginxUnavailable(): string | null {
  try {
    fs.accessSync(NGINX, fs.constants.X_OK);
    return null;
  } catch {
    return `${NGINX} is not installed (apt-get install nginx)`;
  }
}

export interface LoadBalancer {
  /** http://127.0.0.1:<port> */
  url: string;
  /** 127.0.0.1:<port>, for image references. */
  host: string;
  /** Requests served so far, one line each, naming the replica that answered (upstream=…). */
  accessLog(): Promise<string>;
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  // The master and its workers form one process group (spawned detached).
  for (const child of running) if (child.pid) killGroup(child.pid, 'SIGKILL');
});

export async function startLoadBalancer(upstreams: string[]): Promise<LoadBalancer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'registry-nginx-'));
  // A port free a moment ago can be taken before nginx binds it: then start over on another.
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    try {
      const child = await runNginx(dir, port, upstreams);
      return loadBalancer(dir, port, child);
    } catch (error) {
      const log = await fsp.readFile(path.join(dir, 'error.log'), 'utf8').catch(() => '');
      if (attempt < 3 && /Address already in use/.test(log)) continue;
      await fsp.rm(dir, { recursive: true, force: true });
      throw error;
    }
  }
}

async function runNginx(dir: string, port: number, upstreams: string[]): Promise<ChildProcess> {
  const child = spawn(SCRIPT, ['run', dir, String(port), ...upstreams], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(`nginx exited (code ${code}, signal ${signal})`);
    }),
  );
  const deadline = Date.now() + 15_000;
  for (;;) {
    const state = await Promise.race([exited, accepts(port).then((ok) => (ok ? 'up' : null))]);
    if (state === 'up') return child;
    if (state !== null) throw new Error(`${state}\n${output}\n${await fsp.readFile(path.join(dir, 'error.log'), 'utf8').catch(() => '')}`);
    if (Date.now() >= deadline) {
      killGroup(child.pid!, 'SIGKILL');
      throw new Error(`nginx did not listen on 127.0.0.1:${port} within 15 s\n${output}`);
    }
    await sleep(50);
  }
}

function loadBalancer(dir: string, port: number, child: ChildProcess): LoadBalancer {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    accessLog: () => fsp.readFile(path.join(dir, 'access.log'), 'utf8').catch(() => ''),
    errorLog: () => fsp.readFile(path.join(dir, 'error.log'), 'utf8').catch(() => ''),
    stop: () =>
      (stopped ??= (async () => {
        // SIGTERM: nginx's fast shutdown (the master ends its workers); SIGKILL to the group if it hangs.
        killGroup(child.pid!, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
        await fsp.rm(dir, { recursive: true, force: true });
      })()),
  };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}
