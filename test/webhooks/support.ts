/**
 * Test support for webhooks: a real loopback HTTP listener that records what it receives and
 * answers as told, a registry assembled on a temp folder with fast dispatcher settings, and a
 * bounded wait.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'node:test';
import { pino, type Logger } from 'pino';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { assemble, type AssembledRegistry } from '../../src/server.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
  at: number;
}

export interface Listener {
  url: string;
  port: number;
  received: Received[];
  /** What to answer to the next request (status, optional body and headers); default 200. */
  respond: (req: Received) => { status: number; body?: string; headers?: Record<string, string>; delayMs?: number };
  /** Requests being handled right now, and the most at once so far. */
  concurrent: { now: number; max: number };
  close(): Promise<void>;
}

/** Starts an HTTP server on a loopback address (127.0.0.1 unless told: 127.0.0.3, ::1), on a given port or a random one. */
export async function startListener(port = 0, host = '127.0.0.1'): Promise<Listener> {
  const listener: Listener = {
    url: '',
    port: 0,
    received: [],
    respond: () => ({ status: 200, body: 'ok' }),
    concurrent: { now: 0, max: 0 },
    close: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    listener.concurrent.now++;
    listener.concurrent.max = Math.max(listener.concurrent.max, listener.concurrent.now);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {
        json = null;
      }
      const entry: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json, at: Date.now() };
      listener.received.push(entry);
      const answer = listener.respond(entry);
      const send = () => {
        listener.concurrent.now--;
        res.writeHead(answer.status, { 'Content-Type': 'text/plain', ...answer.headers }).end(answer.body ?? '');
      };
      // Unref'd: a reply held back for longer than a test runs must not keep the test process alive.
      if (answer.delayMs) setTimeout(send, answer.delayMs).unref();
      else send();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  listener.port = address.port;
  listener.url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  listener.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return listener;
}

export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/** Polls `check` every 10 ms until it returns a truthy value, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Dispatcher settings that make retries quick in tests. */
export const FAST_WEBHOOKS = {
  pollIntervalMs: 20,
  requestTimeoutMs: 2_000,
  initialBackoffMs: 30,
  maxBackoffMs: 200,
  maxAgeMs: 60_000,
} as const;

export interface TestRegistry extends AssembledRegistry {
  root: string;
  /** Stops the dispatcher, closes the database and removes the folder. */
  dispose(): Promise<void>;
}

/** A registry (auth off unless `auth` says otherwise) on a temp folder; the dispatcher is started unless `start` is false. */
export async function createTestRegistry(
  options: {
    webhooks?: NonNullable<ConfigInput['webhooks']>;
    root?: string;
    publicUrl?: string;
    start?: boolean;
    http?: NonNullable<ConfigInput['http']>;
    auth?: ConfigInput['auth'];
    /** Default: silent. */
    logger?: Logger;
    /** The metadata backend; default: TEST_METADATA_DRIVER=postgres runs the suites on PostgreSQL, else SQLite. */
    metadata?: ConfigInput['metadata'];
  } = {},
): Promise<TestRegistry> {
  const root = options.root ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'registry-webhooks-')));
  const config = validateConfig({
    metadata: options.metadata ?? (await metadataFor(root)),
    http: { addr: '127.0.0.1:5000', ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}), ...options.http },
    storage: { root },
    auth: options.auth ?? { mode: 'none' },
    log: { level: 'silent' },
    webhooks: { ...FAST_WEBHOOKS, ...options.webhooks },
  });
  const assembled = await assemble(config, options.logger ?? pino({ level: 'silent' }), { announcePassword: () => undefined });
  if (options.start !== false) {
    try {
      await assembled.webhooks.start();
    } catch (error) {
      await assembled.close();
      throw error;
    }
  }
  return {
    ...assembled,
    root,
    async dispose() {
      await assembled.close();
      if (!options.root) await fs.rm(root, { recursive: true, force: true });
    },
  };
}

/** One database per storage root (a registry restarted over the same root finds its data), when the suites run on PostgreSQL. */
const databases = new Map<string, Promise<ConfigInput['metadata']>>();
function metadataFor(root: string): Promise<ConfigInput['metadata']> {
  if (process.env.TEST_METADATA_DRIVER !== 'postgres') return Promise.resolve(undefined);
  if (!databases.has(root)) databases.set(root, METADATA_BACKENDS.find((backend) => backend.name === 'postgres')!.metadataConfig());
  return databases.get(root)!;
}

export type Cleanups = Array<() => Promise<void>>;

/** A list tests push their clean-ups onto; after each test they run, last first, even when it failed. */
export function cleanupAfterEach(): Cleanups {
  const cleanups: Cleanups = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  return cleanups;
}

/** A test registry and a loopback listener, both closed after the test. */
export async function registryAndListener(
  cleanups: Cleanups,
  options: Parameters<typeof createTestRegistry>[0] = {},
): Promise<{ registry: TestRegistry; listener: Listener }> {
  const listener = await startListener();
  cleanups.push(() => listener.close());
  const registry = await createTestRegistry(options);
  cleanups.push(() => registry.dispose());
  return { registry, listener };
}
