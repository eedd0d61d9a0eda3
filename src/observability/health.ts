/**
 * Readiness checks: can this process serve pushes and pulls right now? Each check is a small
 * async probe that throws when the answer is no. The composition root picks the probes that
 * fit its stores (a network backend would bring its own).
 */
import fs from 'node:fs/promises';
import path from 'node:path';

export interface ReadinessCheck {
  name: string;
  /** Resolves when healthy; rejects with the reason otherwise. */
  probe(): Promise<void>;
}

export interface ReadinessResult {
  ready: boolean;
  /** `ok`, or what went wrong, per check. */
  checks: Record<string, string>;
}

/** A check never takes longer than this: a hung disk or database counts as not ready. */
const PROBE_TIMEOUT_MS = 5_000;

export async function checkReadiness(checks: ReadinessCheck[]): Promise<ReadinessResult> {
  const results = await Promise.all(
    checks.map(async (check) => {
      try {
        await withTimeout(check.probe(), PROBE_TIMEOUT_MS);
        return [check.name, 'ok'] as const;
      } catch (error) {
        return [check.name, describe(error)] as const;
      }
    }),
  );
  return { ready: results.every(([, outcome]) => outcome === 'ok'), checks: Object.fromEntries(results) };
}

let probeSequence = 0;

/** The folder takes a new file: created, written, fsynced and removed. */
export function writableDirectoryCheck(name: string, dir: string): ReadinessCheck {
  return {
    name,
    async probe() {
      const file = path.join(dir, `.readyz-${process.pid}-${++probeSequence}`);
      const handle = await fs.open(file, 'wx');
      try {
        await handle.writeFile('ready\n');
        await handle.sync();
      } finally {
        await handle.close();
        await fs.rm(file, { force: true });
      }
    },
  };
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
