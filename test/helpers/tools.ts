/** Running external command-line tools (skopeo, podman) from tests. */
import { execFile, execFileSync } from 'node:child_process';

/** True when `name` is an executable on PATH. */
export function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

export interface RunOptions {
  /** Kill the command after this long (default 60 s); the error says it timed out. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the command's standard input, which is then closed (e.g. a password for --password-stdin). */
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Error of a failed `run`, carrying everything the command printed. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    readonly code: number | string | null,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Runs `cmd args…` (no shell); resolves with its output, rejects with stdout and stderr in the message. */
export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, env: options.env, cwd: options.cwd, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        const failed = error as NodeJS.ErrnoException & { killed?: boolean; code?: number | string | null; signal?: string | null };
        const why = failed.killed && failed.signal === 'SIGKILL' ? `timed out after ${timeoutMs} ms` : `failed (${failed.code ?? failed.signal ?? error.message})`;
        reject(
          new CommandError(
            `${cmd} ${args.join(' ')} ${why}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
            stdout,
            stderr,
            failed.code ?? null,
          ),
        );
      },
    );
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}
