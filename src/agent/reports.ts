/**
 * Deploy results, posted back to the registry at the delivery's callback
 * (`X-Registry-Deploy-Callback`, or a Docker Hub body's `callback_url`):
 * `{agent, eventId, status: running|succeeded|failed, attempt, exitCode, durationMs, output,
 * startedAt, finishedAt, sentAt}`, signed `X-Registry-Signature-256: sha256=<HMAC of the body>`
 * with the subscription's secret; `sentAt` is set per try, as the registry refuses old ones.
 *
 * An event's report sums up its deploys on this agent (one per matching target): failed if any
 * target's last attempt failed, else running while any runs or waits, else succeeded.
 *
 * Reports never hold up a deploy: they go out in order from a queue per event, each tried a
 * bounded number of times (5xx, 408, 429 and network errors are tried again with doubling delays;
 * other answers are final); a report that failed is not tried again once a newer one of its event
 * waits (the registry keeps the latest).
 */
import fetch from 'node-fetch';
import type { Logger } from 'pino';
import { SIGNATURE_HEADER, sign } from '../webhooks/signing.js';
import type { AgentConfig } from './config.js';
import type { DeployJob } from './state.js';

export type ReportStatus = 'running' | 'succeeded' | 'failed';

/** A report as contract 1 defines it, less `sentAt` (added per try). */
export interface DeployReport {
  agent: string;
  eventId: string;
  status: ReportStatus;
  attempt: number;
  exitCode: number | null;
  durationMs: number | null;
  output: string | null;
  startedAt: string;
  finishedAt: string | null;
}

/** What a callback path looks like; the agent posts nowhere else. */
const CALLBACK_PATH = /\/api\/v1\/webhooks\/[^/]+\/deliveries\/[^/]+\/deploys$/;

/**
 * The URL to post an event's results to: the delivery's callback, with the registry origin
 * replaced by `registryUrl` when set. Null when the callback is not one.
 */
export function reportUrl(callback: string | null, registryUrl: string | undefined): string | null {
  if (!callback) return null;
  let url: URL;
  try {
    url = new URL(callback);
  } catch {
    return null;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !CALLBACK_PATH.test(url.pathname) || url.username || url.password) return null;
  if (registryUrl) {
    const base = new URL(registryUrl);
    url.protocol = base.protocol;
    url.host = base.host;
  }
  return url.toString();
}

/** A job's state as a report status; null before its first attempt or when superseded before one. */
function jobStatus(job: DeployJob): ReportStatus | null {
  if (job.attempt === 0) return null;
  if (job.status === 'running' || (job.status === 'queued' && job.resume)) return 'running';
  return job.result;
}

/** The report for an event, from its jobs on this agent; null while none has started. */
export function eventReport(agent: string, jobs: DeployJob[]): DeployReport | null {
  const started = jobs.filter((job) => jobStatus(job) !== null);
  if (started.length === 0) return null;
  const statuses = started.map(jobStatus);
  const pending = jobs.some((job) => job.status === 'queued' && jobStatus(job) === null);
  const status: ReportStatus = statuses.includes('failed') ? 'failed' : statuses.includes('running') || pending ? 'running' : 'succeeded';
  const latest = (job: DeployJob) => job.finishedAt ?? job.startedAt ?? 0;
  const job = started.filter((j) => jobStatus(j) === status).sort((a, b) => latest(b) - latest(a))[0] ?? started[0]!;
  const finished = jobStatus(job) !== 'running';
  return {
    agent,
    eventId: job.eventId,
    status,
    attempt: job.attempt,
    exitCode: finished ? job.exitCode : null,
    durationMs: finished ? job.durationMs : null,
    output: finished ? job.output : null,
    startedAt: new Date(job.startedAt ?? job.acceptedAt).toISOString(),
    finishedAt: finished && job.finishedAt !== null ? new Date(job.finishedAt).toISOString() : null,
  };
}

interface Lane {
  /** Reports not sent yet, oldest first. */
  queue: Array<{ url: string; report: DeployReport }>;
  draining: boolean;
  /** Ends a wait between tries early (a newer report, or closing). */
  wake: (() => void) | null;
}

