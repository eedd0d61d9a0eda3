/**
 * The web interface at scale: 10,000 repositories and one repository of 100,000 tags (over 100
 * distinct images, each with a real config blob, so platforms are read as in production), served
 * by the compiled registry with token auth, read as a user whose grant covers `scale/**`.
 * Measures the browsing API's first pages and, in headless Chromium where it is installed, the
 * time from navigation to the first page of the interface on screen (target: under 1 s).
 * Distribution has no interface, so these rows have no ratio.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import { SqliteMetadataStore } from '../src/metadata/sqlite/metadata-store.js';
import { digestBytes } from '../src/registry/digests.js';
import type { Actor, NewManifest } from '../src/registry/ports.js';
import { FilesystemBlobStore } from '../src/storage/filesystem/blob-store.js';
import { repositoryName, type ScaleSpec } from './lib/seed.js';
import { startOurs, type BenchServer } from './lib/servers.js';

const CHROMIUM = '/usr/bin/chromium';
const IMAGES = 100;
const PASSWORD = 'bench-admin-password';
const VIEWER = { username: 'viewer', password: 'viewer-password-123' };
const PUSHER: Actor = { name: 'ci-bot', kind: 'robot' };

export type Recorder = (title: string, unit: string, better: 'higher' | 'lower', target: string, name: 'ours', value: number) => void;

/** Writes a blob file through the store (as an upload would) and returns its descriptor. */
async function commitBlob(store: FilesystemBlobStore, bytes: Buffer, index: number): Promise<{ digest: string; size: number }> {
  const digest = digestBytes(bytes);
  const id = `bench-${index}`;
  const started = await store.createUpload(id);
  const written = await store.appendUpload(id, started, Readable.from([bytes]));
  await store.commitUpload(id, written, digest);
  return { digest, size: bytes.length };
}

export async function seed(root: string, spec: ScaleSpec): Promise<void> {
  const store = await FilesystemBlobStore.open(root);
  const metadata = new SqliteMetadataStore(path.join(root, 'registry.db'));
  const images: NewManifest[] = [];
  const blobs: Array<{ digest: string; size: number }> = [];
  for (let i = 0; i < IMAGES; i++) {
    const config = await commitBlob(store, Buffer.from(JSON.stringify({ architecture: i % 2 ? 'arm64' : 'amd64', os: 'linux', config: { Cmd: ['app'] }, seed: i })), i);
    // Layer rows only: the interface reads sizes from metadata, never layer bytes.
    const layer = { digest: digestBytes(Buffer.from(`layer ${i}`)), size: 20_000_000 + i };
    blobs.push(config, layer);
    const content = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
      }),
    );
    images.push({
      digest: digestBytes(content),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: content.length,
      content,
      subject: null,
      artifactType: null,
      annotations: null,
      references: [config, layer].map((blob) => ({ digest: blob.digest, kind: 'blob' as const })),
    });
  }
  // Semver-like tags (1.<minor>.<patch>) so the semver order has real work to do.
  const tag = (i: number) => `1.${Math.floor(i / 1000)}.${i % 1000}`;
  metadata.db.transaction(() => {
    for (const blob of blobs) void metadata.linkBlob(spec.tagRepository, blob, PUSHER);
    for (let i = 0; i < spec.tags; i++) void metadata.putManifest(spec.tagRepository, images[i % IMAGES]!, tag(i), PUSHER);
    for (let i = 0; i < spec.repositories; i++) {
      const name = repositoryName(i);
      const image = images[i % IMAGES]!;
      for (const reference of image.references) void metadata.linkBlob(name, blobs.find((blob) => blob.digest === reference.digest)!, PUSHER);
      void metadata.putManifest(name, image, 'latest', PUSHER);
    }
  })();
  await metadata.close();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The first request's time (nothing cached since start-up) and the median of `count` more. */
async function timeJson(url: string, token: string, count: number): Promise<{ first: number; median: number }> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    samples.push(performance.now() - started);
  }
  return { first: samples[0]!, median: median(samples.slice(1)) };
}

async function createViewer(server: BenchServer): Promise<string> {
  const admin = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
  const created = await fetch(`http://${server.host}/api/v1/users`, {
    method: 'POST',
    headers: { Authorization: admin, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: VIEWER.username, password: VIEWER.password, grants: [{ pattern: 'scale/**', actions: ['pull'] }] }),
  });
  if (created.status !== 201 && created.status !== 409) throw new Error(`creating the viewer: ${created.status} ${await created.text()}`);
  return `Basic ${Buffer.from(`${VIEWER.username}:${VIEWER.password}`).toString('base64')}`;
}

async function tokenFor(server: BenchServer, basic: string, scopes: string[]): Promise<string> {
  const query = new URLSearchParams(scopes.map((scope): [string, string] => ['scope', scope]));
  const response = await fetch(`http://${server.host}/auth/token?${query}`, { headers: { Authorization: basic } });
  return ((await response.json()) as { token: string }).token;
}

