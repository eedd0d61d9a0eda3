/**
 * What the agent must not forget across restarts and crashes, in one journal (journal.ts):
 * - the event ids it has taken and the outcome of each, so a delivery the registry sends twice
 *   (a retry after a lost response, a redelivery, a replay) deploys once; bounded to the newest
 *   `capacity` ids;
 * - every deploy job not yet finished (with its event, so it can run after a restart), plus the
 *   newest finished ones for the status view; a running job carries its process group and deadline.
 * Records are `{"id","outcome","at"}` for an event (the format of earlier versions, still read) and
 * `{"job":key,…fields}` for a job: the first record of a job holds all of it, later ones only what
 * changed. The file is compacted (atomically) when it holds twice as many lines as entries.
 */
import type { ReceivedEvent } from '../webhooks/formats.js';
import type { ProcessIdentity } from './process-group.js';
import { Journal } from './journal.js';

/**
 * An event as a command will see it: a delivery's parsed content without its transport (`sentAt`),
 * in any format the agent reads (the registry's, and `dockerhub`).
 */
export type DeployEvent = Omit<ReceivedEvent, 'sentAt' | 'format'> & {
  format: string;
  /** When the change happened (ms since the epoch); arrival time when the body has none. */
  time: number;
};

/**
 * `queued`: waits for its turn (or for a retry's delay, `notBefore`); `running`: its command runs;
 * `succeeded` / `failed`: final; `superseded`: a newer event of the same repository replaced it.
 */
export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'superseded';

export interface DeployJob {
  /** `<target>/<event id>`. */
  key: string;
  target: string;
  eventId: string;
  event: DeployEvent;
  /** Where results are reported (the delivery's callback); null: not reported. */
  callbackUrl: string | null;
  status: JobStatus;
  acceptedAt: number;
  /** The attempt running or last run, 1-based; 0 before the first. */
  attempt: number;
  /** The last attempt this acceptance may run (a redelivery grants new ones). */
  lastAttempt: number;
  /** A queued retry waits until then. */
  notBefore: number | null;
  /** Queued again after an agent restart cut its attempt short: rerun it, same attempt, same deadline. */
  resume: boolean;
  startedAt: number | null;
  /** The attempt is killed at this time, agent restarts included. */
  deadline: number | null;
  finishedAt: number | null;
  /** The running command's process group, to find it again after a crash. */
  process: ProcessIdentity | null;
  /** The last finished attempt's result. */
  result: 'succeeded' | 'failed' | null;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The last attempt was cut short by an agent restart. */
  interrupted: boolean;
  durationMs: number | null;
  /** The tail of the last attempt's combined output. */
  output: string | null;
  supersededBy: string | null;
}

/**
 * An event's outcome, over all its targets. `accepted` is what earlier versions wrote for a deploy
 * that had not finished; without its job it means interrupted.
 */
export type EventOutcome = 'queued' | 'running' | 'succeeded' | 'failed' | 'superseded' | 'accepted';

interface EventEntry {
  id: string;
  outcome: EventOutcome;
  at: number;
}

const OUTCOMES = new Set<string>(['queued', 'running', 'succeeded', 'failed', 'superseded', 'accepted']);
const ACTIVE = new Set<JobStatus>(['queued', 'running']);
/** Finished jobs kept for the status view. */
export const FINISHED_JOBS_KEPT = 200;

export function jobKey(target: string, eventId: string): string {
  return `${target}/${eventId}`;
}

export class AgentState {
  private readonly events = new Map<string, EventEntry>();
  private readonly jobMap = new Map<string, DeployJob>();
  private readonly journal: Journal;
  /** Lines of the file that could not be read at open (torn or damaged). */
  readonly damagedLines: number;

  private constructor(
    readonly file: string,
    private readonly capacity: number,
  ) {
    const { journal, records, damaged } = Journal.open(file);
    this.journal = journal;
    this.damagedLines = damaged;
    for (const record of records) this.apply(record);
    this.trim();
    if (damaged > 0 || this.journal.lines > this.compactAt()) this.compact();
  }

  static open(file: string, capacity: number): AgentState {
    return new AgentState(file, capacity);
  }

  outcome(id: string): EventOutcome | undefined {
    return this.events.get(id)?.outcome;
  }

  /**
   * Whether a delivery of this event should be dropped: every deploy it asked for succeeded or
   * is still queued or running. Failed, superseded and interrupted ones are taken again.
   */
  isDuplicate(id: string): boolean {
    const jobs = this.jobsOf(id);
    if (jobs.length > 0) return jobs.every((job) => job.status === 'succeeded' || ACTIVE.has(job.status));
    // Without its jobs (too old, or lost with a damaged line) only a success is known for sure.
    return this.outcome(id) === 'succeeded';
  }

