/**
 * Schedules deploy jobs, durably (every change is in the state journal before it takes effect):
 * - one deploy at a time per target, in the order events were taken;
 * - coalescing per target **and repository**: a newer event of a repository replaces its older
 *   waiting deploy (deploying that one after all would only roll back to an image about to be
 *   replaced), and an event older than one already taken for that repository is superseded at once;
 *   waiting deploys of other repositories are never touched;
 * - a failed attempt is retried with exponential backoff, up to the target's `retry.attempts`;
 * - after a crash, `recover` finishes what was taken: the process group an earlier agent left
 *   running is killed, then its deploy runs again (same attempt, same deadline: a restart grants
 *   no extra time; past the deadline the attempt counts as timed out).
 */
import type { Logger } from 'pino';
import { retryOf, type AgentConfig, type RetrySettings, type TargetConfig } from './config.js';
import { runCommand, KILL_GRACE_MS, OUTPUT_TAIL_CHARS, type CommandResult } from './command.js';
import { commandEnvironment } from './environment.js';
import { groupAlive, identify, isSameGroup, killGroup } from './process-group.js';
import { jobKey, type AgentState, type DeployEvent, type DeployJob } from './state.js';

export type SubmitState = 'started' | 'waiting' | 'superseded' | 'duplicate';

export interface DeployerOptions {
  state: AgentState;
  config: AgentConfig;
  logger: Logger;
  /** Called after every change of a job's status (reports go out from here). */
  onChange?: (job: DeployJob) => void;
  /** The agent's environment, which commands get a chosen part of. */
  env?: NodeJS.ProcessEnv;
}

interface Lane {
  running: Promise<void> | null;
  /** Wakes the lane when a retry's delay is over. */
  timer: NodeJS.Timeout | null;
  /** Held while a crashed attempt's process group is being cleaned up. */
  blocked: boolean;
}

/** Wait before the attempt after `attempt` (1-based): doubling, capped. */
export function retryDelayMs(retry: RetrySettings, attempt: number): number {
  return Math.min(retry.maxDelaySeconds, retry.delaySeconds * 2 ** (attempt - 1)) * 1000;
}

export class Deployer {
  private readonly state: AgentState;
  private readonly config: AgentConfig;
  private readonly logger: Logger;
  private readonly onChange: (job: DeployJob) => void;
  private readonly env: NodeJS.ProcessEnv;
  private readonly targets: Map<string, TargetConfig>;
  private readonly lanes = new Map<string, Lane>();
  private closing = false;

  constructor(options: DeployerOptions) {
    this.state = options.state;
    this.config = options.config;
    this.logger = options.logger;
    this.onChange = options.onChange ?? (() => undefined);
    this.env = options.env ?? process.env;
    this.targets = new Map(options.config.targets.map((target) => [target.name, target]));
  }

  /** Takes the event for each target (durably) and starts what may start; says per target what happened. */
  submit(event: DeployEvent, callbackUrl: string | null, targets: TargetConfig[]): Array<{ target: string; state: SubmitState }> {
    const now = Date.now();
    const taken = targets.map((target) => ({ target: target.name, state: this.take(target, event, callbackUrl, now) }));
    for (const target of targets) this.pump(target.name);
    return taken.map((entry) =>
      entry.state === 'waiting' && this.state.job(jobKey(entry.target, event.id))?.status === 'running' ? { ...entry, state: 'started' } : entry,
    );
  }

  /**
   * After a start: deploys an earlier process was running are cleaned up (their process group
   * killed if still there) and queued again, then every target's queue runs.
   */
  async recover(): Promise<void> {
    const interrupted = this.state.jobs().filter((job) => job.status === 'running');
    for (const job of interrupted) this.lane(job.target).blocked = true;
    await Promise.all(interrupted.map((job) => this.recoverJob(job)));
    for (const name of new Set(this.state.jobs().map((job) => job.target))) this.pump(name);
  }

