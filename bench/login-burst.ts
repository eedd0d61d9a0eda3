/**
 * How a burst of failed logins affects everything else (issue 11.3). scrypt shares libuv's
 * thread pool with file I/O; this runs the compiled registry with token auth, fires 200
 * concurrent failed logins (throttle limits raised so that every one reaches the password
 * check), and meanwhile samples /readyz and a small blob GET every 100 ms. It compares the
 * default bound on password checks with an effectively unbounded one (16 at once, no queue
 * limit: every pool thread hashing, as before the bound existed).
 *
 *   npm run build && node --import tsx bench/login-burst.ts [--rounds 3]
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startOurs } from './lib/servers.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, burst: { type: 'string', default: '200' } } });
const ROUNDS = Number(args.rounds);
const BURST = Number(args.burst);
const PASSWORD = 'bench-admin-password';

const SETTINGS = {
  'bounded (default: 2 at once, 32 queued)': {},
  'one at once': { REGISTRY_AUTH_THROTTLE_MAX_CONCURRENT_PASSWORD_CHECKS: '1' },
  'unbounded (16 at once, no queue limit)': { REGISTRY_AUTH_THROTTLE_MAX_CONCURRENT_PASSWORD_CHECKS: '16', REGISTRY_AUTH_THROTTLE_MAX_QUEUED_PASSWORD_CHECKS: '100000' },
} as const;

interface Sample {
  ms: number;
  status: number;
}

async function timed(url: string, init?: RequestInit): Promise<Sample> {
  const start = performance.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    await response.arrayBuffer();
    return { ms: performance.now() - start, status: response.status };
  } catch {
    return { ms: performance.now() - start, status: 0 };
  }
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

async function round(label: string, env: Record<string, string>): Promise<Record<string, number>> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-login-burst-'));
  const server = await startOurs(root, {
    REGISTRY_AUTH: 'token',
    REGISTRY_ADMIN_PASSWORD: PASSWORD,
    REGISTRY_AUTH_THROTTLE_MAX_FAILURES_PER_ACCOUNT: '100000',
    REGISTRY_AUTH_THROTTLE_MAX_FAILURES_PER_ADDRESS: '100000',
    ...env,
  });
  const base = `http://${server.host}`;
  try {
    const tokenResponse = await fetch(`${base}/auth/token?service=harbormaster-registry&scope=repository:bench/app:pull,push`, { headers: { Authorization: basic('admin', PASSWORD) } });
    const { token } = (await tokenResponse.json()) as { token: string };
    const blob = Buffer.from('a small layer for the login-burst benchmark');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const pushed = await fetch(`${base}/v2/bench/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' },
      body: blob,
    });
    if (pushed.status !== 201) throw new Error(`blob push: ${pushed.status}`);
    const quiet = await Promise.all([timed(`${base}/readyz`), timed(`${base}/v2/bench/app/blobs/${digest}`, { headers: { Authorization: `Bearer ${token}` } })]);

    const start = performance.now();
    let done = false;
    const burst = Promise.all(Array.from({ length: BURST }, (_, i) => timed(`${base}/auth/token`, { headers: { Authorization: basic(`user${i}`, 'wrong-password') } }))).finally(
      () => (done = true),
    );
    const ready: Sample[] = [];
    const blobs: Sample[] = [];
    while (!done && performance.now() - start < 60_000) {
      const [r, b] = await Promise.all([timed(`${base}/readyz`), timed(`${base}/v2/bench/app/blobs/${digest}`, { headers: { Authorization: `Bearer ${token}` } })]);
      ready.push(r);
      blobs.push(b);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const logins = await burst;
    const burstMs = performance.now() - start;
    const result = {
      'burst duration (s)': burstMs / 1000,
      'logins refused at once (429)': logins.filter((sample) => sample.status === 429).length,
      'quiet /readyz (ms)': quiet[0]!.ms,
      'quiet blob GET (ms)': quiet[1]!.ms,
      '/readyz median (ms)': median(ready.map((sample) => sample.ms)),
      '/readyz max (ms)': Math.max(...ready.map((sample) => sample.ms)),
      '/readyz answers not 200': ready.filter((sample) => sample.status !== 200).length,
      'blob GET median (ms)': median(blobs.map((sample) => sample.ms)),
      'blob GET max (ms)': Math.max(...blobs.map((sample) => sample.ms)),
    };
    console.log(label, JSON.stringify(result));
    return result;
  } finally {
    await server.stop();
    await fs.rm(root, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

const results = new Map<string, Array<Record<string, number>>>();
for (let r = 0; r < ROUNDS; r++) {
  // Alternate the order, as bench/run.ts does, so that drift in the machine's load evens out.
  const order = r % 2 === 0 ? Object.entries(SETTINGS) : Object.entries(SETTINGS).reverse();
  for (const [label, env] of order) {
    const list = results.get(label) ?? [];
    list.push(await round(label, env));
    results.set(label, list);
  }
}

console.log(`\nLogin burst: ${BURST} concurrent failed logins, ${ROUNDS} round(s), ${os.cpus().length} cores; medians over rounds\n`);
const labels = [...results.keys()];
console.log(`| measure | ${labels.join(' | ')} |`);
console.log(`| --- | ${labels.map(() => '---').join(' | ')} |`);
for (const measure of Object.keys(results.get(labels[0]!)![0]!)) {
  const cells = labels.map((label) => {
    const value = median(results.get(label)!.map((entry) => entry[measure]!));
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  });
  console.log(`| ${measure} | ${cells.join(' | ')} |`);
}