  job(key: string): DeployJob | undefined {
    return this.jobMap.get(key);
  }

  jobs(): DeployJob[] {
    return [...this.jobMap.values()];
  }

  jobsOf(eventId: string): DeployJob[] {
    return this.jobs().filter((job) => job.eventId === eventId);
  }

  /** Records an event's outcome durably before returning. */
  record(id: string, outcome: EventOutcome, at: number = Date.now()): void {
    const entry = { id, outcome, at };
    this.journal.append(entry);
    this.applyEvent(entry);
    this.trim();
    this.maybeCompact();
  }

  /** Records a new job (or a job taken again) in full, durably. */
  putJob(job: DeployJob): void {
    this.journal.append({ job: job.key, ...job });
    this.jobMap.delete(job.key);
    this.jobMap.set(job.key, { ...job });
    this.settle(job.eventId);
  }

  /** Records a change to a job durably; returns the job as it is now. */
  updateJob(key: string, change: Partial<Omit<DeployJob, 'key' | 'event'>>): DeployJob {
    const job = this.jobMap.get(key);
    if (!job) throw new Error(`unknown deploy job ${key}`);
    this.journal.append({ job: key, ...change });
    Object.assign(job, change);
    this.settle(job.eventId);
    return job;
  }

  close(): void {
    this.journal.close();
  }

  /** Keeps the event's outcome in step with its jobs. */
  private settle(eventId: string): void {
    const outcome = eventOutcome(this.jobsOf(eventId));
    if (outcome && this.outcome(eventId) !== outcome) this.record(eventId, outcome);
    else {
      this.trim();
      this.maybeCompact();
    }
  }

  private apply(record: unknown): void {
    if (typeof record !== 'object' || record === null) return;
    const value = record as Record<string, unknown>;
    if (typeof value.job === 'string') {
      const { job: key, ...fields } = value;
      const existing = this.jobMap.get(key);
      if (existing) Object.assign(existing, fields);
      // A job's first record holds its event; without it (a damaged line) it cannot run again.
      else if (typeof fields.eventId === 'string' && typeof fields.target === 'string' && isEvent(fields.event)) {
        this.jobMap.set(key, fields as unknown as DeployJob);
      }
      return;
    }
    if (typeof value.id === 'string' && typeof value.outcome === 'string' && OUTCOMES.has(value.outcome)) {
      this.applyEvent({ id: value.id, outcome: value.outcome as EventOutcome, at: typeof value.at === 'number' ? value.at : 0 });
    }
  }

  private applyEvent(entry: EventEntry): void {
    this.events.delete(entry.id);
    this.events.set(entry.id, entry);
  }

  /** Forgets the oldest event ids beyond capacity, and finished jobs beyond what the status view keeps. */
  private trim(): void {
    while (this.events.size > this.capacity) this.events.delete(this.events.keys().next().value!);
    let finished = 0;
    for (const job of this.jobMap.values()) if (!ACTIVE.has(job.status)) finished++;
    for (const [key, job] of this.jobMap) {
      if (finished <= FINISHED_JOBS_KEPT) break;
      if (ACTIVE.has(job.status)) continue;
      this.jobMap.delete(key);
      finished--;
    }
  }

  private compactAt(): number {
    return 2 * (this.capacity + this.jobMap.size);
  }

  private maybeCompact(): void {
    if (this.journal.lines > this.compactAt()) this.compact();
  }

  private compact(): void {
    const jobs = [...this.jobMap.values()].map((job) => ({ job: job.key, ...job }));
    this.journal.rewrite([...this.events.values(), ...jobs]);
  }
}

/** An event's outcome from its jobs: active while any is, else failed if any failed. */
export function eventOutcome(jobs: DeployJob[]): EventOutcome | null {
  if (jobs.length === 0) return null;
  if (jobs.some((job) => job.status === 'running')) return 'running';
  if (jobs.some((job) => job.status === 'queued')) return 'queued';
  if (jobs.some((job) => job.status === 'failed')) return 'failed';
  if (jobs.some((job) => job.status === 'succeeded')) return 'succeeded';
  return 'superseded';
}

function isEvent(value: unknown): value is DeployEvent {
  if (typeof value !== 'object' || value === null) return false;
  const event = value as Record<string, unknown>;
  return typeof event.id === 'string' && typeof event.type === 'string' && typeof event.time === 'number';
}