  /** Resolves once no command runs (bounded by the commands' deadlines). */
  async idle(): Promise<void> {
    for (let round = 0; round < 1_000; round++) {
      const running = [...this.lanes.values()].map((lane) => lane.running).filter((p): p is Promise<void> => p !== null);
      if (running.length === 0) return;
      await Promise.allSettled(running);
    }
  }

  /** Starts nothing more and waits for the running commands; what waits stays queued for the next start. */
  async close(): Promise<void> {
    this.closing = true;
    for (const lane of this.lanes.values()) if (lane.timer) clearTimeout(lane.timer);
    await this.idle();
  }

  private take(target: TargetConfig, event: DeployEvent, callbackUrl: string | null, now: number): SubmitState {
    const key = jobKey(target.name, event.id);
    const existing = this.state.job(key);
    if (existing && existing.status !== 'failed' && existing.status !== 'superseded') return 'duplicate';
    const attempt = existing?.attempt ?? 0;
    const job: DeployJob = {
      key,
      target: target.name,
      eventId: event.id,
      event,
      callbackUrl,
      status: 'queued',
      acceptedAt: now,
      attempt,
      lastAttempt: attempt + retryOf(this.config, target).attempts,
      notBefore: null,
      resume: false,
      startedAt: null,
      deadline: null,
      finishedAt: null,
      process: null,
      result: null,
      exitCode: null,
      signal: null,
      timedOut: false,
      interrupted: false,
      durationMs: null,
      output: null,
      supersededBy: null,
    };
    const sameRepository = this.state.jobs().filter((other) => other.target === target.name && other.key !== key && other.event.repository === event.repository);
    const newer = sameRepository.filter((other) => other.event.time > event.time).sort((a, b) => b.event.time - a.event.time)[0];
    if (newer) {
      this.state.putJob({ ...job, status: 'superseded', supersededBy: newer.eventId, finishedAt: now });
      this.logger.info({ target: target.name, event: event.id, by: newer.eventId }, 'deploy superseded by a newer event of its repository');
      return 'superseded';
    }
    this.state.putJob(job);
    // A resumed attempt (cut short by a restart) is an attempt in progress, like a running one: it finishes.
    for (const older of sameRepository.filter((other) => other.status === 'queued' && !other.resume)) {
      const superseded = this.state.updateJob(older.key, { status: 'superseded', supersededBy: event.id, finishedAt: now, notBefore: null, resume: false });
      this.logger.info({ target: target.name, event: older.eventId, by: event.id }, 'deploy superseded by a newer event of its repository');
      this.changed(superseded);
    }
    return 'waiting';
  }