/** Reports of one event waiting at most; beyond, the oldest are dropped (the newest tells the state). */
const MAX_QUEUED_PER_EVENT = 20;
/** Reports remembered to skip sending one twice. */
const REMEMBERED_REPORTS = 1_000;

export class Reporter {
  private readonly lanes = new Map<string, Lane>();
  private readonly lastSent = new Map<string, string>();
  private readonly abort = new AbortController();
  private readonly drains = new Set<Promise<void>>();

  constructor(
    private readonly secret: string,
    private readonly settings: AgentConfig['report'],
    private readonly logger: Logger,
  ) {}

  /** Queues the event's report; returns at once. */
  submit(url: string, report: DeployReport): void {
    if (this.abort.signal.aborted) return;
    const key = `${url} ${report.status} ${report.attempt} ${report.finishedAt ?? ''}`;
    if (this.lastSent.get(report.eventId) === key) return;
    this.lastSent.delete(report.eventId);
    this.lastSent.set(report.eventId, key);
    if (this.lastSent.size > REMEMBERED_REPORTS) this.lastSent.delete(this.lastSent.keys().next().value!);
    let lane = this.lanes.get(report.eventId);
    if (!lane) {
      lane = { queue: [], draining: false, wake: null };
      this.lanes.set(report.eventId, lane);
    }
    lane.queue.push({ url, report });
    if (lane.queue.length > MAX_QUEUED_PER_EVENT) lane.queue.shift();
    lane.wake?.();
    if (!lane.draining) {
      const drain = this.drain(report.eventId, lane).finally(() => this.drains.delete(drain));
      this.drains.add(drain);
    }
  }

  /** Gives reports under way up to `graceMs` to finish, then cancels the rest. */
  async close(graceMs = 2_000): Promise<void> {
    const pending = Promise.allSettled([...this.drains]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([pending, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    this.abort.abort();
    for (const lane of this.lanes.values()) lane.wake?.();
    await pending;
  }

  private async drain(eventId: string, lane: Lane): Promise<void> {
    lane.draining = true;
    try {
      while (lane.queue.length > 0 && !this.abort.signal.aborted) {
        const { url, report } = lane.queue.shift()!;
        for (let attempt = 1; attempt <= this.settings.attempts && !this.abort.signal.aborted; attempt++) {
          const outcome = await this.post(url, report, attempt);
          if (outcome !== 'retry') break;
          if (attempt === this.settings.attempts) {
            this.logger.warn({ event: eventId, status: report.status, attempts: attempt }, 'deploy report not delivered; giving up');
            break;
          }
          // A newer report of this event makes this one moot.
          if (lane.queue.length > 0) break;
          await this.pause(lane, this.settings.delaySeconds * 1000 * 2 ** (attempt - 1));
          if (lane.queue.length > 0) break;
        }
      }
    } finally {
      lane.draining = false;
      if (this.lanes.get(eventId) === lane && lane.queue.length === 0) this.lanes.delete(eventId);
    }
  }

  private pause(lane: Lane, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        lane.wake = null;
        resolve();
      }
      lane.wake = done;
    });
  }

  private async post(url: string, report: DeployReport, attempt: number): Promise<'ok' | 'retry' | 'refused'> {
    const body = JSON.stringify({ ...report, sentAt: new Date().toISOString() });
    const log = { event: report.eventId, status: report.status, url, try: attempt };
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: sign(this.secret, body), 'User-Agent': 'registry-agent' },
        body,
        redirect: 'manual',
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.settings.timeoutSeconds * 1000)]),
      });
      const text = (await response.text()).slice(0, 512);
      if (response.ok) {
        this.logger.debug(log, 'deploy report delivered');
        return 'ok';
      }
      const again = response.status >= 500 || response.status === 408 || response.status === 429;
      this.logger.warn({ ...log, answer: response.status, body: text }, again ? 'deploy report refused for now' : 'deploy report refused');
      return again ? 'retry' : 'refused';
    } catch (error) {
      if (this.abort.signal.aborted) return 'refused';
      this.logger.warn({ ...log, error: (error as Error).message }, 'deploy report failed');
      return 'retry';
    }
  }
}
