/**
 * A throwaway PostgreSQL server for a test file (scripts/postgres.sh): one server per file, a
 * fresh database per suite, everything stopped and removed after. Tests that need it skip with
 * the reason when the machine has no PostgreSQL server (CI installs it).
 *
 *   const pg = await startPostgres();           // or: const reason = postgresUnavailable()
 *   after(() => pg.stop());
 *   const url = await pg.createDatabase();      // postgres://postgres@127.0.0.1:<port>/t_<random>
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from './server-process.js';
import { run } from './tools.js';

const SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'postgres.sh');

export interface PostgresServer {
  /** URL of the server's `postgres` database. */
  url: string;
  port: number;
  /** Creates an empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Runs SQL through psql against a database URL (default: the server's `postgres` database). */
  psql(sql: string, url?: string): Promise<string>;
  stop(): Promise<void>;
}

/** Why PostgreSQL tests cannot run here, or null when they can. */
export function postgresUnavailable(): string | null {
  const bins = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql') : [];
  if (!bins.some((version) => fs.existsSync(`/usr/lib/postgresql/${version}/bin/pg_ctl`))) return 'PostgreSQL server not installed (apt-get install postgresql)';
  try {
    execFileSync('psql', ['--version'], { stdio: 'ignore', timeout: 5_000 });
  } catch {
    return 'psql not installed (apt-get install postgresql-client)';
  }
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['postgres'], { stdio: 'ignore', timeout: 5_000 });
    } catch {
      return 'running as root without a postgres user to run the server';
    }
  }
  return null;
}

export async function startPostgres(): Promise<PostgresServer> {
  // Its own temp folder, directly under the temp dir: the server runs as `postgres` and must reach it.
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'registry-pg-'));
  let url: string;
  try {
    url = (await run(SCRIPT, ['start', dir], { timeoutMs: 60_000 })).stdout.trim();
  } catch (error) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw error;
  }
  const port = Number(new URL(url).port);
  const psql = async (sql: string, target = url) =>
    (await run('psql', ['-v', 'ON_ERROR_STOP=1', '-qAtX', '-d', target, '-c', sql], { timeoutMs: 30_000 })).stdout;
  let stopped = false;
  return {
    url,
    port,
    psql,
    async createDatabase(name = `t_${randomBytes(6).toString('hex')}`) {
      await psql(`CREATE DATABASE "${name}"`);
      const database = new URL(url);
      database.pathname = `/${name}`;
      return database.toString();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await run(SCRIPT, ['stop', dir], { timeoutMs: 60_000 });
      } finally {
        await fsp.rm(dir, { recursive: true, force: true });
      }
    },
  };
}