  private lane(name: string): Lane {
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = { running: null, timer: null, blocked: false };
      this.lanes.set(name, lane);
    }
    return lane;
  }

  /** Starts the target's next ready job, or sets a timer for the first retry that will be. */
  private pump(name: string): void {
    const lane = this.lane(name);
    if (this.closing || lane.running || lane.blocked) return;
    if (lane.timer) clearTimeout(lane.timer);
    lane.timer = null;
    const now = Date.now();
    const queued = this.state
      .jobs()
      .filter((job) => job.target === name && job.status === 'queued')
      .sort((a, b) => a.acceptedAt - b.acceptedAt);
    const ready = queued.find((job) => (job.notBefore ?? 0) <= now);
    if (!ready) {
      if (queued.length === 0) return;
      const next = Math.min(...queued.map((job) => job.notBefore ?? now));
      lane.timer = setTimeout(() => this.pump(name), Math.max(0, next - now));
      return;
    }
    lane.running = this.run(ready)
      .catch((error: unknown) => this.logger.error({ err: error, target: name, event: ready.eventId }, 'deploy crashed'))
      .finally(() => {
        lane.running = null;
        this.pump(name);
      });
  }

  private async run(job: DeployJob): Promise<void> {
    const target = this.targets.get(job.target);
    if (!target) {
      this.finish(job.key, { exitCode: null, signal: null, timedOut: false, output: '', error: `target ${job.target} is no longer configured` }, 0, true);
      return;
    }
    const started = Date.now();
    const attempt = job.resume ? Math.max(1, job.attempt) : job.attempt + 1;
    const deadline = job.resume && job.deadline !== null ? job.deadline : started + target.timeoutSeconds * 1000;
    const running = this.state.updateJob(job.key, {
      status: 'running',
      attempt,
      deadline,
      startedAt: started,
      finishedAt: null,
      notBefore: null,
      resume: false,
      process: null,
      exitCode: null,
      signal: null,
      timedOut: false,
      durationMs: null,
      output: null,
    });
    this.changed(running);
    const env = commandEnvironment(job.event, target, this.config.passEnvironment, this.env);
    this.logger.info({ target: target.name, event: job.eventId, reference: env.IMAGE_REF, type: job.event.type, attempt }, 'deploy started');
    const result = await runCommand({
      command: target.command,
      cwd: target.cwd,
      env,
      deadline,
      onSpawn: (pgid) => this.state.updateJob(job.key, { process: identify(pgid) }),
    });
    this.finish(job.key, result, Date.now() - started, false);
  }

  /** Records an attempt's end: succeeded, queued for a retry, or failed for good. */
  private finish(key: string, result: CommandResult, durationMs: number, final: boolean, interrupted = false): void {
    const job = this.state.job(key)!;
    const target = this.targets.get(job.target);
    const succeeded = result.exitCode === 0 && !result.timedOut && result.error === undefined;
    const retry = !succeeded && !final && target !== undefined && job.attempt < job.lastAttempt;
    const now = Date.now();
    const notBefore = retry ? now + retryDelayMs(retryOf(this.config, target), job.attempt) : null;
    const output = (result.error === undefined ? result.output : `${result.output}${result.output ? '\n' : ''}${result.error}`).slice(-OUTPUT_TAIL_CHARS);
    const updated = this.state.updateJob(key, {
      status: succeeded ? 'succeeded' : retry ? 'queued' : 'failed',
      result: succeeded ? 'succeeded' : 'failed',
      finishedAt: now,
      notBefore,
      process: null,
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      interrupted,
      durationMs,
      output,
    });
    const details = { target: job.target, event: job.eventId, attempt: job.attempt, exitCode: result.exitCode, signal: result.signal, durationMs, timedOut: result.timedOut, output };
    if (succeeded) this.logger.info(details, 'deploy succeeded');
    else if (retry) this.logger.error({ ...details, nextAttemptAt: new Date(notBefore!).toISOString() }, 'deploy failed; will retry');
    else this.logger.error(details, 'deploy failed');
    this.changed(updated);
  }

  private async recoverJob(job: DeployJob): Promise<void> {
    const lane = this.lane(job.target);
    try {
      if (job.process && isSameGroup(job.process) && groupAlive(job.process.pgid)) {
        this.logger.warn({ target: job.target, event: job.eventId, pgid: job.process.pgid }, 'killing the deploy an earlier agent process left running');
        if (!(await killGroup(job.process.pgid, KILL_GRACE_MS))) {
          this.logger.error({ target: job.target, pgid: job.process.pgid }, 'the earlier deploy process group survived SIGKILL');
        }
      }
      const now = Date.now();
      if (job.deadline !== null && now >= job.deadline) {
        const output = `${job.output ?? ''}interrupted by an agent restart; its deadline passed`;
        this.finish(job.key, { exitCode: null, signal: null, timedOut: true, output }, job.startedAt === null ? 0 : now - job.startedAt, false, true);
      } else {
        this.state.updateJob(job.key, { status: 'queued', resume: true, interrupted: true, process: null, notBefore: null });
        this.logger.info({ target: job.target, event: job.eventId, attempt: job.attempt }, 'deploy interrupted by an agent restart; running it again');
      }
    } finally {
      lane.blocked = false;
    }
  }

  private changed(job: DeployJob): void {
    try {
      this.onChange(job);
    } catch (error) {
      this.logger.error({ err: error, event: job.eventId }, 'deploy change listener failed');
    }
  }
}
