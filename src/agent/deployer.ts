/**
 * Runs deploy commands: one at a time per target. While a target's deploy runs, the newest
 * event that arrives for it waits; an older waiting one is superseded (deploying it after
 * all would only roll back to an image about to be replaced). The command runs through
 * `sh -c` in its own process group, with the event in its environment, and is killed
 * (the whole group) when it outlives its timeout.
 */
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { ReceivedEvent } from '../webhooks/formats.js';
import type { TargetConfig } from './config.js';

const OUTPUT_TAIL_BYTES = 4_096;
const KILL_GRACE_MS = 5_000;

export type DeployResult = 'succeeded' | 'failed' | 'superseded';

export interface DeployOutcome {
  target: string;
  eventId: string;
  result: DeployResult;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
  /** The last few KiB of the command's stdout and stderr. */
  output: string;
}

interface Job {
  target: TargetConfig;
  event: ReceivedEvent;
}

interface TargetState {
  running: Promise<void> | null;
  waiting: Job | null;
}

/** The variables a deploy command sees, besides the agent's own environment and the target's `env`. */
export function deployEnvironment(event: ReceivedEvent): Record<string, string> {
  const reference =
    event.reference ??
    (event.registry && event.repository
      ? `${event.registry}/${event.repository}${event.tag ? `:${event.tag}` : ''}${event.digest ? `@${event.digest}` : ''}`
      : '');
  return {
    IMAGE_REF: reference,
    IMAGE_REGISTRY: event.registry ?? '',
    IMAGE_REPOSITORY: event.repository ?? '',
    IMAGE_TAG: event.tag ?? '',
    IMAGE_DIGEST: event.digest ?? '',
    IMAGE_PREVIOUS_DIGEST: event.previousDigest ?? '',
    REGISTRY_EVENT: JSON.stringify(event.raw),
    REGISTRY_EVENT_ID: event.id,
    REGISTRY_EVENT_TYPE: event.type,
  };
}

/** An event's result once every target it went to is done: failed if any deploy failed. */
export type SettledResult = 'succeeded' | 'failed' | 'superseded';

export class Deployer {
  private readonly targets = new Map<string, TargetState>();
  private readonly unsettled = new Map<string, { remaining: number; failed: boolean; superseded: boolean }>();

  constructor(
    private readonly logger: Logger,
    private readonly onSettled: (eventId: string, result: SettledResult) => void = () => undefined,
  ) {}

  /** Queues the event's deploy on each target; says per target whether it started or waits. */
  submit(event: ReceivedEvent, targets: TargetConfig[]): Array<{ target: string; state: 'started' | 'waiting' }> {
    const entry = this.unsettled.get(event.id) ?? { remaining: 0, failed: false, superseded: false };
    entry.remaining += targets.length;
    this.unsettled.set(event.id, entry);
    return targets.map((target) => ({ target: target.name, state: this.enqueue(target, event) }));
  }

  private settle(outcome: DeployOutcome): void {
    const entry = this.unsettled.get(outcome.eventId);
    if (!entry) return;
    entry.remaining--;
    if (outcome.result === 'failed') entry.failed = true;
    if (outcome.result === 'superseded') entry.superseded = true;
    if (entry.remaining > 0) return;
    this.unsettled.delete(outcome.eventId);
    this.onSettled(outcome.eventId, entry.failed ? 'failed' : entry.superseded ? 'superseded' : 'succeeded');
  }

  private enqueue(target: TargetConfig, event: ReceivedEvent): 'started' | 'waiting' {
    const state = this.state(target.name);
    if (!state.running) {
      this.start(state, { target, event });
      return 'started';
    }
    if (state.waiting) {
      const superseded = state.waiting;
      this.logger.info({ target: target.name, event: superseded.event.id, by: event.id }, 'deploy superseded by a newer event');
      this.settle({
        target: target.name,
        eventId: superseded.event.id,
        result: 'superseded',
        exitCode: null,
        signal: null,
        durationMs: 0,
        output: '',
      });
    }
    state.waiting = { target, event };
    return 'waiting';
  }

  /** Resolves once no deploy runs or waits (bounded by the commands' timeouts). */
  async idle(): Promise<void> {
    for (let round = 0; round < 1_000; round++) {
      const running = [...this.targets.values()].map((s) => s.running).filter((p): p is Promise<void> => p !== null);
      if (running.length === 0) return;
      await Promise.allSettled(running);
    }
  }

  private state(name: string): TargetState {
    let state = this.targets.get(name);
    if (!state) {
      state = { running: null, waiting: null };
      this.targets.set(name, state);
    }
    return state;
  }

  private start(state: TargetState, job: Job): void {
    state.running = this.run(job)
      .then((outcome) => this.settle(outcome))
      .catch((error: unknown) => this.logger.error({ err: error, target: job.target.name }, 'deploy crashed'))
      .finally(() => {
        state.running = null;
        const next = state.waiting;
        state.waiting = null;
        if (next) this.start(state, next);
      });
  }

  private run({ target, event }: Job): Promise<DeployOutcome> {
    const started = Date.now();
    const env = { ...process.env, ...target.env, ...deployEnvironment(event) };
    const log = this.logger.child({ target: target.name, event: event.id, reference: env.IMAGE_REF });
    log.info({ type: event.type }, 'deploy started');
    return new Promise((resolve) => {
      let output = '';
      const keep = (chunk: Buffer) => {
        output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
      };
      const child = spawn(target.command, {
        shell: '/bin/sh',
        cwd: target.cwd,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid, 'SIGTERM');
        killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
      }, target.timeoutSeconds * 1000);
      let finished = false;
      const finish = (exitCode: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (killTimer) clearTimeout(killTimer);
        const durationMs = Date.now() - started;
        const result: DeployResult = exitCode === 0 && !timedOut && !error ? 'succeeded' : 'failed';
        const outcome: DeployOutcome = { target: target.name, eventId: event.id, result, exitCode, signal, durationMs, output };
        const details = { exitCode, signal, durationMs, timedOut, output, ...(error ? { error: error.message } : {}) };
        if (result === 'succeeded') log.info(details, 'deploy succeeded');
        else log.error(details, 'deploy failed');
        resolve(outcome);
      };
      child.once('error', (error) => finish(null, null, error));
      child.once('close', (code, signal) => finish(code, signal));
    });
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
