/**
 * A real Docker engine for e2e tests, one per test file (scripts/dockerd.sh: dockerd with its
 * own containerd, data and socket under a temp folder), and the building blocks the Docker
 * tests share: the `docker` CLI bound to that engine with a private config folder, images made
 * without Docker Hub (FROM scratch plus the static busybox of busybox-static), a service image
 * with a HEALTHCHECK, waiting for a container to become healthy, logging in, pushing.
 *
 *   const suite = await dockerEngineForSuite('docker login e2e');
 *   describe('docker login', { skip: suite.skip }, () => {
 *     const engine = suite.engine!;
 *     after(() => engine.stop());
 *     it('pushes', async () => {
 *       await buildServiceImage(engine, `${registry.host}/ci/app:1.0.0`, { release: '1.0.0' });
 *       await dockerLogin(engine, registry.host, 'robot+ci', secret);
 *       const digest = await pushImage(engine, `${registry.host}/ci/app:1.0.0`);
 *       await engine.docker(['run', '-d', '--name', 'app', '--network=none', `${registry.host}/ci/app@${digest}`]);
 *       await waitForHealthy(engine, 'app');
 *       assert.ok((await containerImageDigests(engine, 'app')).includes(`${registry.host}/ci/app@${digest}`));
 *     });
 *   });
 *
 * A process that should drive the same engine (a deploy agent whose command runs
 * `docker pull && docker run`) gets `engine.env`: DOCKER_HOST and the DOCKER_CONFIG holding the
 * logins made here.
 *
 * The engine starts before the suite (top-level await), so a machine without one skips the
 * suite with the reason printed; in CI (CI set) an engine that fails to start although its
 * tools are installed fails instead, so a broken engine cannot pass as skipped. The engine is
 * stopped by `stop()` (call it from `after`, which runs when tests fail too) and, as a last
 * resort, when the test process exits or is interrupted.
 *
 * Builds use the classic builder (DOCKER_BUILDKIT=0): Debian's dockerd 20.10 has BuildKit but
 * the docker CLI on PATH may be a newer one that needs the buildx plugin for it. Set DOCKER_CLI
 * to test another client binary (default: `docker` on PATH).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { openSync, readSync, closeSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from './server-process.js';
import { hasCommand, run, type RunResult } from './tools.js';

const SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'dockerd.sh');
/** Debian's busybox-static; the dynamic busybox package cannot run in a FROM scratch image. */
export const STATIC_BUSYBOX = '/bin/busybox';

export interface DockerRunOptions {
  /** Written to standard input (then closed), e.g. for --password-stdin. */
  input?: string;
  /** Default 120 s. */
  timeoutMs?: number;
  cwd?: string;
  /** Another client binary than DOCKER_CLI / `docker` on PATH, e.g. Debian's /usr/bin/docker. */
  cli?: string;
}

export interface DockerEngine {
  /** The DOCKER_HOST value, unix:///…/docker.sock. */
  readonly host: string;
  /** DOCKER_CONFIG of this engine's client: credentials from `docker login`, manifest lists. */
  readonly configDir: string;
  /** A scratch folder removed with the engine (build contexts and such). */
  readonly workDir: string;
  /** The environment the client runs with (DOCKER_HOST, DOCKER_CONFIG, DOCKER_BUILDKIT=0). */
  readonly env: NodeJS.ProcessEnv;
  /** Runs the docker CLI against this engine; rejects with everything it printed. */
  docker(args: string[], options?: DockerRunOptions): Promise<RunResult>;
  /** The end of dockerd's log, for failure messages. */
  log(lines?: number): Promise<string>;
  /** Removes every container, stops the engine and deletes its files; safe to call twice. */
  stop(): Promise<void>;
}

export type DockerSuite = { engine: DockerEngine; skip: false } | { engine: undefined; skip: string };

/** Why a Docker engine cannot run here (a missing tool, not root), or null when it can. */
export function dockerUnavailable(): string | null {
  if (process.platform !== 'linux') return 'the Docker engine tests need Linux';
  if (process.getuid?.() !== 0) return 'dockerd needs root';
  for (const tool of ['dockerd', 'containerd', 'containerd-shim-runc-v2', 'runc', dockerCli()]) {
    if (!hasCommand(tool)) return `${tool} is not installed (Debian: apt-get install docker.io)`;
  }
  return null;
}

/** Why FROM scratch busybox images cannot be built here, or null. */
export function staticBusyboxUnavailable(): string | null {
  try {
    return isStaticElf(STATIC_BUSYBOX) ? null : `${STATIC_BUSYBOX} is not statically linked (apt-get install busybox-static)`;
  } catch {
    return `${STATIC_BUSYBOX} is missing (apt-get install busybox-static)`;
  }
}

/**
 * Starts one engine for a test file, or says why the file's suite must be skipped (printed
 * with `label`). Call it at the top level of the test file, before `describe`.
 */