/** Milliseconds from navigation until `selector` is on screen, median of `count` loads (each a fresh page load). */
async function browserRounds(server: BenchServer, work: string, count: number): Promise<{ repositories: number; tags: number } | null> {
  if (!(await fs.access(CHROMIUM).then(() => true, () => false))) {
    console.error('  chromium not installed: the in-browser rows are skipped');
    return null;
  }
  const { chromium } = await import('playwright-core');
  const profile = path.join(work, 'ui-bench-chromium');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`http://${server.host}/ui/sign-in`);
    await page.getByLabel('User name').fill(VIEWER.username);
    await page.getByLabel('Password').fill(VIEWER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as').waitFor();
    const shown = async (url: string, selector: string) => {
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const started = performance.now();
        await page.goto(url);
        await page.locator(selector).first().waitFor({ timeout: 30_000 });
        samples.push(performance.now() - started);
      }
      return median(samples);
    };
    return {
      repositories: await shown(`http://${server.host}/ui/`, 'table tbody tr'),
      tags: await shown(`http://${server.host}/ui/repository?name=scale/tags`, 'tr[data-tag]'),
    };
  } finally {
    await context.close();
    await fs.rm(profile, { recursive: true, force: true });
  }
}

/** Seeds, starts the compiled registry with token auth, records the interface's first pages. */
export async function uiRounds(options: { work: string; scale: ScaleSpec; rounds: number; record: Recorder }): Promise<void> {
  const { scale, record } = options;
  const root = path.join(options.work, 'ui-scale');
  await fs.mkdir(root, { recursive: true });
  console.error(`web interface: seeding ${scale.tags} tags over ${IMAGES} images and ${scale.repositories} repositories…`);
  await seed(root, scale);
  const server = await startOurs(root, { REGISTRY_AUTH: 'token', REGISTRY_ADMIN_PASSWORD: PASSWORD });
  try {
    const viewer = await createViewer(server);
    const catalog = await tokenFor(server, viewer, ['registry:catalog:*']);
    const pull = await tokenFor(server, viewer, [`repository:${scale.tagRepository}:pull`]);
    const api = `http://${server.host}/api/v1/repositories`;
    const tags = `${api}/${scale.tagRepository}/_tags`;
    const count = Math.max(5, options.rounds * 4);
    const rows: Array<[string, string, string]> = [
      [`UI API: repositories, first page (n=50 of ${scale.repositories}, filtered by grant)`, `${api}?n=50`, catalog],
      [`UI API: repositories, search (q=repo-0999)`, `${api}?n=50&q=repo-0999`, catalog],
      [`UI API: tags, first page by push time (n=50 of ${scale.tags})`, `${tags}?sort=pushed&n=50`, pull],
      [`UI API: tags, first page by semver (n=50 of ${scale.tags})`, `${tags}?sort=semver&n=50`, pull],
      [`UI API: tags by name, page from the middle`, `${tags}?sort=name&n=50&last=1.${Math.floor(scale.tags / 2000)}.0`, pull],
      [`UI API: tags filtered (q=.7.7)`, `${tags}?sort=pushed&n=50&q=.7.7`, pull],
    ];
    for (const [title, url, token] of rows) {
      const { first, median: typical } = await timeJson(url, token, count + 1);
      // The first semver page sorts every tag name; later ones reuse that order until the tags change.
      if (title.includes('semver')) record(`${title}, first request (order computed)`, 'ms', 'lower', '< 1 s', 'ours', first);
      record(title, 'ms', 'lower', '< 100 ms', 'ours', typical);
    }
    const shown = await browserRounds(server, options.work, count);
    if (shown) {
      record(`UI in Chromium: repositories page shown (${scale.repositories} repositories)`, 'ms', 'lower', '< 1 s', 'ours', shown.repositories);
      record(`UI in Chromium: tags page shown (${scale.tags} tags)`, 'ms', 'lower', '< 1 s', 'ours', shown.tags);
    }
  } finally {
    await server.stop();
    await fs.rm(root, { recursive: true, force: true });
  }
}

// Alone (`node --import tsx bench/ui.ts [tags] [repositories]`): builds dist/ and prints these rows only.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-ui-bench-'));
  try {
    await promisify(execFile)('npm', ['run', 'build'], { cwd: path.resolve(import.meta.dirname, '..'), timeout: 300_000 });
    const scale = { tagRepository: 'scale/tags', tags: Number(process.argv[2] ?? 100_000), repositories: Number(process.argv[3] ?? 10_000) };
    const rows: string[] = [];
    await uiRounds({ work, scale, rounds: 2, record: (title, unit, _better, target, _name, value) => rows.push(`| ${title} | ${unit} | ${value.toFixed(1)} | ${target} |`) });
    console.log(['| measure | unit | ours (median) | target |', '| --- | --- | --- | --- |', ...rows].join('\n'));
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
