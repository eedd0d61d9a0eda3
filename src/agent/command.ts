/**
 * One attempt of a deploy command: `sh -c` in a process group of its own, with exactly the
 * environment it is given, killed (the whole group: SIGTERM, then SIGKILL) at its deadline.
 * Keeps the tail of the combined output.
 */
import { spawn } from 'node:child_process';
import { signalGroup } from './process-group.js';

/** Reports carry at most this many characters of output. */
export const OUTPUT_TAIL_CHARS = 4_096;
export const KILL_GRACE_MS = 5_000;

export interface CommandRun {
  command: string;
  cwd?: string;
  env: Record<string, string>;
  /** Killed at this time (ms since the epoch). */
  deadline: number;
  /** Called with the group's id once the shell runs. */
  onSpawn?: (pgid: number) => void;
}

export interface CommandResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
  /** Set when the command could not be started. */
  error?: string;
}

export function runCommand(run: CommandRun): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
    };
    const child = spawn(run.command, {
      shell: '/bin/sh',
      cwd: run.cwd,
      env: run.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pgid = child.pid;
    if (pgid !== undefined) run.onSpawn?.(pgid);
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(
      () => {
        if (pgid === undefined) return;
        timedOut = true;
        signalGroup(pgid, 'SIGTERM');
        killTimer = setTimeout(() => signalGroup(pgid, 'SIGKILL'), KILL_GRACE_MS);
      },
      Math.max(0, run.deadline - Date.now()),
    );
    let finished = false;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      // What a timed-out command left behind (a child that ignored SIGTERM) goes with it.
      if (timedOut && pgid !== undefined) signalGroup(pgid, 'SIGKILL');
      resolve({ exitCode, signal, timedOut, output, ...(error ? { error: error.message } : {}) });
    };
    child.once('error', (error) => finish(null, null, error));
    child.once('close', (code, signal) => finish(code, signal));
  });
}