export async function dockerEngineForSuite(label: string, options: { needsBusybox?: boolean } = {}): Promise<DockerSuite> {
  const missing = dockerUnavailable() ?? (options.needsBusybox === false ? null : staticBusyboxUnavailable());
  if (missing) {
    console.log(`${label} skipped: ${missing}`);
    return { engine: undefined, skip: missing };
  }
  try {
    return { engine: await startDockerEngine(), skip: false };
  } catch (error) {
    if (process.env.CI) throw error;
    const reason = `dockerd could not start: ${(error as Error).message.split('\n')[0]}`;
    console.log(`${label} skipped: ${reason}\n${(error as Error).message}`);
    return { engine: undefined, skip: reason };
  }
}

const liveEngines = new Set<string>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  const stopAllNow = () => {
    for (const dir of liveEngines) {
      try {
        execFileSync(SCRIPT, ['stop', path.join(dir, 'engine')], { stdio: 'ignore', timeout: 60_000 });
      } catch {
        // nothing more can be done on the way out
      }
      execFileSync('rm', ['-rf', dir], { stdio: 'ignore' });
    }
    liveEngines.clear();
  };
  process.once('exit', stopAllNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopAllNow();
      process.kill(process.pid, signal);
    });
  }
}

/** Starts a throwaway engine (bounded: the script waits at most 30 s per daemon). */
export async function startDockerEngine(): Promise<DockerEngine> {
  // Short: unix socket paths are limited to 107 bytes.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hm-docker-'));
  const engineDir = path.join(dir, 'engine');
  const configDir = path.join(dir, 'config');
  const workDir = path.join(dir, 'work');
  await fs.mkdir(configDir, { mode: 0o700 });
  await fs.mkdir(workDir);
  installExitHooks();
  liveEngines.add(dir);
  let host: string;
  try {
    host = (await run(SCRIPT, ['start', engineDir], { timeoutMs: 90_000 })).stdout.trim();
  } catch (error) {
    liveEngines.delete(dir);
    await run(SCRIPT, ['stop', engineDir], { timeoutMs: 90_000 }).catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
    throw error;
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_TLS']) delete env[name];
  Object.assign(env, { DOCKER_HOST: host, DOCKER_CONFIG: configDir, DOCKER_BUILDKIT: '0', DOCKER_CLI_HINTS: 'false' });

  let stopped: Promise<void> | undefined;
  return {
    host,
    configDir,
    workDir,
    env,
    docker: (args, options = {}) => run(options.cli ?? dockerCli(), args, { env, timeoutMs: options.timeoutMs ?? 120_000, input: options.input, cwd: options.cwd }),
    log: async (lines = 40) => {
      const text = await fs.readFile(path.join(engineDir, 'dockerd.log'), 'utf8').catch(() => '');
      return text.split('\n').slice(-lines).join('\n');
    },
    stop: () =>
      (stopped ??= (async () => {
        try {
          await run(SCRIPT, ['stop', engineDir], { timeoutMs: 120_000 });
        } finally {
          liveEngines.delete(dir);
          await fs.rm(dir, { recursive: true, force: true });
        }
      })()),
  };
}

function dockerCli(): string {
  return process.env.DOCKER_CLI || 'docker';
}

// ---- images without Docker Hub

export interface ScratchImageOptions {
  /** Dockerfile lines after the FROM (and the busybox install): COPY, ENV, HEALTHCHECK, CMD… */
  lines?: string[];
  /** Files of the build context (name → content) for the COPY lines. */
  files?: Record<string, string | Buffer>;
  /** Install the static busybox as /bin/busybox with its applets in /bin (default true). */
  busybox?: boolean;
  /** `docker build --platform`, e.g. linux/arm64 for a manifest list's second entry (then no busybox: it could not run there). */
  platform?: string;
}

/** Builds `tag` FROM scratch (no base image to pull) and returns the image id. */
export async function buildScratchImage(engine: DockerEngine, tag: string, options: ScratchImageOptions = {}): Promise<string> {
  const context = await fs.mkdtemp(path.join(engine.workDir, 'context-'));
  try {
    const busybox = options.busybox ?? true;
    const lines = ['FROM scratch'];
    if (busybox) {
      await fs.copyFile(STATIC_BUSYBOX, path.join(context, 'busybox'));
      lines.push('COPY busybox /bin/busybox', 'RUN ["/bin/busybox", "--install", "-s", "/bin"]');
    }
    lines.push(...(options.lines ?? []));
    for (const [name, content] of Object.entries(options.files ?? {})) {
      await fs.mkdir(path.dirname(path.join(context, name)), { recursive: true });
      await fs.writeFile(path.join(context, name), content);
    }
    await fs.writeFile(path.join(context, 'Dockerfile'), `${lines.join('\n')}\n`);
    const platform = options.platform ? ['--platform', options.platform] : [];
    await engine.docker(['build', '--network=none', ...platform, '-t', tag, context]);
    return (await engine.docker(['image', 'inspect', '--format', '{{.Id}}', tag])).stdout.trim();
  } finally {
    await fs.rm(context, { recursive: true, force: true });
  }
}

export interface ServiceImageOptions {
  /** Served at /release.txt, so a test can ask a running container which release it is. */
  release: string;
  /** Port busybox httpd listens on inside the container (loopback; default 8080). */
  port?: number;
  /** A HEALTHCHECK that never passes, for tests of a release that comes up unhealthy. */
  unhealthy?: boolean;
}

/**
 * A service image like a CI pipeline builds: busybox httpd serving /release.txt, with a
 * HEALTHCHECK that fetches it every second. Runs with --network=none (the check runs inside the
 * container, on its own loopback).
 */
export async function buildServiceImage(engine: DockerEngine, tag: string, options: ServiceImageOptions): Promise<string> {
  const port = options.port ?? 8080;
  const probe = options.unhealthy ? '/missing.txt' : '/release.txt';
  return buildScratchImage(engine, tag, {
    files: { 'www/release.txt': `${options.release}\n` },
    lines: [
      'COPY www /www',
      `LABEL org.opencontainers.image.version=${JSON.stringify(options.release)}`,
      `HEALTHCHECK --interval=1s --timeout=3s --retries=3 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:${port}${probe}"]`,
      `CMD ["httpd", "-f", "-p", "127.0.0.1:${port}", "-h", "/www"]`,
    ],
  });
}

export interface ContainerState {
  Status: string;
  Running: boolean;
  ExitCode: number;
  Health?: { Status: string; FailingStreak: number; Log: Array<{ ExitCode: number; Output: string }> };
}

export async function containerState(engine: DockerEngine, container: string): Promise<ContainerState> {
  return JSON.parse((await engine.docker(['inspect', '--format', '{{json .State}}', container])).stdout) as ContainerState;
}

/**
 * Waits until the container's HEALTHCHECK reports healthy (polling, bounded by `timeoutMs`,
 * default 60 s); rejects at once when it turns unhealthy or the container exits, with the
 * probes' output and the container's log.
 */
export async function waitForHealthy(engine: DockerEngine, container: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await containerState(engine, container);
    if (!state.Health) throw new Error(`container ${container} has no HEALTHCHECK`);
    if (state.Health.Status === 'healthy') return;
    const why = !state.Running
      ? `exited (${state.Status}, code ${state.ExitCode})`
      : state.Health.Status === 'unhealthy'
        ? 'is unhealthy'
        : Date.now() >= deadline
          ? `is still ${state.Health.Status} after ${timeoutMs} ms`
          : null;
    if (why) {
      const probes = state.Health.Log.map((probe) => `exit ${probe.ExitCode}: ${probe.Output.trim()}`).join('\n');
      const logs = await engine.docker(['logs', '--tail', '30', container]).then(
        (result) => result.stdout + result.stderr,
        (error: Error) => error.message,
      );
      throw new Error(`container ${container} ${why}\n--- health probes ---\n${probes}\n--- container log ---\n${logs}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// ---- registries

/** `docker login` with the secret on standard input (a user's password or a robot's secret). */
export async function dockerLogin(engine: DockerEngine, registry: string, username: string, secret: string): Promise<RunResult> {
  return engine.docker(['login', '--username', username, '--password-stdin', registry], { input: secret });
}

/** `docker push` of one tag; returns the manifest digest the registry acknowledged. */
export async function pushImage(engine: DockerEngine, reference: string): Promise<string> {
  const { stdout } = await engine.docker(['push', reference], { timeoutMs: 300_000 });
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
  if (!digest) throw new Error(`docker push ${reference} printed no digest:\n${stdout}`);
  return digest;
}

/** The repository digests (`name@sha256:…`) the engine knows for a local image. */
export async function repoDigests(engine: DockerEngine, image: string): Promise<string[]> {
  return JSON.parse((await engine.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', image])).stdout) as string[];
}

/**
 * The repository digests of the image a container runs (`name@sha256:…`), to check that a
 * deploy runs exactly the digest that was pushed.
 */
export async function containerImageDigests(engine: DockerEngine, container: string): Promise<string[]> {
  const image = (await engine.docker(['inspect', '--format', '{{.Image}}', container])).stdout.trim();
  return repoDigests(engine, image);
}

/** True when the ELF file at `file` has no program interpreter (PT_INTERP), i.e. is static. */
function isStaticElf(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) return false; // 64-bit ELF only
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

/**
 * A loopback port free right now, for a container on --network=host (which cannot report a
 * port 0 back the way a child process does). Another process could take it before the
 * container binds it; the container then fails to start and says so.
 */
export async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
