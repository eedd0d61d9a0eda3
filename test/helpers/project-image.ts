/**
 * The project's container image built for real from its Dockerfile, on machines that cannot
 * reach Docker Hub or GitHub:
 * - the base (the Dockerfile's NODE_IMAGE, node:20-bookworm-slim by default) is a local stand-in
 *   made by scripts/node-base-rootfs.sh: a debootstrap minbase Debian from the mirror apt uses
 *   plus this machine's node and npm. The tarball is cached under CACHE_DIR, keyed by everything
 *   that goes into it, so only the first run pays for debootstrap (~30 s to 2 min here);
 * - better-sqlite3's prebuilt binary, which `npm ci` would download from GitHub, is served from
 *   loopback (prebuild-install's binary-host mirror, a build argument of the Dockerfile), built
 *   from the checkout's own compiled module. Without it node-gyp compiles SQLite in the build:
 *   ~4.5 minutes more. The image still installs the compiler toolchain as the Dockerfile says.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { DockerEngine } from './docker.js';
import { PROJECT_ROOT } from './server-process.js';
import { hasCommand, run } from './tools.js';

const ROOTFS_SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'node-base-rootfs.sh');
/** Kept across runs (override with HARBORMASTER_DOCKER_CACHE). */
export const CACHE_DIR = process.env.HARBORMASTER_DOCKER_CACHE ?? path.join(existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'harbormaster-docker-cache');
const ROOTFS_TIMEOUT_MS = 10 * 60_000;
const BUILD_TIMEOUT_MS = 15 * 60_000;
const STALE_MS = 7 * 24 * 3600_000;

/** Why the local base cannot be made here, or null. */
export function nodeBaseUnavailable(): string | null {
  if (!hasCommand('debootstrap')) return 'debootstrap is not installed (apt-get install debootstrap)';
  return null;
}

/** What the base tarball is made of: the script, node, npm, the headers, the CA bundle, apt's sources and clock settings. */
async function rootfsKey(): Promise<string> {
  const hash = createHash('sha256');
  const node = await fs.realpath(process.execPath);
  const prefix = path.dirname(path.dirname(node));
  const inputs = [ROOTFS_SCRIPT, node, path.join(prefix, 'lib/node_modules/npm/package.json'), path.join(prefix, 'include/node/node_version.h'), '/etc/ssl/certs/ca-certificates.crt', '/etc/os-release', '/etc/apt/sources.list'];
  for (const dir of ['/etc/apt/sources.list.d', '/etc/apt/apt.conf.d']) {
    for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort()) inputs.push(path.join(dir, name));
  }
  for (const file of inputs) {
    hash.update(`${file}\0`);
    try {
      for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    } catch {
      hash.update('(missing)');
    }
  }
  for (const name of ['DEBIAN_MIRROR', 'DEBIAN_SUITE']) hash.update(`${name}=${process.env[name] ?? ''}\0`);
  return hash.digest('hex').slice(0, 16);
}

/** The cached base tarball, made first when missing (bounded by ROOTFS_TIMEOUT_MS). */
export async function nodeBaseRootfs(): Promise<string> {
  const key = await rootfsKey();
  const file = path.join(CACHE_DIR, `node-base-${key}.tar`);
  if (existsSync(file)) return file;
  await fs.mkdir(CACHE_DIR, { recursive: true });
  const started = Date.now();
  // The script writes OUT.partial and renames it: a run cut short leaves no half tarball behind.
  await run(ROOTFS_SCRIPT, [file], { timeoutMs: ROOTFS_TIMEOUT_MS });
  console.log(`# made the local node base image's rootfs in ${Math.round((Date.now() - started) / 1000)} s: ${file}`);
  for (const name of await fs.readdir(CACHE_DIR)) {
    if (!name.startsWith('node-base-') || name === path.basename(file)) continue;
    const other = path.join(CACHE_DIR, name);
    const stat = await fs.stat(other).catch(() => null);
    if (stat && Date.now() - stat.mtimeMs > STALE_MS) await fs.rm(other, { force: true });
  }
  return file;
}

/** Imports the base into `engine` as local/node-base:<key> (a few seconds) and returns that tag. */
export async function importNodeBase(engine: DockerEngine): Promise<string> {
  const file = await nodeBaseRootfs();
  const tag = `local/node-base:${path.basename(file, '.tar').slice('node-base-'.length)}`;
  await engine.docker(
    [
      'import',
      '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--change', 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
      '--change', 'CMD ["node"]',
      file,
      tag,
    ],
    { timeoutMs: 300_000 },
  );
  return tag;
}

interface PrebuiltMirror {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves the checkout's compiled better-sqlite3 as the prebuilt tarball prebuild-install asks
 * for, when its version is the lockfile's (so the image gets the module `npm ci` would install);
 * null otherwise (the build then compiles it).
 */
async function betterSqlitePrebuiltMirror(workDir: string): Promise<PrebuiltMirror | null> {
  const lock = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  const locked = lock.packages['node_modules/better-sqlite3']?.version;
  const moduleDir = path.join(PROJECT_ROOT, 'node_modules', 'better-sqlite3');
  const installed = (JSON.parse(await fs.readFile(path.join(moduleDir, 'package.json'), 'utf8').catch(() => '{}')) as { version?: string }).version;
  const binary = path.join(moduleDir, 'build', 'Release', 'better_sqlite3.node');
  if (!locked || installed !== locked || !existsSync(binary)) return null;
  const stage = await fs.mkdtemp(path.join(workDir, 'prebuilt-'));
  await fs.mkdir(path.join(stage, 'build', 'Release'), { recursive: true });
  await fs.copyFile(binary, path.join(stage, 'build', 'Release', 'better_sqlite3.node'));
  const tarball = path.join(workDir, 'better-sqlite3-prebuilt.tar.gz');
  await run('tar', ['-C', stage, '-czf', tarball, 'build']);
  const wanted = `/v${locked}/better-sqlite3-v${locked}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== wanted) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/gzip' });
    createReadStream(tarball).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface ProjectImage {
  id: string;
  /** Seconds spent: making or finding the base, importing it, building. */
  timings: { base: number; build: number };
}

/**
 * `docker build` of the checkout (its Dockerfile, build context and .dockerignore) on the local
 * base, with --network=host so apt-get and npm reach their registries (bounded by BUILD_TIMEOUT_MS).
 */
export async function buildProjectImage(engine: DockerEngine, tag: string): Promise<ProjectImage> {
  const started = Date.now();
  const base = await importNodeBase(engine);
  const baseReady = Date.now();
  const mirror = await betterSqlitePrebuiltMirror(engine.workDir);
  try {
    const mirrorArgs = mirror ? ['--build-arg', `npm_config_better_sqlite3_binary_host=${mirror.url}`] : [];
    await engine.docker(['build', '--network=host', '--build-arg', `NODE_IMAGE=${base}`, ...mirrorArgs, '-t', tag, PROJECT_ROOT], { timeoutMs: BUILD_TIMEOUT_MS });
  } finally {
    await mirror?.close();
  }
  const id = (await engine.docker(['image', 'inspect', '--format', '{{.Id}}', tag])).stdout.trim();
  return { id, timings: { base: (baseReady - started) / 1000, build: (Date.now() - baseReady) / 1000 } };
}
